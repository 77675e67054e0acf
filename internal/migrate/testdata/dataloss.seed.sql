INSERT INTO users (id, name, bio) VALUES (1, 'Ada', 'Wrote the first program'), (2, 'Grace', 'Found the first bug'), (3, 'Edsger', NULL);
