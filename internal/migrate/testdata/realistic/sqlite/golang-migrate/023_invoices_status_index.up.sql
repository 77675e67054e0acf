CREATE INDEX invoices_status ON invoices (status);
