-- +goose Up
CREATE INDEX invoices_status ON invoices (status);

-- +goose Down
DROP INDEX invoices_status;
