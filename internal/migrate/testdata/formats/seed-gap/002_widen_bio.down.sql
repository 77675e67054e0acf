-- Narrows the column back: fails over the 3000-character bios.
ALTER TABLE users ALTER COLUMN bio TYPE varchar(2000);
