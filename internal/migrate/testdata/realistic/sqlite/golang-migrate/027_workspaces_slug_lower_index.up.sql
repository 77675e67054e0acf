CREATE INDEX workspaces_slug_lower ON workspaces (lower(slug));
