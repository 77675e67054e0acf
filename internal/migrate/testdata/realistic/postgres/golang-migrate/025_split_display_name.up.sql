ALTER TABLE users ADD COLUMN first_name TEXT, ADD COLUMN last_name TEXT;
UPDATE users SET first_name = split_part(display_name, ' ', 1),
                 last_name = nullif(substr(display_name, length(split_part(display_name, ' ', 1)) + 2), '');
