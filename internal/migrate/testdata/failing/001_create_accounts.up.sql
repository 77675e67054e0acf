CREATE TABLE accounts (
    id    INTEGER PRIMARY KEY,
    email VARCHAR(255) NOT NULL UNIQUE
);
INSERT INTO accounts (id, email) VALUES (1, 'ada@example.com'), (2, 'grace@example.com');
