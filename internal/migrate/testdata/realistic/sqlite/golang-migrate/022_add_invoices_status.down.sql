ALTER TABLE invoices DROP COLUMN status;
