-- +goose NO TRANSACTION
-- +goose Up
CREATE INDEX CONCURRENTLY api_keys_active ON api_keys (account_id) WHERE revoked_at IS NULL;

-- +goose Down
DROP INDEX CONCURRENTLY api_keys_active;
