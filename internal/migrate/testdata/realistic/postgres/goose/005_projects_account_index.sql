-- +goose Up
CREATE INDEX projects_account ON projects (account_id);

-- +goose Down
DROP INDEX projects_account;
