ALTER TABLE memberships RENAME COLUMN project_id TO workspace_id;
