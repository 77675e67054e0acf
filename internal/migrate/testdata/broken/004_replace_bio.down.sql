-- Forgets to bring bio back.
ALTER TABLE users DROP COLUMN about;
