-- +goose Up
CREATE TABLE projects (
    id         BIGSERIAL PRIMARY KEY,
    account_id BIGINT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    name       TEXT NOT NULL,
    slug       VARCHAR(64) NOT NULL,
    archived   BOOLEAN NOT NULL DEFAULT false,
    UNIQUE (account_id, slug)
);

-- +goose Down
DROP TABLE projects;
