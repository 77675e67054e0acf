-- +goose Up
CREATE INDEX workspaces_slug_lower ON workspaces (lower(slug));

-- +goose Down
DROP INDEX workspaces_slug_lower;
