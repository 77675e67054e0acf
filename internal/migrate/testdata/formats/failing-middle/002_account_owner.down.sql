ALTER TABLE accounts DROP COLUMN owner_id;
