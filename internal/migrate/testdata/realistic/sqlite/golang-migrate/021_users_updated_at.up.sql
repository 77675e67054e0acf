ALTER TABLE users ADD COLUMN updated_at TEXT;
CREATE TRIGGER users_touch AFTER UPDATE OF display_name, email ON users
BEGIN
    UPDATE users SET updated_at = CURRENT_TIMESTAMP WHERE id = NEW.id;
END;
