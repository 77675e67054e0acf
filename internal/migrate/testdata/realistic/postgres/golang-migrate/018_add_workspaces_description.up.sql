ALTER TABLE workspaces ADD COLUMN description TEXT;
