package sqldb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"hash/fnv"
	"strconv"
	"strings"

	"github.com/shipgate/shipgate/internal/migrate"
)

// postgres is the PostgreSQL dialect. Schemas are read from pg_catalog,
// in the current schema (the first of search_path, usually public).
type postgres struct{}

func (postgres) name() string { return "postgres" }

func (postgres) arg(n int) string { return "$" + strconv.Itoa(n) }

// advisoryLockKey is the key of the session advisory lock that keeps two
// runners on one database apart: FNV-1a of "shipgate-migrate".
var advisoryLockKey = func() int64 {
	h := fnv.New64a()
	_, _ = h.Write([]byte("shipgate-migrate"))
	return int64(h.Sum64()) //nolint:gosec // a lock key: any 64 bits will do
}()

func (postgres) lock(ctx context.Context, conn *sql.Conn) (func(), error) {
	if _, err := conn.ExecContext(ctx, "SELECT pg_advisory_lock($1)", advisoryLockKey); err != nil {
		return nil, fmt.Errorf("take the migration lock: %w", err)
	}
	return func() {
		// A fresh context: the lock is released even when ctx was
		// cancelled; closing the connection would release it too.
		_, _ = conn.ExecContext(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1)", advisoryLockKey)
	}, nil
}

// checkAfter does nothing: PostgreSQL checks foreign keys as it goes.
func (postgres) checkAfter(context.Context, querier) error { return nil }

func (postgres) stateDDL() []string {
	return []string{
		`CREATE TABLE IF NOT EXISTS ` + migrationsTable + ` (
	version    bigint PRIMARY KEY,
	name       text NOT NULL,
	applied_at timestamptz NOT NULL,
	checksum   text NOT NULL
)`,
		`CREATE TABLE IF NOT EXISTS ` + failuresTable + ` (
	version         bigint PRIMARY KEY,
	name            text NOT NULL,
	direction       text NOT NULL,
	statement_index integer NOT NULL,
	file            text NOT NULL,
	line            integer NOT NULL,
	error           text NOT NULL,
	dirty           boolean NOT NULL,
	at              timestamptz NOT NULL
)`,
	}
}

// sep separates the names that a catalog query aggregates into one text.
const sep = "\x1f"

const pgColumns = `
SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,
       coalesce(pg_get_expr(d.adbin, d.adrelid), '')
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
LEFT JOIN pg_attrdef d ON d.adrelid = c.oid AND d.adnum = a.attnum
WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p')`

// pgIndexes leaves out the indexes that back a constraint: those are
// compared as constraints.
const pgIndexes = `
SELECT t.relname, i.relname, ix.indisunique,
       (SELECT string_agg(pg_get_indexdef(ix.indexrelid, k, true), E'\x1f' ORDER BY k)
        FROM generate_series(1, ix.indnkeyatts) k),
       coalesce(pg_get_expr(ix.indpred, ix.indrelid), '')
FROM pg_index ix
JOIN pg_class i ON i.oid = ix.indexrelid
JOIN pg_class t ON t.oid = ix.indrelid
JOIN pg_namespace n ON n.oid = t.relnamespace
WHERE n.nspname = current_schema() AND t.relkind IN ('r', 'p')
  AND NOT EXISTS (SELECT 1 FROM pg_constraint co WHERE co.conindid = ix.indexrelid AND co.contype IN ('p', 'u', 'x'))`

const pgConstraints = `
SELECT t.relname, co.conname, co.contype,
       coalesce((SELECT string_agg(a.attname, E'\x1f' ORDER BY k.ord)
                 FROM unnest(co.conkey) WITH ORDINALITY k(attnum, ord)
                 JOIN pg_attribute a ON a.attrelid = co.conrelid AND a.attnum = k.attnum), ''),
       coalesce(ft.relname, ''),
       coalesce((SELECT string_agg(a.attname, E'\x1f' ORDER BY k.ord)
                 FROM unnest(co.confkey) WITH ORDINALITY k(attnum, ord)
                 JOIN pg_attribute a ON a.attrelid = co.confrelid AND a.attnum = k.attnum), ''),
       co.confupdtype, co.confdeltype, pg_get_constraintdef(co.oid)
FROM pg_constraint co
JOIN pg_class t ON t.oid = co.conrelid
JOIN pg_namespace n ON n.oid = t.relnamespace
LEFT JOIN pg_class ft ON ft.oid = co.confrelid
WHERE n.nspname = current_schema() AND co.contype IN ('p', 'f', 'u', 'c', 'x')`

func (postgres) schema(ctx context.Context, q querier) (migrate.Schema, error) {
	s := migrate.Schema{Tables: map[string]migrate.Table{}}
	table := func(name string) (migrate.Table, bool) {
		if isStateTable(name) {
			return migrate.Table{}, false
		}
		t, ok := s.Tables[name]
		if !ok {
			t = migrate.Table{Name: name, Columns: map[string]migrate.Column{}, Indexes: map[string]migrate.Index{}}
		}
		return t, true
	}

	err := queryEach(ctx, q, pgColumns, func(rows *sql.Rows) error {
		var tname string
		var c migrate.Column
		if err := rows.Scan(&tname, &c.Name, &c.Type, &c.NotNull, &c.Default); err != nil {
			return err
		}
		if t, ok := table(tname); ok {
			c.Type = migrate.NormaliseType(c.Type)
			t.Columns[c.Name] = c
			s.Tables[tname] = t
		}
		return nil
	})
	if err != nil {
		return s, fmt.Errorf("read columns: %w", err)
	}

	err = queryEach(ctx, q, pgIndexes, func(rows *sql.Rows) error {
		var tname, cols string
		var ix migrate.Index
		if err := rows.Scan(&tname, &ix.Name, &ix.Unique, &cols, &ix.Where); err != nil {
			return err
		}
		if t, ok := table(tname); ok {
			ix.Columns = strings.Split(cols, sep)
			t.Indexes[ix.Name] = ix
			s.Tables[tname] = t
		}
		return nil
	})
	if err != nil {
		return s, fmt.Errorf("read indexes: %w", err)
	}

	err = queryEach(ctx, q, pgConstraints, func(rows *sql.Rows) error {
		var tname, kind, cols, refCols, upd, del, def string
		var c migrate.Constraint
		if err := rows.Scan(&tname, &c.Name, &kind, &cols, &c.RefTable, &refCols, &upd, &del, &def); err != nil {
			return err
		}
		t, ok := table(tname)
		if !ok {
			return nil
		}
		c.Columns = splitNonEmpty(cols)
		switch kind {
		case "p":
			c.Kind = migrate.PrimaryKey
		case "u":
			c.Kind = migrate.Unique
		case "f":
			c.Kind = migrate.ForeignKey
			c.RefColumns = splitNonEmpty(refCols)
			c.OnUpdate, c.OnDelete = pgAction(upd), pgAction(del)
		default:
			// Check and exclusion constraints compare by definition.
			c.Kind = migrate.CheckKind
			c.Check = def
		}
		t.Constraints = append(t.Constraints, c)
		s.Tables[tname] = t
		return nil
	})
	if err != nil {
		return s, fmt.Errorf("read constraints: %w", err)
	}
	return s, nil
}

// pgAction spells out pg_constraint's one-letter foreign key action.
func pgAction(code string) string {
	switch code {
	case "a":
		return "no action"
	case "r":
		return "restrict"
	case "c":
		return "cascade"
	case "n":
		return "set null"
	case "d":
		return "set default"
	}
	return code
}

func splitNonEmpty(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, sep)
}

// isStateTable reports whether name is a table of the recorded state.
func isStateTable(name string) bool {
	return name == migrationsTable || name == failuresTable
}

// queryEach runs query and calls fn for each row.
func queryEach(ctx context.Context, q querier, query string, fn func(*sql.Rows) error, args ...any) error {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return err
	}
	for rows.Next() {
		if err := fn(rows); err != nil {
			_ = rows.Close()
			return err
		}
	}
	return errors.Join(rows.Err(), rows.Close())
}
