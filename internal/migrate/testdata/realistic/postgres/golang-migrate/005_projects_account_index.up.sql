CREATE INDEX projects_account ON projects (account_id);
