CREATE INDEX accounts_owner ON accounts (owner_id);
