-- +goose Up
ALTER TABLE users ADD COLUMN locale VARCHAR(16) NOT NULL DEFAULT 'en';

-- +goose Down
ALTER TABLE users DROP COLUMN locale;
