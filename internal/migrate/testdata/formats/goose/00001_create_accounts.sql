-- +goose Up
CREATE TABLE accounts (id INTEGER PRIMARY KEY, name TEXT NOT NULL);

-- +goose Down
DROP TABLE accounts;
