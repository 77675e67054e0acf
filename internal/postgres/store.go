// Package postgres stores Shipgate's state (releases, rollouts,
// environment states, API tokens, feature flags, DORA changes and
// incidents, the notification outbox, test runs, route usage,
// retirements and the hash-chained audit log) in a PostgreSQL database, through pgx, so that several servers can
// share one store.
//
// It keeps the SQLite store's behaviour (internal/storetest runs the same
// contract suite against both): times are stored as the same fixed-width
// RFC 3339 text with nanoseconds (timestamptz keeps microseconds only, and
// the audit hash covers the nanoseconds), documents as JSON text, and
// duplicates map to rollout.ErrConflict. Writers of the audit log
// serialise on one head row (SELECT ... FOR UPDATE), so concurrent writers
// on any number of servers extend one linear chain.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/shipgate/shipgate/internal/rollout"
	"github.com/shipgate/shipgate/internal/store"
)

// Store is a rollout.Store (and the rest of store.Store) backed by a
// PostgreSQL database. It is safe for concurrent use, from one process or
// many.
type Store struct {
	pool *pgxpool.Pool
	// now is the clock used for timestamps the caller left zero.
	now func() time.Time
	// term is the leader term this handle won with Campaign, 0 when it
	// never campaigned; see checkTerm.
	term atomic.Int64
	// unlockServer gives up the server lock, if LockServer took it.
	unlockServer atomic.Pointer[func() error]
	// onStale, when set (OnStaleTerm), is told of each write the fence
	// refused.
	onStale atomic.Pointer[func(error)]
}

// The PostgreSQL store is everything the server keeps in a store: when a
// feature adds a table to the SQLite store and its methods to store.Store,
// this stops building until PostgreSQL holds it too.
var _ store.Store = (*Store)(nil)

// IdleInTransactionTimeout is how long PostgreSQL lets one of the store's
// transactions sit without a statement before it ends it (and its locks).
const IdleInTransactionTimeout = 3 * time.Second

// Open connects to the database at dsn (a postgres:// URL or a libpq
// key=value string; the password may come from $PGPASSWORD or
// ~/.pgpass, as with psql) and brings its schema up to date. It fails if
// the database was migrated by a newer Shipgate.
func Open(ctx context.Context, dsn string, opts ...Option) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		// pgx's parse errors can quote the DSN, password included.
		return nil, fmt.Errorf("open store %s: cannot parse the connection string", Redact(dsn))
	}
	// A server paused (SIGSTOP, a frozen VM) in the middle of a write
	// holds the share lock on the lease row (checkTerm) for as long as it
	// sleeps, and a new leader's Campaign would wait for it forever:
	// PostgreSQL ends a transaction whose client said nothing for this
	// long. Shipgate's transactions never wait on anything but the
	// database between two statements.
	if _, set := cfg.ConnConfig.RuntimeParams["idle_in_transaction_session_timeout"]; !set {
		cfg.ConnConfig.RuntimeParams["idle_in_transaction_session_timeout"] = strconv.Itoa(int(IdleInTransactionTimeout.Milliseconds()))
	}
	for _, opt := range opts {
		opt(cfg)
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", Redact(dsn), err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("open store %s: %w", Redact(dsn), err)
	}
	if err := migrate(ctx, pool); err != nil {
		pool.Close()
		return nil, fmt.Errorf("open store %s: %w", Redact(dsn), err)
	}
	return &Store{pool: pool, now: time.Now}, nil
}

// Option changes how Open connects.
type Option func(*pgxpool.Config)

// WithPassword makes Open log in with password, whatever the connection
// string says: a password read from a file stays out of the command line
// (which ps shows every user) and out of logs.
func WithPassword(password string) Option {
	return func(cfg *pgxpool.Config) { cfg.ConnConfig.Password = password }
}

// HasPassword reports whether the connection string dsn holds a password.
func HasPassword(dsn string) bool {
	if u, err := url.Parse(dsn); err == nil && u.Scheme != "" {
		_, has := u.User.Password()
		return has || u.Query().Has("password")
	}
	return strings.Contains(dsn, "password=")
}

// Redact returns dsn with its password, if any, replaced by "xxxxx", for
// logs and errors.
func Redact(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil || u.Scheme == "" {
		return "(connection string)"
	}
	if _, has := u.User.Password(); has {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
	}
	q := u.Query()
	if q.Has("password") {
		q.Set("password", "xxxxx")
		u.RawQuery = q.Encode()
	}
	return u.String()
}

// Close closes the connections. Calls after the first do nothing.
func (s *Store) Close() error {
	// The pool waits for its connections in use, the lock's among them.
	var err error
	if unlock := s.unlockServer.Load(); unlock != nil {
		err = (*unlock)()
	}
	s.pool.Close()
	return err
}

// inTx runs fn in a transaction and commits it if fn returns nil. An
// error of the connection, not of the statement, also wraps
// rollout.ErrUnavailable.
func (s *Store) inTx(ctx context.Context, fn func(pgx.Tx) error) error {
	err := s.inTx1(ctx, fn)
	if err != nil && ctx.Err() == nil && unavailable(err) {
		return fmt.Errorf("%w: %w", rollout.ErrUnavailable, err)
	}
	return err
}

// unavailable reports whether err says the database could not be reached
// or dropped the connection (SQLSTATE classes 08 and 57P0x: a connection
// failure, an administrator's shutdown, a database starting up).
func unavailable(err error) bool {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return strings.HasPrefix(pe.Code, "08") || strings.HasPrefix(pe.Code, "57P0")
	}
	var ce *pgconn.ConnectError
	var ne net.Error
	return errors.As(err, &ce) || errors.As(err, &ne) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) || pgconn.SafeToRetry(err)
}

func (s *Store) inTx1(ctx context.Context, fn func(pgx.Tx) error) error {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	if err := s.checkTerm(ctx, tx); err != nil {
		_ = tx.Rollback(ctx)
		return err
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback(ctx)
		return err
	}
	// The change feed: other servers read again (Listen).
	if _, err := tx.Exec(ctx, `SELECT pg_notify($1, '')`, ChangesChannel); err != nil {
		_ = tx.Rollback(ctx)
		return fmt.Errorf("notify the change: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// uniqueViolation is PostgreSQL's SQLSTATE for a duplicate key.
const uniqueViolation = "23505"

// isUniqueViolation reports whether err is PostgreSQL refusing a duplicate
// primary key or unique value.
func isUniqueViolation(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == uniqueViolation
}

// timeLayout is RFC 3339 in UTC with a fixed nine-digit fraction, so that
// stored times sort as text in time order (as in the SQLite store).
const timeLayout = "2006-01-02T15:04:05.000000000Z"

func formatTime(t time.Time) string { return t.UTC().Format(timeLayout) }

func formatOptionalTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return formatTime(t)
}

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

// isNoRows reports whether err is pgx finding no row.
func isNoRows(err error) bool { return errors.Is(err, pgx.ErrNoRows) }
