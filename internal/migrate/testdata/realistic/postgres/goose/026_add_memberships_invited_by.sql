-- +goose Up
ALTER TABLE memberships ADD COLUMN invited_by BIGINT REFERENCES users (id) ON DELETE SET NULL;

-- +goose Down
ALTER TABLE memberships DROP COLUMN invited_by;
