-- Backfill written against an empty database: real rows break it.
ALTER TABLE orders ADD COLUMN region VARCHAR(8);
UPDATE orders SET total_cents = total_cents / 0 WHERE total_cents > 1000;
