CREATE INDEX api_keys_active ON api_keys (account_id) WHERE revoked_at IS NULL;
