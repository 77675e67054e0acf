-- +goose Up
ALTER TABLE accounts ADD COLUMN plan TEXT NOT NULL DEFAULT 'free';

-- +goose Down
ALTER TABLE accounts DROP COLUMN plan;
