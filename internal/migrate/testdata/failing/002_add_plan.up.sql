ALTER TABLE accounts ADD COLUMN plan TEXT NOT NULL DEFAULT 'free';
UPDATE accounts SET plan = 'pro' WHERE id = 1;
