package sqldb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/shipgate/shipgate/internal/migrate"
)

// sqlite is the SQLite dialect. Schemas are read from sqlite_master and
// the table-valued pragmas table_info, index_list, index_xinfo and
// foreign_key_list; check constraints from the CREATE TABLE text, the only
// place SQLite keeps them.
type sqlite struct{}

func (sqlite) name() string { return "sqlite" }

func (sqlite) arg(int) string { return "?" }

// lock does nothing: SQLite has no advisory lock, and every migration's
// transaction starts with BEGIN IMMEDIATE, which takes the database's
// write lock; the runner checks inside it that the migration is still
// pending, so two runners never apply one twice.
func (sqlite) lock(context.Context, *sql.Conn) (func(), error) { return func() {}, nil }

// ErrForeignKey means a migration left rows whose foreign keys point at
// nothing, as PRAGMA foreign_key_check reports them.
var ErrForeignKey = errors.New("foreign key check failed")

// checkAfter runs PRAGMA foreign_key_check: with foreign keys off while
// migrating (the default), this is where a migration that orphans rows
// is caught, as SQLite's documented table rebuild procedure does.
func (sqlite) checkAfter(ctx context.Context, q querier) error {
	var bad []string
	n := 0
	err := queryEach(ctx, q, `PRAGMA foreign_key_check`, func(rows *sql.Rows) error {
		var table, parent string
		var rowid sql.NullInt64
		var fkid int
		if err := rows.Scan(&table, &rowid, &parent, &fkid); err != nil {
			return err
		}
		n++
		if len(bad) < 3 {
			bad = append(bad, fmt.Sprintf("table %s row %d references a missing row of %s", table, rowid.Int64, parent))
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("PRAGMA foreign_key_check: %w", err)
	}
	if n > 0 {
		return fmt.Errorf("%w after the script: %d row(s): %s", ErrForeignKey, n, strings.Join(bad, "; "))
	}
	return nil
}

func (sqlite) stateDDL() []string {
	return []string{
		`CREATE TABLE IF NOT EXISTS ` + migrationsTable + ` (
	version    INTEGER PRIMARY KEY,
	name       TEXT NOT NULL,
	applied_at TEXT NOT NULL,
	checksum   TEXT NOT NULL
)`,
		`CREATE TABLE IF NOT EXISTS ` + failuresTable + ` (
	version         INTEGER PRIMARY KEY,
	name            TEXT NOT NULL,
	direction       TEXT NOT NULL,
	statement_index INTEGER NOT NULL,
	file            TEXT NOT NULL,
	line            INTEGER NOT NULL,
	error           TEXT NOT NULL,
	dirty           INTEGER NOT NULL,
	at              TEXT NOT NULL
)`,
	}
}

func (sqlite) schema(ctx context.Context, q querier) (migrate.Schema, error) {
	s := migrate.Schema{Tables: map[string]migrate.Table{}}
	type master struct{ name, sql string }
	var tables []master
	err := queryEach(ctx, q, `SELECT name, coalesce(sql, '') FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\_%' ESCAPE '\'`, func(rows *sql.Rows) error {
		var m master
		if err := rows.Scan(&m.name, &m.sql); err != nil {
			return err
		}
		if !isStateTable(m.name) {
			tables = append(tables, m)
		}
		return nil
	})
	if err != nil {
		return s, fmt.Errorf("read tables: %w", err)
	}
	for _, m := range tables {
		t, err := sqliteTable(ctx, q, m.name, m.sql)
		if err != nil {
			return s, fmt.Errorf("read table %s: %w", m.name, err)
		}
		s.Tables[m.name] = t
	}
	return s, nil
}

// sqlitePrimaryKey returns the primary key columns of table, in key
// order: what a foreign key without columns refers to.
func sqlitePrimaryKey(ctx context.Context, q querier, table string) ([]string, error) {
	type col struct {
		name string
		pos  int
	}
	var cols []col
	err := queryEach(ctx, q, `SELECT name, pk FROM pragma_table_info(?) WHERE pk > 0`, func(rows *sql.Rows) error {
		var c col
		if err := rows.Scan(&c.name, &c.pos); err != nil {
			return err
		}
		cols = append(cols, c)
		return nil
	}, table)
	if err != nil {
		return nil, err
	}
	slices.SortFunc(cols, func(a, b col) int { return a.pos - b.pos })
	out := make([]string, len(cols))
	for i, c := range cols {
		out[i] = c.name
	}
	return out, nil
}

func sqliteTable(ctx context.Context, q querier, name, createSQL string) (migrate.Table, error) {
	t := migrate.Table{Name: name, Columns: map[string]migrate.Column{}, Indexes: map[string]migrate.Index{}}
	var pk []string
	pkPos := map[string]int{}
	err := queryEach(ctx, q, `SELECT name, type, "notnull", coalesce(dflt_value, ''), pk FROM pragma_table_info(?)`, func(rows *sql.Rows) error {
		var c migrate.Column
		var pos int
		if err := rows.Scan(&c.Name, &c.Type, &c.NotNull, &c.Default, &pos); err != nil {
			return err
		}
		c.Type = migrate.NormaliseType(c.Type)
		// SQLite keeps a default as written: FALSE and false, (0) and 0
		// are one default.
		if c.Default != "" {
			c.Default = migrate.NormaliseSQL(c.Default)
		}
		t.Columns[c.Name] = c
		if pos > 0 {
			pk = append(pk, c.Name)
			pkPos[c.Name] = pos
		}
		return nil
	}, name)
	if err != nil {
		return t, err
	}
	if len(pk) > 0 {
		ordered := make([]string, len(pk))
		for _, c := range pk {
			ordered[pkPos[c]-1] = c
		}
		t.Constraints = append(t.Constraints, migrate.Constraint{Kind: migrate.PrimaryKey, Columns: ordered})
	}

	type indexRow struct {
		name    string
		unique  bool
		origin  string
		partial bool
	}
	var indexes []indexRow
	err = queryEach(ctx, q, `SELECT name, "unique", origin, partial FROM pragma_index_list(?)`, func(rows *sql.Rows) error {
		var ix indexRow
		if err := rows.Scan(&ix.name, &ix.unique, &ix.origin, &ix.partial); err != nil {
			return err
		}
		indexes = append(indexes, ix)
		return nil
	}, name)
	if err != nil {
		return t, err
	}
	for _, ix := range indexes {
		if ix.origin == "pk" {
			continue
		}
		var cols []string
		err := queryEach(ctx, q, `SELECT coalesce(name, '(expression)') FROM pragma_index_xinfo(?) WHERE key = 1 ORDER BY seqno`, func(rows *sql.Rows) error {
			var c string
			if err := rows.Scan(&c); err != nil {
				return err
			}
			cols = append(cols, c)
			return nil
		}, ix.name)
		if err != nil {
			return t, err
		}
		if ix.origin == "u" {
			t.Constraints = append(t.Constraints, migrate.Constraint{Kind: migrate.Unique, Columns: cols})
			continue
		}
		index := migrate.Index{Name: ix.name, Columns: cols, Unique: ix.unique}
		if ix.partial || strings.Contains(strings.Join(cols, ","), "(expression)") {
			var def string
			if err := q.QueryRowContext(ctx, `SELECT coalesce(sql, '') FROM sqlite_master WHERE type = 'index' AND name = ?`, ix.name).Scan(&def); err != nil {
				return t, err
			}
			// The text after the index name says what an expression or a
			// partial index covers; normalised, so that white space,
			// quoting and the case of keywords do not count.
			def = migrate.NormaliseSQL(def)
			if i := strings.Index(def, " on "); i >= 0 {
				def = def[i+4:]
			}
			index.Where = def
		}
		t.Indexes[ix.name] = index
	}

	type fkRow struct {
		id              int
		table, from, to string
		onUpdate, onDel string
	}
	fks := map[int]*migrate.Constraint{}
	var order []int
	err = queryEach(ctx, q, `SELECT id, "table", "from", coalesce("to", ''), on_update, on_delete FROM pragma_foreign_key_list(?) ORDER BY id, seq`, func(rows *sql.Rows) error {
		var r fkRow
		if err := rows.Scan(&r.id, &r.table, &r.from, &r.to, &r.onUpdate, &r.onDel); err != nil {
			return err
		}
		c, ok := fks[r.id]
		if !ok {
			c = &migrate.Constraint{Kind: migrate.ForeignKey, RefTable: r.table, OnUpdate: strings.ToLower(r.onUpdate), OnDelete: strings.ToLower(r.onDel)}
			fks[r.id] = c
			order = append(order, r.id)
		}
		c.Columns = append(c.Columns, r.from)
		c.RefColumns = append(c.RefColumns, r.to)
		return nil
	}, name)
	if err != nil {
		return t, err
	}
	for _, id := range order {
		c := fks[id]
		// REFERENCES parent without columns means the parent's primary
		// key: say which, so that it compares equal to REFERENCES
		// parent(id).
		if slices.Contains(c.RefColumns, "") {
			if pk, err := sqlitePrimaryKey(ctx, q, c.RefTable); err == nil && len(pk) == len(c.RefColumns) {
				c.RefColumns = pk
			}
		}
		t.Constraints = append(t.Constraints, *c)
	}
	for _, check := range migrate.TableChecks(createSQL) {
		t.Constraints = append(t.Constraints, migrate.Constraint{Kind: migrate.CheckKind, Check: migrate.NormaliseSQL(check)})
	}
	return t, nil
}
