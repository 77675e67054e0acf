-- Representative users: one ordinary, one with a long name and email.
INSERT INTO users (id, name, email) VALUES (1, 'Ada Lovelace', 'ada@example.com');
INSERT INTO users (id, name, email) VALUES
    (2, 'Wolfeschlegelsteinhausenbergerdorff Wolfeschlegelsteinhausenbergerdorff Wolfeschlegelsteinhausenbergerdorff Wolfeschlegelsteinhausenbergerdorff Wolfeschlegelsteinhausenbergerdorff ', 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa@example.com');
