ALTER TABLE api_keys ADD COLUMN scopes TEXT NOT NULL DEFAULT 'read';
UPDATE api_keys SET scopes = 'read,write' WHERE label = 'ci';
