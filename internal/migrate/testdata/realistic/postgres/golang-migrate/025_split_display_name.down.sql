ALTER TABLE users DROP COLUMN last_name, DROP COLUMN first_name;
