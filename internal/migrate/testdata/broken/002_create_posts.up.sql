-- The down file of this migration was forgotten.
CREATE TABLE posts (
    id      INTEGER PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES users (id),
    title   TEXT NOT NULL
);
