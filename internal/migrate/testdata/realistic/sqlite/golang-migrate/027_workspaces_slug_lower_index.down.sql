DROP INDEX workspaces_slug_lower;
