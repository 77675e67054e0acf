-- migrate:up
CREATE TABLE orders (
    id          INTEGER PRIMARY KEY,
    customer_id INTEGER NOT NULL,
    created_at  TEXT NOT NULL
);
CREATE INDEX orders_customer ON orders (customer_id);

-- migrate:down
DROP TABLE orders;
