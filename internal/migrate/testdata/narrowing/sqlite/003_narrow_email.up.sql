CREATE TABLE users_new (
    id    INTEGER PRIMARY KEY,
    name  VARCHAR(255) NOT NULL,
    email VARCHAR(64) NOT NULL
);
INSERT INTO users_new (id, name, email) SELECT id, name, email FROM users;
DROP TABLE users;
ALTER TABLE users_new RENAME TO users;
