-- +goose NO TRANSACTION
-- +goose Up
CREATE TABLE events_archive (id INTEGER PRIMARY KEY, kind TEXT NOT NULL);
INSERT INTO events_archive (id, kind) SELECT id, kind FROM events;
-- Fails: there is no such table.
INSERT INTO event_kinds (kind) SELECT DISTINCT kind FROM events;

-- +goose Down
DROP TABLE events_archive;
