ALTER TABLE workspaces DROP COLUMN description;
