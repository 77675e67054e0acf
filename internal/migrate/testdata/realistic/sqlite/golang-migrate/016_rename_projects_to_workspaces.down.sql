ALTER TABLE workspaces RENAME TO projects;
