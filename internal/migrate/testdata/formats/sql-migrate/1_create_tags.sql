-- +migrate Up
CREATE TABLE tags (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
INSERT INTO tags (id, name) VALUES (1, 'default');

-- +migrate Down
DROP TABLE tags;
