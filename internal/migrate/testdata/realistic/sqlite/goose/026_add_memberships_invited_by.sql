-- +goose Up
ALTER TABLE memberships ADD COLUMN invited_by INTEGER;

-- +goose Down
ALTER TABLE memberships DROP COLUMN invited_by;
