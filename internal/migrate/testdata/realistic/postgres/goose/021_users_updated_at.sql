-- +goose Up
ALTER TABLE users ADD COLUMN updated_at TIMESTAMPTZ NOT NULL DEFAULT now();
-- +goose StatementBegin
CREATE FUNCTION users_touch() RETURNS trigger AS $$
BEGIN
    NEW.updated_at := now(); -- every update
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;
-- +goose StatementEnd
CREATE TRIGGER users_touch BEFORE UPDATE ON users FOR EACH ROW EXECUTE FUNCTION users_touch();

-- +goose Down
DROP TRIGGER users_touch ON users;
DROP FUNCTION users_touch();
ALTER TABLE users DROP COLUMN updated_at;
