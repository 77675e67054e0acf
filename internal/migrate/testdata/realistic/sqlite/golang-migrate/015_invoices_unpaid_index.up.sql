CREATE INDEX invoices_unpaid ON invoices (account_id, issued_at) WHERE paid_at IS NULL;
