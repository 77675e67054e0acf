DROP TRIGGER users_touch ON users;
DROP FUNCTION users_touch();
ALTER TABLE users DROP COLUMN updated_at;
