ALTER TABLE memberships RENAME COLUMN workspace_id TO project_id;
