package migrate

// NoTransactionStatement reports whether PostgreSQL refuses to run the
// statement inside a transaction block ("cannot run inside a transaction
// block"), and names it: CREATE INDEX CONCURRENTLY, DROP INDEX
// CONCURRENTLY, REINDEX ... CONCURRENTLY, ALTER TABLE ... DETACH
// PARTITION ... CONCURRENTLY, VACUUM (refused by SQLite too), CREATE and
// DROP DATABASE and TABLESPACE, ALTER SYSTEM, and CREATE, ALTER (with a
// slot) and DROP SUBSCRIPTION.
func NoTransactionStatement(sql string) (string, bool) {
	toks, err := lex(sql, 1)
	if err != nil || len(toks) == 0 {
		return "", false
	}
	cur := &cursor{toks: toks}
	concurrently := func() bool {
		for _, t := range toks {
			if t.word() == "CONCURRENTLY" {
				return true
			}
		}
		return false
	}
	switch {
	case cur.accept("VACUUM"):
		return "VACUUM", true
	case cur.accept("ALTER", "SYSTEM"):
		return "ALTER SYSTEM", true
	case cur.accept("REINDEX"):
		if w := cur.peek().word(); w == "SYSTEM" || w == "DATABASE" {
			return "REINDEX " + w, true
		}
		if concurrently() {
			return "REINDEX CONCURRENTLY", true
		}
	case cur.accept("CREATE"):
		cur.accept("UNIQUE")
		switch w := cur.peek().word(); {
		case w == "INDEX" && len(toks) > cur.i+1 && toks[cur.i+1].word() == "CONCURRENTLY":
			return "CREATE INDEX CONCURRENTLY", true
		case w == "DATABASE", w == "TABLESPACE", w == "SUBSCRIPTION":
			return "CREATE " + w, true
		}
	case cur.accept("DROP"):
		switch w := cur.peek().word(); {
		case w == "INDEX" && len(toks) > cur.i+1 && toks[cur.i+1].word() == "CONCURRENTLY":
			return "DROP INDEX CONCURRENTLY", true
		case w == "DATABASE", w == "TABLESPACE", w == "SUBSCRIPTION":
			return "DROP " + w, true
		}
	case cur.accept("ALTER", "TABLE"):
		detach := false
		for i, t := range toks {
			if t.word() == "DETACH" && i+1 < len(toks) && toks[i+1].word() == "PARTITION" {
				detach = true
			}
		}
		if detach && concurrently() {
			return "ALTER TABLE ... DETACH PARTITION ... CONCURRENTLY", true
		}
	}
	return "", false
}

// TransactionControl reports whether the statement begins or ends a
// transaction itself (BEGIN, START TRANSACTION, COMMIT, END, ROLLBACK):
// a script holding one manages its own transactions and must not run
// inside another.
func TransactionControl(sql string) bool {
	toks, err := lex(sql, 1)
	if err != nil || len(toks) == 0 {
		return false
	}
	switch toks[0].word() {
	case "BEGIN", "COMMIT", "ROLLBACK", "END":
		// BEGIN ATOMIC bodies and END of blocks only occur inside other
		// statements, which the splitter keeps whole.
		return len(toks) == 1 || toks[1].kind == tokWord && (toks[1].word() == "TRANSACTION" || toks[1].word() == "WORK" ||
			toks[1].word() == "IMMEDIATE" || toks[1].word() == "EXCLUSIVE" || toks[1].word() == "DEFERRED" || toks[1].word() == "ISOLATION" || toks[1].word() == "AND")
	case "START":
		return len(toks) > 1 && toks[1].word() == "TRANSACTION"
	}
	return false
}
