CREATE TABLE feature_flags (
    key             VARCHAR(100) PRIMARY KEY,
    enabled         INTEGER NOT NULL DEFAULT 0,
    rollout_percent INTEGER NOT NULL DEFAULT 0 CHECK (rollout_percent BETWEEN 0 AND 100)
);
INSERT INTO feature_flags (key) VALUES ('new_billing'), ('dark_mode');
