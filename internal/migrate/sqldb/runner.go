package sqldb

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/shipgate/shipgate/internal/migrate"
)

// Runner applies and reverts the migrations of one directory on one
// database, and records what it did in two tables of that database:
//
//   - shipgate_schema_migrations(version, name, applied_at, checksum): one
//     row per applied migration, written in the migration's own
//     transaction, so a migration is recorded if and only if it took
//     effect;
//   - shipgate_migration_failures(version, name, direction,
//     statement_index, file, line, error, dirty, at): the last failure of
//     a migration, until it runs successfully or is resolved. dirty is set
//     when a NO TRANSACTION migration failed after some of its statements
//     took effect.
//
// On PostgreSQL, Up, Down and Resolve hold a session advisory lock (key:
// FNV-1a of "shipgate-migrate") for their whole run, so two runners, from
// two servers or an operator and a deploy, never interleave.
type Runner struct {
	db         *sql.DB
	t          target
	migrations []migrate.Migration
	byVersion  map[int64]migrate.Migration
	now        func() time.Time
}

var _ migrate.Migrator = (*Runner)(nil)

// Open connects to the database at url (postgres://... or sqlite:PATH)
// and returns a Runner for migrations, which must be in version order as
// migrate.LoadDir returns them. Close it when done.
func Open(ctx context.Context, url string, migrations []migrate.Migration, opts ...Option) (*Runner, error) {
	t, err := parseURL(url, false)
	if err != nil {
		return nil, err
	}
	for _, m := range migrations {
		if m.OrderedByName {
			return nil, fmt.Errorf("%w: %s: its version is a file stem ordered by name, which Shipgate can check and verify but not apply (it records numeric versions); apply these migrations with their own tool", ErrNamedVersions, m.ID)
		}
	}
	for _, o := range opts {
		o(&t)
	}
	db, err := t.open(ctx)
	if err != nil {
		return nil, err
	}
	r := &Runner{db: db, t: t, migrations: migrations, byVersion: map[int64]migrate.Migration{}, now: time.Now}
	for _, m := range migrations {
		r.byVersion[m.Version] = m
	}
	return r, nil
}

// ErrNamedVersions means the migrations are ordered by file name, not by
// numeric version, and cannot be applied by the Runner.
var ErrNamedVersions = errors.New("migrations ordered by name")

// Option configures a Runner.
type Option func(*target)

// SQLiteForeignKeys turns SQLite's foreign key enforcement on while
// migrations run (on a PostgreSQL database it changes nothing). By
// default it is off, as SQLite and the common runners leave it, and
// PRAGMA foreign_key_check runs after each migration instead: a
// migration that leaves rows pointing at nothing fails there.
func SQLiteForeignKeys(on bool) Option { return func(t *target) { t.foreignKeys = on } }

// Migrations returns the runner's migrations, in version order.
func (r *Runner) Migrations() []migrate.Migration { return r.migrations }

// Close closes the connections to the database.
func (r *Runner) Close() error { return r.db.Close() }

// Verify runs the migrations on a scratch database next to the runner's:
// see the function Verify.
func (r *Runner) Verify(ctx context.Context, opts migrate.VerifyOptions) (migrate.Report, error) {
	return verify(ctx, r.t, r.migrations, opts)
}

// session is one connection holding the runner's lock.
type session struct {
	r      *Runner
	conn   *sql.Conn
	unlock func()
}

// begin takes a connection and the lock, and creates the state tables if
// they are missing.
func (r *Runner) begin(ctx context.Context) (*session, error) {
	conn, err := r.db.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	unlock, err := r.t.d.lock(ctx, conn)
	if err != nil {
		_ = conn.Close()
		return nil, err
	}
	s := &session{r: r, conn: conn, unlock: unlock}
	for _, ddl := range r.t.d.stateDDL() {
		if _, err := conn.ExecContext(ctx, ddl); err != nil {
			s.end()
			return nil, fmt.Errorf("create migration state tables: %w", err)
		}
	}
	return s, nil
}

func (s *session) end() {
	s.unlock()
	_ = s.conn.Close()
}

// Status returns where the database stands against the directory. It
// changes nothing: on a database never migrated, everything is pending.
func (r *Runner) Status(ctx context.Context) (migrate.Status, error) {
	conn, err := r.db.Conn(ctx)
	if err != nil {
		return migrate.Status{}, fmt.Errorf("connect: %w", err)
	}
	defer conn.Close()
	return r.status(ctx, conn)
}

func (r *Runner) status(ctx context.Context, q querier) (migrate.Status, error) {
	st := migrate.Status{Applied: []migrate.Record{}, Pending: []int64{}}
	schema, err := r.stateTablesExist(ctx, q)
	if err != nil {
		return st, err
	}
	if schema {
		err := queryEach(ctx, q, `SELECT version, name, applied_at, checksum FROM `+migrationsTable+` ORDER BY version`, func(rows *sql.Rows) error {
			var rec migrate.Record
			var at any
			if err := rows.Scan(&rec.Version, &rec.Name, &at, &rec.Checksum); err != nil {
				return err
			}
			rec.AppliedAt = scanTime(at)
			st.Applied = append(st.Applied, rec)
			return nil
		})
		if err != nil {
			return st, fmt.Errorf("read applied migrations: %w", err)
		}
		err = queryEach(ctx, q, `SELECT version, name, direction, statement_index, file, line, error, dirty, at FROM `+failuresTable+` ORDER BY at DESC, version DESC`, func(rows *sql.Rows) error {
			var f migrate.Failure
			var at any
			if err := rows.Scan(&f.Version, &f.Name, &f.Direction, &f.Statement, &f.File, &f.Line, &f.Error, &f.Dirty, &at); err != nil {
				return err
			}
			f.At = scanTime(at)
			if f.Dirty {
				st.Dirty = true
			}
			// The newest failure is the one to show, unless an older one
			// left the database dirty: that one blocks everything.
			if st.Failure == nil || f.Dirty && !st.Failure.Dirty {
				st.Failure = &f
			}
			return nil
		})
		if err != nil {
			return st, fmt.Errorf("read migration failures: %w", err)
		}
	}
	applied := map[int64]bool{}
	for _, rec := range st.Applied {
		applied[rec.Version] = true
		st.Version = max(st.Version, rec.Version)
		m, ok := r.byVersion[rec.Version]
		switch {
		case !ok:
			st.Unknown = append(st.Unknown, rec.Version)
		case m.Checksum != rec.Checksum:
			st.Modified = append(st.Modified, rec.Version)
		}
	}
	for _, m := range r.migrations {
		if !applied[m.Version] {
			st.Pending = append(st.Pending, m.Version)
		}
	}
	return st, nil
}

func (r *Runner) stateTablesExist(ctx context.Context, q querier) (bool, error) {
	var query string
	switch r.t.d.(type) {
	case postgres:
		query = `SELECT count(*) FROM pg_tables WHERE schemaname = current_schema() AND tablename IN ('` + migrationsTable + `', '` + failuresTable + `')`
	default:
		query = `SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name IN ('` + migrationsTable + `', '` + failuresTable + `')`
	}
	var n int
	if err := q.QueryRowContext(ctx, query).Scan(&n); err != nil {
		return false, fmt.Errorf("read migration state: %w", err)
	}
	return n == 2, nil
}

// scanTime reads a time stored as timestamptz (PostgreSQL) or RFC 3339
// text (SQLite).
func scanTime(v any) time.Time {
	switch v := v.(type) {
	case time.Time:
		return v.UTC()
	case string:
		t, _ := time.Parse(time.RFC3339Nano, v)
		return t.UTC()
	case []byte:
		t, _ := time.Parse(time.RFC3339Nano, string(v))
		return t.UTC()
	}
	return time.Time{}
}

// timeArg returns t as the dialect stores it.
func (r *Runner) timeArg(t time.Time) any {
	if _, ok := r.t.d.(sqlite); ok {
		return t.UTC().Format(time.RFC3339Nano)
	}
	return t.UTC()
}

// Up applies the pending migrations up to target (0 for all) in version
// order, each in a transaction of its own unless it is NO TRANSACTION,
// and returns the versions it applied. On a failure it returns the
// versions applied before it, and the error, which says which statement of
// which file failed; the failure is recorded for Status. Up refuses to
// start on a dirty database, on one with migrations the directory does
// not have, and when a pending migration is older than an applied one.
// Calling Up again after success applies nothing.
func (r *Runner) Up(ctx context.Context, target int64) ([]int64, error) {
	s, err := r.begin(ctx)
	if err != nil {
		return nil, err
	}
	defer s.end()
	st, err := r.status(ctx, s.conn)
	if err != nil {
		return nil, err
	}
	if err := blocked(st); err != nil {
		return nil, err
	}
	if len(st.Unknown) > 0 {
		return nil, fmt.Errorf("%w: versions %v are applied but not in the directory (migrated by a newer release?); run with that release's migrations", migrate.ErrUnknownVersion, st.Unknown)
	}
	var pending []migrate.Migration
	for _, v := range st.Pending {
		if target > 0 && v > target {
			break
		}
		if v < st.Version {
			return nil, fmt.Errorf("%w: %s is not applied but version %d is; give it a version above %d", migrate.ErrOutOfOrder, r.byVersion[v].ID, st.Version, st.Version)
		}
		pending = append(pending, r.byVersion[v])
	}
	applied := []int64{}
	for _, m := range pending {
		done, err := s.apply(ctx, m, migrate.DirectionUp)
		if err != nil {
			return applied, err
		}
		if done {
			applied = append(applied, m.Version)
		}
	}
	return applied, nil
}

// blocked returns ErrDirty, with where and what to do, for a dirty
// database.
func blocked(st migrate.Status) error {
	if !st.Dirty || st.Failure == nil {
		return nil
	}
	f := st.Failure
	return fmt.Errorf("%w: %s failed outside a transaction at %s, after statements 1 to %d took effect: %s; repair the database by hand, then run `shipgate migrate resolve %d --applied` (if you finished the migration) or `--undone` (if you undid its statements)",
		migrate.ErrDirty, f.Name, f.Where(), f.Statement-1, f.Error, f.Version)
}

// Down runs the down scripts of exactly versions, newest first, each in a
// transaction of its own unless NO TRANSACTION, and deletes their records.
// Versions that are not applied are skipped, so Down can be called again
// after a crash. It refuses to undo a version under an applied one that is
// not in versions, and a version without a down script.
func (r *Runner) Down(ctx context.Context, versions []int64) error {
	_, err := r.down(ctx, func(st migrate.Status) ([]int64, error) {
		applied := map[int64]bool{}
		for _, rec := range st.Applied {
			applied[rec.Version] = true
		}
		var todo []int64
		for _, v := range versions {
			if applied[v] && !slices.Contains(todo, v) {
				todo = append(todo, v)
			}
		}
		if len(todo) == 0 {
			return nil, nil
		}
		lowest := slices.Min(todo)
		for _, rec := range st.Applied {
			if rec.Version > lowest && !slices.Contains(todo, rec.Version) {
				return nil, fmt.Errorf("cannot undo version %d: version %d is applied after it and is not being undone; include it", lowest, rec.Version)
			}
		}
		return todo, nil
	})
	return err
}

// DownTo undoes every applied version above target, newest first, and
// returns them.
func (r *Runner) DownTo(ctx context.Context, target int64) ([]int64, error) {
	return r.down(ctx, func(st migrate.Status) ([]int64, error) {
		var todo []int64
		for _, rec := range st.Applied {
			if rec.Version > target {
				todo = append(todo, rec.Version)
			}
		}
		return todo, nil
	})
}

func (r *Runner) down(ctx context.Context, pick func(migrate.Status) ([]int64, error)) ([]int64, error) {
	s, err := r.begin(ctx)
	if err != nil {
		return nil, err
	}
	defer s.end()
	st, err := r.status(ctx, s.conn)
	if err != nil {
		return nil, err
	}
	if err := blocked(st); err != nil {
		return nil, err
	}
	todo, err := pick(st)
	if err != nil {
		return nil, err
	}
	slices.Sort(todo)
	slices.Reverse(todo)
	for _, v := range todo {
		m, ok := r.byVersion[v]
		switch {
		case !ok:
			return nil, fmt.Errorf("%w: cannot undo version %d: it is not in the directory; run with the migrations of the release that applied it", migrate.ErrUnknownVersion, v)
		case m.Irreversible != nil && !m.Reversible():
			return nil, fmt.Errorf("%w: cannot undo %s: it is irreversible on purpose (%s:%d: %s)", migrate.ErrNotReversible, m.ID, m.Irreversible.File, m.Irreversible.Line, m.Irreversible.Reason)
		case !m.Reversible():
			return nil, fmt.Errorf("%w: cannot undo %s: it has no down statements", migrate.ErrNotReversible, m.ID)
		}
	}
	var undone []int64
	for _, v := range todo {
		done, err := s.apply(ctx, r.byVersion[v], migrate.DirectionDown)
		if err != nil {
			return undone, err
		}
		if done {
			undone = append(undone, v)
		}
	}
	if len(todo) > 0 {
		// Undoing the versions below a failed migration is one of the two
		// ways out of its failure: forget it, unless it left the database
		// dirty (then nothing ran).
		//nolint:gosec // G202: a constant table name and the dialect's placeholders; values are bound
		if _, err := s.conn.ExecContext(ctx, `DELETE FROM `+failuresTable+` WHERE version > `+r.t.d.arg(1)+` AND NOT dirty`, slices.Min(todo)); err != nil {
			return undone, fmt.Errorf("clear failures: %w", err)
		}
	}
	return undone, nil
}

// Resolve is the way out of a dirty database, once a person has repaired
// it by hand: it records version as applied (applied true: the person
// finished the migration) or as not applied (false: the person undid the
// statements that took effect), and forgets its failure.
func (r *Runner) Resolve(ctx context.Context, version int64, applied bool) error {
	m, ok := r.byVersion[version]
	if !ok {
		return fmt.Errorf("resolve: version %d is not in the directory", version)
	}
	s, err := r.begin(ctx)
	if err != nil {
		return err
	}
	defer s.end()
	tx, err := s.conn.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("resolve: begin: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	d := r.t.d
	//nolint:gosec // G202: a constant table name and the dialect's placeholders; values are bound
	if _, err := tx.ExecContext(ctx, `DELETE FROM `+migrationsTable+` WHERE version = `+d.arg(1), version); err != nil {
		return fmt.Errorf("resolve: %w", err)
	}
	if applied {
		if err := r.record(ctx, tx, m); err != nil {
			return fmt.Errorf("resolve: %w", err)
		}
	}
	//nolint:gosec // G202: a constant table name and the dialect's placeholders; values are bound
	if _, err := tx.ExecContext(ctx, `DELETE FROM `+failuresTable+` WHERE version = `+d.arg(1), version); err != nil {
		return fmt.Errorf("resolve: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("resolve: commit: %w", err)
	}
	return nil
}

func (r *Runner) record(ctx context.Context, q querier, m migrate.Migration) error {
	d := r.t.d
	_, err := q.ExecContext(ctx, `INSERT INTO `+migrationsTable+` (version, name, applied_at, checksum) VALUES (`+d.arg(1)+`, `+d.arg(2)+`, `+d.arg(3)+`, `+d.arg(4)+`)`,
		m.Version, m.Name, r.timeArg(r.now()), m.Checksum)
	if err != nil {
		return fmt.Errorf("record %s: %w", m.ID, err)
	}
	return nil
}

// apply runs one script of m and records the outcome. It returns false,
// nil when there was nothing to do: the migration was already applied (up)
// or not applied (down), as another runner may have left it.
func (s *session) apply(ctx context.Context, m migrate.Migration, dir migrate.Direction) (bool, error) {
	r, d := s.r, s.r.t.d
	script := m.Up
	if dir == migrate.DirectionDown {
		script = m.Down
	}
	// change records the outcome on q: the record written or deleted and
	// the migration's old failure forgotten.
	change := func(q querier) error {
		if dir == migrate.DirectionUp {
			if err := r.record(ctx, q, m); err != nil {
				return err
			}
		} else if _, err := q.ExecContext(ctx, `DELETE FROM `+migrationsTable+` WHERE version = `+d.arg(1), m.Version); err != nil {
			return fmt.Errorf("forget %s: %w", m.ID, err)
		}
		if _, err := q.ExecContext(ctx, `DELETE FROM `+failuresTable+` WHERE version = `+d.arg(1), m.Version); err != nil {
			return fmt.Errorf("clear the failure of %s: %w", m.ID, err)
		}
		return nil
	}
	pending := func(q querier) (bool, error) {
		var n int
		if err := q.QueryRowContext(ctx, `SELECT count(*) FROM `+migrationsTable+` WHERE version = `+d.arg(1), m.Version).Scan(&n); err != nil {
			return false, fmt.Errorf("read migration state: %w", err)
		}
		return (n == 0) == (dir == migrate.DirectionUp), nil
	}

	if script.NoTransaction {
		if ok, err := pending(s.conn); err != nil || !ok {
			return false, err
		}
		if err := execScript(ctx, s.conn, script); err != nil {
			return false, s.fail(ctx, m, dir, script, err, true)
		}
		if err := d.checkAfter(ctx, s.conn); err != nil {
			// Every statement took effect: record it, and say what the
			// check found.
			if cerr := change(s.conn); cerr != nil {
				return false, cerr
			}
			return true, fmt.Errorf("migrate %s %s: %w", dir, m.ID, err)
		}
		return true, change(s.conn)
	}

	tx, err := s.conn.BeginTx(ctx, nil)
	if err != nil {
		return false, fmt.Errorf("%s %s: begin: %w", m.ID, dir, err)
	}
	if ok, err := pending(tx); err != nil || !ok {
		_ = tx.Rollback()
		return false, err
	}
	if err := execScript(ctx, tx, script); err != nil {
		_ = tx.Rollback()
		return false, s.fail(ctx, m, dir, script, err, false)
	}
	if err := d.checkAfter(ctx, tx); err != nil {
		_ = tx.Rollback()
		return false, s.fail(ctx, m, dir, script, err, false)
	}
	if err := change(tx); err != nil {
		_ = tx.Rollback()
		return false, err
	}
	if err := tx.Commit(); err != nil {
		return false, s.fail(ctx, m, dir, script, fmt.Errorf("commit: %w", err), false)
	}
	return true, nil
}

// fail records the failure of a script and returns the error to give the
// caller. noTx says the script ran outside a transaction: statements
// before the failed one took effect, and if there were any, the database
// is dirty.
func (s *session) fail(ctx context.Context, m migrate.Migration, dir migrate.Direction, script migrate.Script, err error, noTx bool) error {
	r, d := s.r, s.r.t.d
	f := migrate.Failure{Version: m.Version, Name: m.Name, Direction: dir, File: script.File, Line: script.Line, Error: err.Error(), At: r.now().UTC()}
	var se *stmtError
	if errors.As(err, &se) {
		f.Statement, f.Line, f.Error = se.Index+1, se.Statement.Line, se.Err.Error()
		f.Dirty = noTx && se.Index > 0
	}
	args := []any{f.Version, f.Name, string(f.Direction), f.Statement, f.File, f.Line, f.Error, f.Dirty, r.timeArg(f.At)}
	ph := make([]string, len(args))
	for i := range ph {
		ph[i] = d.arg(i + 1)
	}
	// The failure is written on the session's connection outside any
	// transaction: the migration's own was rolled back.
	//nolint:gosec // G202: a constant table name and the dialect's placeholders; values are bound
	_, rerr := s.conn.ExecContext(context.WithoutCancel(ctx), `INSERT INTO `+failuresTable+` (version, name, direction, statement_index, file, line, error, dirty, at) VALUES (`+strings.Join(ph, ", ")+`)
ON CONFLICT (version) DO UPDATE SET name = excluded.name, direction = excluded.direction, statement_index = excluded.statement_index,
  file = excluded.file, line = excluded.line, error = excluded.error, dirty = excluded.dirty, at = excluded.at`, args...)
	msg := fmt.Sprintf("migrate %s %s: %s: %s", dir, m.ID, f.Where(), f.Error)
	switch {
	case f.Dirty:
		msg += fmt.Sprintf("; it ran outside a transaction, so statements 1 to %d took effect and the database is dirty", f.Statement-1)
	case noTx:
		msg += "; nothing took effect"
	default:
		msg += "; its transaction was rolled back"
	}
	if rerr != nil {
		msg += fmt.Sprintf(" (recording the failure failed too: %v)", rerr)
	}
	return &MigrationError{Failure: f, Err: err, msg: msg}
}

// MigrationError is the error of a migration that failed; Failure is
// what was recorded about it.
type MigrationError struct {
	Failure migrate.Failure
	Err     error
	msg     string
}

// Error says which statement of which migration failed, why, and what
// state that left.
func (e *MigrationError) Error() string { return e.msg }

// Unwrap returns the database's error.
func (e *MigrationError) Unwrap() error { return e.Err }

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
