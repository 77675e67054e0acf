DROP TRIGGER users_touch;
ALTER TABLE users DROP COLUMN updated_at;
