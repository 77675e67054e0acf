CREATE TABLE users (
    id    INTEGER PRIMARY KEY,
    email VARCHAR(255) NOT NULL,
    bio   TEXT
);
