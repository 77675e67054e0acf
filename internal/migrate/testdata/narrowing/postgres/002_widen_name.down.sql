-- Narrows back: names longer than 100 characters do not fit.
ALTER TABLE users ALTER COLUMN name TYPE VARCHAR(100);
