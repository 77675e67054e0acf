-- Nothing to undo: a nullable column is harmless.
/* (It is not: the old code's INSERT ... SELECT * breaks.) */
