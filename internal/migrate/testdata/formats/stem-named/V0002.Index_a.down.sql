-- Misspelled: the down fails.
DROP INDEX a_idx;
