-- +migrate Up notransaction
CREATE INDEX CONCURRENTLY events_kind_at ON events (kind, at);
-- +migrate Down notransaction
DROP INDEX CONCURRENTLY events_kind_at;
