ALTER TABLE invoices ADD COLUMN status TEXT NOT NULL DEFAULT 'open';
UPDATE invoices SET status = 'paid' WHERE paid_at IS NOT NULL;
