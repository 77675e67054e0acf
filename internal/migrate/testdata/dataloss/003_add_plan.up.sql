ALTER TABLE users ADD COLUMN plan TEXT NOT NULL DEFAULT 'free';
UPDATE users SET plan = 'pro' WHERE id = 1;
