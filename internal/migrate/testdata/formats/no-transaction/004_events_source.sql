-- migrate:up transaction:false
CREATE UNIQUE INDEX CONCURRENTLY events_source ON events (source, id);

-- migrate:down transaction:false
DROP INDEX CONCURRENTLY events_source;
