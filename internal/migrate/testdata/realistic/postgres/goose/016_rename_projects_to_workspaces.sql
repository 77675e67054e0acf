-- +goose Up
ALTER TABLE projects RENAME TO workspaces;

-- +goose Down
ALTER TABLE workspaces RENAME TO projects;
