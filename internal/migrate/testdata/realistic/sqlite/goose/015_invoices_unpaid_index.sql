-- +goose Up
CREATE INDEX invoices_unpaid ON invoices (account_id, issued_at) WHERE paid_at IS NULL;

-- +goose Down
DROP INDEX invoices_unpaid;
