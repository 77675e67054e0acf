-- +goose NO TRANSACTION
-- +goose Up
CREATE INDEX CONCURRENTLY accounts_lower_name ON accounts (lower(name));

-- +goose Down
DROP INDEX CONCURRENTLY accounts_lower_name;
