ALTER TABLE users ADD COLUMN about TEXT;
UPDATE users SET about = bio;
ALTER TABLE users DROP COLUMN bio;
