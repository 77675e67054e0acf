-- +goose Up
ALTER TABLE users ADD COLUMN first_name TEXT;
ALTER TABLE users ADD COLUMN last_name TEXT;
UPDATE users SET
    first_name = CASE WHEN instr(display_name, ' ') > 0 THEN substr(display_name, 1, instr(display_name, ' ') - 1) ELSE display_name END,
    last_name  = CASE WHEN instr(display_name, ' ') > 0 THEN substr(display_name, instr(display_name, ' ') + 1) END;

-- +goose Down
ALTER TABLE users DROP COLUMN last_name;
ALTER TABLE users DROP COLUMN first_name;
