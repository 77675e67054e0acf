CREATE INDEX CONCURRENTLY events_kind ON events (kind);
