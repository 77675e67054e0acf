-- +goose Up
ALTER TABLE workspaces ADD COLUMN description TEXT;

-- +goose Down
ALTER TABLE workspaces DROP COLUMN description;
