-- +goose Up
ALTER TABLE memberships RENAME COLUMN project_id TO workspace_id;

-- +goose Down
ALTER TABLE memberships RENAME COLUMN workspace_id TO project_id;
