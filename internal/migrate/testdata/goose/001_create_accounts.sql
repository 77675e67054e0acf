-- +goose Up
-- Accounts own everything else.
CREATE TABLE accounts (
    id   BIGSERIAL PRIMARY KEY,
    name TEXT NOT NULL DEFAULT 'unnamed; really'
);
CREATE INDEX accounts_name ON accounts (name);

-- +goose StatementBegin
CREATE FUNCTION touch() RETURNS trigger AS $$
BEGIN
    NEW.name := trim(NEW.name); -- no split here
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;
-- +goose StatementEnd

-- +goose Down
DROP FUNCTION touch();
DROP TABLE accounts;
