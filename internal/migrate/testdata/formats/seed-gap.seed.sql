INSERT INTO users (id, bio) VALUES (1, 'short'), (2, repeat('x', 3000));
