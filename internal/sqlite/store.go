// Package sqlite stores Shipgate's state (releases, rollouts, environment
// states, API tokens and the hash-chained audit log) in one SQLite file,
// through the pure-Go modernc.org/sqlite driver.
//
// The file is opened in WAL mode with synchronous=FULL, so a Commit that
// returned nil survives a crash of the process or of the machine, and
// readers never wait for the writer. Writes go through a single connection
// and begin with BEGIN IMMEDIATE: concurrent writers in this process queue
// for that connection instead of failing with SQLITE_BUSY, and a writer in
// another process waits up to busyTimeout for the lock.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"runtime"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/shipgate/shipgate/internal/rollout"
)

// busyTimeout is how long a connection waits for a lock held by another
// process (another shipgate, or the sqlite3 shell) before giving up.
const busyTimeout = 10 * time.Second

// Store is a rollout.Store backed by one SQLite database file. It is safe
// for concurrent use.
type Store struct {
	// write has exactly one connection, so that writers queue in Go
	// rather than race for SQLite's lock.
	write *sql.DB
	// read is a pool of read-only connections; in WAL mode they see the
	// last committed state without blocking the writer.
	read *sql.DB
	// now is the clock used for timestamps the caller left zero.
	now func() time.Time
}

var _ rollout.Store = (*Store)(nil)

// Open opens the SQLite database at path, creating it if needed, and
// brings its schema up to date. It fails if the database was written by a
// newer Shipgate whose schema this one does not know.
func Open(ctx context.Context, path string) (*Store, error) {
	if path == "" || path == ":memory:" {
		// The reader and writer pools must see the same database, which
		// an in-memory one cannot give.
		return nil, fmt.Errorf("open store: path %q: need a file path", path)
	}

	// The database holds token hashes and the audit log: only the server's
	// user may read it, whatever the umask.
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	_ = f.Close() // only created here; the driver opens it
	write, err := sql.Open("sqlite", dsn(path, false))
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	write.SetMaxOpenConns(1)
	write.SetMaxIdleConns(1)
	write.SetConnMaxLifetime(0)
	write.SetConnMaxIdleTime(0)
	if err := write.PingContext(ctx); err != nil {
		_ = write.Close()
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	if err := migrate(ctx, write); err != nil {
		_ = write.Close()
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}

	read, err := sql.Open("sqlite", dsn(path, true))
	if err != nil {
		_ = write.Close()
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	n := max(4, runtime.GOMAXPROCS(0))
	read.SetMaxOpenConns(n)
	read.SetMaxIdleConns(n)
	if err := read.PingContext(ctx); err != nil {
		_ = write.Close()
		_ = read.Close()
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	return &Store{write: write, read: read, now: time.Now}, nil
}

// dsn returns the modernc.org/sqlite data source name for path. The path
// is escaped into a file: URI so that a '?' or '#' in it is not taken for
// the start of the parameters.
func dsn(path string, readOnly bool) string {
	q := url.Values{}
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", busyTimeout.Milliseconds()))
	q.Add("_pragma", "foreign_keys(1)")
	if readOnly {
		q.Add("_pragma", "query_only(1)")
	} else {
		// journal_mode is stored in the file, so setting it once on the
		// writer is enough; synchronous is per connection and only
		// matters where commits happen.
		q.Add("_pragma", "journal_mode(WAL)")
		q.Add("_pragma", "synchronous(FULL)")
		q.Set("_txlock", "immediate")
	}
	return "file:" + (&url.URL{Path: path}).EscapedPath() + "?" + q.Encode()
}

// Close closes the database. Calls after the first return nil.
func (s *Store) Close() error {
	return errors.Join(s.read.Close(), s.write.Close())
}

// inTx runs fn in a write transaction and commits it if fn returns nil.
func (s *Store) inTx(ctx context.Context, fn func(*sql.Tx) error) error {
	tx, err := s.write.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// isUniqueViolation reports whether err is SQLite refusing a duplicate
// primary key or unique value.
func isUniqueViolation(err error) bool {
	var se *sqlite.Error
	if !errors.As(err, &se) {
		return false
	}
	return se.Code() == sqlite3.SQLITE_CONSTRAINT_UNIQUE || se.Code() == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY
}

// timeLayout is RFC 3339 in UTC with a fixed nine-digit fraction, so that
// stored times sort as text in time order.
const timeLayout = "2006-01-02T15:04:05.000000000Z"

func formatTime(t time.Time) string { return t.UTC().Format(timeLayout) }

func parseTime(s string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("parse stored time %q: %w", s, err)
	}
	return t.UTC(), nil
}

// orNow returns t, or the store's current time in UTC when t is zero.
func (s *Store) orNow(t time.Time) time.Time {
	if t.IsZero() {
		return s.now().UTC()
	}
	return t
}
