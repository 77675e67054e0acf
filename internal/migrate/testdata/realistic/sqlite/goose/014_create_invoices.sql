-- +goose Up
CREATE TABLE invoices (
    id           INTEGER PRIMARY KEY,
    account_id   INTEGER NOT NULL REFERENCES accounts (id),
    number       VARCHAR(32) NOT NULL,
    amount_cents INTEGER NOT NULL CHECK (amount_cents >= 0),
    currency     CHAR(3) NOT NULL DEFAULT 'EUR',
    issued_at    TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP,
    paid_at      TEXT,
    UNIQUE (account_id, number)
);

-- +goose Down
DROP TABLE invoices;
