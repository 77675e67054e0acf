CREATE TABLE events (id INTEGER PRIMARY KEY, kind TEXT NOT NULL);
INSERT INTO events (id, kind) VALUES (1, 'deploy');
