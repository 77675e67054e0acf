-- Brings the column back, but not what was in it.
ALTER TABLE users ADD COLUMN bio TEXT;
