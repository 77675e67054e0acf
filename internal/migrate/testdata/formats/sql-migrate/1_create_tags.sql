-- +migrate Up
CREATE TABLE tags (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
INSERT INTO tags (name) VALUES ('default');

-- +migrate Down
DROP TABLE tags;
