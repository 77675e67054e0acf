CREATE TABLE users (id integer PRIMARY KEY, bio varchar(2000));
