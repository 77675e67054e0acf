-- +goose Up
ALTER TABLE accounts ADD COLUMN plan TEXT NOT NULL DEFAULT 'free';
CREATE INDEX accounts_plan ON accounts (plan);

-- +goose Down
-- Forgets the column: the down leaves accounts.plan behind.
DROP INDEX accounts_plan;
