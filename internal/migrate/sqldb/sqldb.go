// Package sqldb runs migrations against real databases through
// database/sql: PostgreSQL through pgx, SQLite through the pure-Go
// modernc.org/sqlite driver that Shipgate's own store uses. Its Runner
// applies and reverts migrations with a recorded state; Verify runs them
// up, down and up again on a scratch database and compares what the
// catalog says.
//
// Database URLs are postgres://... (or postgresql://..., or a key=value
// connection string) for PostgreSQL, and sqlite:PATH for SQLite. Verify
// also takes the bare word sqlite: a scratch file in a temporary directory.
package sqldb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	// The SQLite driver, registered as "sqlite".
	_ "modernc.org/sqlite"

	"github.com/shipgate/shipgate/internal/migrate"
)

// Table names of the recorded state. They are left out of schema
// comparisons.
const (
	migrationsTable = "shipgate_schema_migrations"
	failuresTable   = "shipgate_migration_failures"
)

// dialect is what differs between PostgreSQL and SQLite.
type dialect interface {
	// name is "postgres" or "sqlite".
	name() string
	// arg returns the placeholder of the n-th (1-based) argument.
	arg(n int) string
	// lock takes the lock that keeps two runners apart, on conn, and
	// returns its release.
	lock(ctx context.Context, conn *sql.Conn) (func(), error)
	// stateDDL creates the tables of the recorded state if missing.
	stateDDL() []string
	// checkAfter checks what the database leaves unchecked while a
	// script runs: SQLite's foreign keys, with PRAGMA foreign_key_check.
	checkAfter(ctx context.Context, q querier) error
	// schema reads the schema from the catalog, without the recorded
	// state's tables.
	schema(ctx context.Context, q querier) (migrate.Schema, error)
}

// querier is what *sql.DB, *sql.Conn and *sql.Tx have in common.
type querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// target is a parsed database URL.
type target struct {
	d dialect
	// pg is the connection config of a PostgreSQL database.
	pg *pgx.ConnConfig
	// path is the file of a SQLite database, "" for a scratch one.
	path string
	// foreignKeys turns SQLite's foreign key enforcement on while
	// migrations run. Off by default, as SQLite itself and the runners of
	// golang-migrate, goose and dbmate leave it: a table rebuild (create
	// the new table, copy, drop the old one, rename) fails with it on.
	// Either way, PRAGMA foreign_key_check runs after each script.
	foreignKeys bool
}

// ErrDatabaseURL means a database URL could not be read.
var ErrDatabaseURL = errors.New("invalid database URL")

// parseURL reads a database URL: postgres://..., postgresql://..., a
// key=value PostgreSQL connection string, sqlite:PATH, or sqlite alone
// when scratch is allowed.
func parseURL(u string, scratch bool) (target, error) {
	switch {
	case strings.HasPrefix(u, "postgres://"), strings.HasPrefix(u, "postgresql://"),
		!strings.Contains(u, "://") && strings.Contains(u, "="):
		cfg, err := pgx.ParseConfig(u)
		if err != nil {
			return target{}, fmt.Errorf("%w: %w", ErrDatabaseURL, err)
		}
		return target{d: postgres{}, pg: cfg}, nil
	case u == "sqlite" && scratch:
		return target{d: sqlite{}}, nil
	case strings.HasPrefix(u, "sqlite:"):
		p := strings.TrimPrefix(strings.TrimPrefix(u, "sqlite:"), "//")
		if p == "" {
			return target{}, fmt.Errorf("%w %q: want sqlite:PATH", ErrDatabaseURL, u)
		}
		return target{d: sqlite{}, path: p}, nil
	}
	want := "postgres://USER@HOST/DB or sqlite:PATH"
	if scratch {
		want += " or sqlite (a scratch file)"
	}
	return target{}, fmt.Errorf("%w %q: want %s", ErrDatabaseURL, redact(u), want)
}

// redact hides a password in a URL for messages.
func redact(u string) string {
	p, err := url.Parse(u)
	if err != nil || p.User == nil {
		return u
	}
	return p.Redacted()
}

// open opens the database of t. SQLite gets one connection, so that its
// pragmas hold for every statement, foreign keys as t says, and BEGIN
// IMMEDIATE for transactions.
func (t target) open(ctx context.Context) (*sql.DB, error) {
	var db *sql.DB
	if t.pg != nil {
		cfg := t.pg.Copy()
		// No statement cache: migrations change the tables that the same
		// query text reads, and a cached plan would refuse the new shape.
		cfg.DefaultQueryExecMode = pgx.QueryExecModeDescribeExec
		db = stdlib.OpenDB(*cfg)
	} else {
		q := url.Values{}
		q.Add("_pragma", "busy_timeout(10000)")
		if t.foreignKeys {
			q.Add("_pragma", "foreign_keys(1)")
		} else {
			q.Add("_pragma", "foreign_keys(0)")
		}
		q.Set("_txlock", "immediate")
		var err error
		db, err = sql.Open("sqlite", "file:"+(&url.URL{Path: t.path}).EscapedPath()+"?"+q.Encode())
		if err != nil {
			return nil, fmt.Errorf("open %s: %w", t.path, err)
		}
		db.SetMaxOpenConns(1)
		db.SetMaxIdleConns(1)
		db.SetConnMaxLifetime(0)
		db.SetConnMaxIdleTime(0)
	}
	if err := db.PingContext(ctx); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("connect to %s database: %w", t.d.name(), err)
	}
	return db, nil
}

// scratchDB creates an empty database next to t, for verification, and
// returns it with the function that drops it. On PostgreSQL it is a new
// database shipgate_verify_<random> on t's server (the user needs the
// CREATEDB privilege); on SQLite a file in a new temporary directory.
func (t target) scratchDB(ctx context.Context) (*sql.DB, func(), error) {
	if t.pg == nil {
		dir, err := os.MkdirTemp("", "shipgate-verify-")
		if err != nil {
			return nil, nil, fmt.Errorf("scratch database: %w", err)
		}
		st := target{d: t.d, path: filepath.Join(dir, "verify.db"), foreignKeys: t.foreignKeys}
		db, err := st.open(ctx)
		if err != nil {
			_ = os.RemoveAll(dir)
			return nil, nil, fmt.Errorf("scratch database: %w", err)
		}
		return db, func() { _ = db.Close(); _ = os.RemoveAll(dir) }, nil
	}
	admin, err := t.open(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("scratch database: %w", err)
	}
	defer admin.Close()
	name := "shipgate_verify_" + randomHex(6)
	if _, err := admin.ExecContext(ctx, "CREATE DATABASE "+name); err != nil {
		return nil, nil, fmt.Errorf("scratch database: create %s on %s: %w (the user needs the CREATEDB privilege)", name, t.pg.Host, err)
	}
	cfg := t.pg.Copy()
	cfg.Database = name
	st := target{d: t.d, pg: cfg}
	drop := func() {
		// A fresh context: the scratch database goes even when the
		// verification was cancelled.
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		admin, err := t.open(ctx)
		if err != nil {
			return
		}
		defer admin.Close()
		_, _ = admin.ExecContext(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
	}
	db, err := st.open(ctx)
	if err != nil {
		drop()
		return nil, nil, fmt.Errorf("scratch database: %w", err)
	}
	// One connection, so that session settings a migration makes hold
	// for the statements after it, as they would for a runner.
	db.SetMaxOpenConns(1)
	return db, func() { _ = db.Close(); drop() }, nil
}

// quote quotes an identifier for both PostgreSQL and SQLite.
func quote(name string) string { return `"` + strings.ReplaceAll(name, `"`, `""`) + `"` }

// stmtError is the failure of one statement of a script.
type stmtError struct {
	// Index is 0-based.
	Index     int
	Statement migrate.Statement
	Err       error
}

func (e *stmtError) Error() string {
	return fmt.Sprintf("statement %d (line %d): %v", e.Index+1, e.Statement.Line, e.Err)
}

func (e *stmtError) Unwrap() error { return e.Err }

// execScript runs the statements of s in order on q and stops at the
// first that fails, returning a *stmtError.
func execScript(ctx context.Context, q querier, s migrate.Script) error {
	for i, st := range s.Statements {
		if _, err := q.ExecContext(ctx, st.SQL); err != nil {
			return &stmtError{Index: i, Statement: st, Err: err}
		}
	}
	return nil
}

// runScript runs a script the way the runner does, without recording
// anything: in a transaction unless it is NO TRANSACTION, followed by the
// dialect's integrity check (SQLite's foreign_key_check).
func runScript(ctx context.Context, db *sql.DB, d dialect, s migrate.Script) error {
	if s.NoTransaction {
		if err := execScript(ctx, db, s); err != nil {
			return err
		}
		return d.checkAfter(ctx, db)
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	if err := execScript(ctx, tx, s); err != nil {
		_ = tx.Rollback()
		return err
	}
	if err := d.checkAfter(ctx, tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// readData returns the fingerprint of the rows of every table of s,
// leaving out the columns whose default is volatile (see
// migrate.VolatileDefault).
func readData(ctx context.Context, q querier, s migrate.Schema) (migrate.Data, error) {
	data := migrate.Data{}
	for name, t := range s.Tables {
		cols := make([]string, 0, len(t.Columns))
		quoted := make([]string, 0, len(t.Columns))
		for c, col := range t.Columns {
			if !migrate.VolatileDefault(col.Default) {
				cols = append(cols, c)
			}
		}
		if len(cols) == 0 {
			continue
		}
		for _, c := range cols {
			quoted = append(quoted, quote(c))
		}
		rows, err := q.QueryContext(ctx, "SELECT "+strings.Join(quoted, ", ")+" FROM "+quote(name))
		if err != nil {
			return nil, fmt.Errorf("read table %s: %w", name, err)
		}
		fp := migrate.NewTableFingerprint(cols)
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		for rows.Next() {
			if err := rows.Scan(ptrs...); err != nil {
				_ = rows.Close()
				return nil, fmt.Errorf("read table %s: %w", name, err)
			}
			fp.Add(vals)
		}
		if err := errors.Join(rows.Err(), rows.Close()); err != nil {
			return nil, fmt.Errorf("read table %s: %w", name, err)
		}
		data[name] = fp.Finish()
	}
	return data, nil
}
