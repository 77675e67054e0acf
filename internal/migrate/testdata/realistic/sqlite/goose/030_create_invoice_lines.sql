-- +goose Up
CREATE TABLE invoice_lines (
    invoice_id   INTEGER NOT NULL REFERENCES invoices (id) ON DELETE CASCADE,
    line_no      INTEGER NOT NULL,
    description  TEXT NOT NULL,
    amount_cents INTEGER NOT NULL,
    PRIMARY KEY (invoice_id, line_no)
);

-- +goose Down
DROP TABLE invoice_lines;
