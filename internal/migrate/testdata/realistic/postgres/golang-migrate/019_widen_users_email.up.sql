-- RFC 5321 allows 320 characters.
ALTER TABLE users ALTER COLUMN email TYPE VARCHAR(320);
