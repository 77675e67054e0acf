DROP INDEX invoices_status;
