package sqlite

import (
	"bufio"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/shipgate/shipgate/internal/audit"
	"github.com/shipgate/shipgate/internal/rollout"
	"github.com/shipgate/shipgate/internal/storetest"
)

func openStore(t *testing.T) (*Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "shipgate.db")
	s, err := Open(t.Context(), path)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s, path
}

// rawDB opens the database file directly, as an operator with the sqlite3
// shell would.
func rawDB(t *testing.T, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", path+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

func count(t *testing.T, db *sql.DB, table string) int {
	t.Helper()
	var n int
	if err := db.QueryRowContext(t.Context(), `SELECT count(*) FROM `+table).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestOpen_Pragmas(t *testing.T) {
	s, _ := openStore(t)
	tests := []struct {
		pragma string
		want   string
	}{
		{"journal_mode", "wal"},
		{"synchronous", "2"}, // FULL
		{"foreign_keys", "1"},
		{"busy_timeout", strconv.FormatInt(busyTimeout.Milliseconds(), 10)},
	}
	for _, tt := range tests {
		t.Run(tt.pragma, func(t *testing.T) {
			var got string
			if err := s.write.QueryRowContext(t.Context(), "PRAGMA "+tt.pragma).Scan(&got); err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("PRAGMA %s = %s, want %s", tt.pragma, got, tt.want)
			}
		})
	}
}

func TestOpen_Path(t *testing.T) {
	tests := []struct {
		name    string
		file    string
		wantErr bool
	}{
		{"plain", "shipgate.db", false},
		{"question mark and hash", "odd?name#1.db", false},
		{"space and percent", "my state %20.db", false},
		{"memory", ":memory:", true},
		{"empty", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := tt.file
			if path != ":memory:" && path != "" {
				path = filepath.Join(t.TempDir(), tt.file)
			}
			s, err := Open(t.Context(), path)
			if tt.wantErr {
				if err == nil {
					_ = s.Close()
					t.Fatal("Open succeeded, want an error")
				}
				return
			}
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			defer func() { _ = s.Close() }()
			if _, err := os.Stat(path); err != nil {
				t.Errorf("database not created at %q: %v", path, err)
			}
		})
	}
}

// TestStore_AuditAppendOnly goes around the Store, straight to SQL, and
// expects the database itself to refuse changing the log.
func TestStore_AuditAppendOnly(t *testing.T) {
	s, path := openStore(t)
	ctx := t.Context()
	events := []audit.Event{storetest.Event(audit.ActionDeploy, "shop/production/v1"), storetest.Event(audit.ActionStep, "rollout/1")}
	if err := s.Commit(ctx, rollout.Change{Audit: events}); err != nil {
		t.Fatal(err)
	}
	db := rawDB(t, path)

	tests := []struct {
		name    string
		sql     string
		args    []any
		wantErr string
	}{
		{"update", `UPDATE audit_events SET reason = 'nothing happened' WHERE seq = 1`, nil, "append-only"},
		{"delete", `DELETE FROM audit_events WHERE seq = 2`, nil, "append-only"},
		{"delete all", `DELETE FROM audit_events`, nil, "append-only"},
		{"insert a gap", `INSERT INTO audit_events (seq, time, actor, action, subject, reason, outcome, data, prev_hash, hash)
			VALUES (5, '2024-01-01T00:00:00Z', 'a', 'b', '', '', '', '{}', ?, ?)`, []any{events[1].Hash, strings.Repeat("a", 64)}, "continue the chain"},
		{"insert a fork", `INSERT INTO audit_events (seq, time, actor, action, subject, reason, outcome, data, prev_hash, hash)
			VALUES (3, '2024-01-01T00:00:00Z', 'a', 'b', '', '', '', '{}', ?, ?)`, []any{events[0].Hash, strings.Repeat("a", 64)}, "continue the chain"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := db.ExecContext(ctx, tt.sql, tt.args...)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("%s = %v, want an error containing %q", tt.name, err, tt.wantErr)
			}
		})
	}

	chain, err := s.AuditChain(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(chain, events) {
		t.Errorf("audit log changed:\n%+v\nwant\n%+v", chain, events)
	}
}

// crashChildEnv, when set to a database path, makes TestStore_CrashDurability
// the child: it commits in a loop, reporting each Commit that returned, until
// the parent kills it.
const crashChildEnv = "SHIPGATE_SQLITE_CRASH_CHILD"

func TestStore_CrashDurability(t *testing.T) {
	if path := os.Getenv(crashChildEnv); path != "" {
		crashChild(path)
		return
	}
	path := filepath.Join(t.TempDir(), "shipgate.db")
	cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^TestStore_CrashDurability$")
	cmd.Env = append(os.Environ(), crashChildEnv+"="+path)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })

	// Read reports until enough Commits returned, then kill the child while
	// it is in the middle of more.
	const want = 25
	type committed struct{ id, seq int64 }
	var done []committed
	sc := bufio.NewScanner(stdout)
	for len(done) < want && sc.Scan() {
		var c committed
		if _, err := fmt.Sscanf(sc.Text(), "committed %d %d", &c.id, &c.seq); err == nil {
			done = append(done, c)
		}
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	if len(done) < want {
		t.Fatalf("child reported %d commits before it stopped, want %d", len(done), want)
	}

	s, err := Open(t.Context(), path)
	if err != nil {
		t.Fatalf("reopen after kill: %v", err)
	}
	defer func() { _ = s.Close() }()
	for _, c := range done {
		r, err := s.GetRollout(t.Context(), c.id)
		if err != nil {
			t.Errorf("rollout %d, reported committed, is lost: %v", c.id, err)
		} else if r.Phase != rollout.PhaseRunning {
			t.Errorf("rollout %d has phase %q", c.id, r.Phase)
		}
	}
	chain, err := s.AuditChain(t.Context(), 1)
	if err != nil {
		t.Fatal(err)
	}
	if last := done[len(done)-1].seq; int64(len(chain)) < last {
		t.Errorf("chain has %d events, want at least the %d reported", len(chain), last)
	}
	if err := audit.Verify(chain); err != nil {
		t.Errorf("Verify after kill: %v", err)
	}
}

func crashChild(path string) {
	ctx := context.Background()
	s, err := Open(ctx, path)
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		os.Exit(2)
	}
	for i := 0; ; i++ {
		r := storetest.NewRollout("shop", "production", "v"+strconv.Itoa(i))
		events := []audit.Event{storetest.Event(audit.ActionDeploy, "shop/production/v"+strconv.Itoa(i))}
		if err := s.Commit(ctx, rollout.Change{Rollout: &r, Audit: events}); err != nil {
			fmt.Fprintln(os.Stderr, "child:", err)
			os.Exit(2)
		}
		fmt.Printf("committed %d %d\n", r.ID, events[0].Seq)
	}
}

func TestStore_Migrations(t *testing.T) {
	t.Run("opening twice is a no-op", func(t *testing.T) {
		s, path := openStore(t)
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		db := rawDB(t, path)
		before := migrationRows(t, db)
		s2, err := Open(t.Context(), path)
		if err != nil {
			t.Fatalf("second Open: %v", err)
		}
		_ = s2.Close()
		after := migrationRows(t, db)
		if len(before) != len(migrations) || !reflect.DeepEqual(before, after) {
			t.Errorf("schema_migrations %v after the first Open and %v after the second, want %d unchanged rows", before, after, len(migrations))
		}
	})

	t.Run("a new step is applied once", func(t *testing.T) {
		s, path := openStore(t)
		_ = s.Close()
		withMigrations(t, append(migrations[:len(migrations):len(migrations)], `CREATE TABLE extra (x INTEGER)`))
		for range 2 {
			s, err := Open(t.Context(), path)
			if err != nil {
				t.Fatalf("Open with a new step: %v", err)
			}
			_ = s.Close()
		}
		db := rawDB(t, path)
		if got := len(migrationRows(t, db)); got != len(migrations) {
			t.Errorf("%d versions recorded, want %d", got, len(migrations))
		}
		if got := count(t, db, "extra"); got != 0 {
			t.Errorf("extra table has %d rows", got)
		}
	})

	t.Run("a failing step changes nothing", func(t *testing.T) {
		s, path := openStore(t)
		_ = s.Close()
		withMigrations(t, append(migrations[:len(migrations):len(migrations)], `CREATE TABLE half (x INTEGER); SELECT no_such_function();`))
		if s, err := Open(t.Context(), path); err == nil {
			_ = s.Close()
			t.Fatal("Open with a bad step succeeded")
		} else if !strings.Contains(err.Error(), fmt.Sprintf("schema version %d", len(migrations))) {
			t.Errorf("error %q does not name the step", err)
		}
		db := rawDB(t, path)
		if got := len(migrationRows(t, db)); got != len(migrations)-1 {
			t.Errorf("%d versions recorded, want %d", got, len(migrations)-1)
		}
		var n int
		if err := db.QueryRowContext(t.Context(), `SELECT count(*) FROM sqlite_schema WHERE name = 'half'`).Scan(&n); err != nil || n != 0 {
			t.Errorf("table of the failed step exists (%d, %v)", n, err)
		}
	})

	t.Run("a newer schema is refused", func(t *testing.T) {
		s, path := openStore(t)
		_ = s.Close()
		db := rawDB(t, path)
		newer := len(migrations) + 3
		if _, err := db.ExecContext(t.Context(), `INSERT INTO schema_migrations (version, applied_at) VALUES (?, 'later')`, newer); err != nil {
			t.Fatal(err)
		}
		s2, err := Open(t.Context(), path)
		if err == nil {
			_ = s2.Close()
			t.Fatal("Open of a newer schema succeeded")
		}
		if !errors.Is(err, ErrSchemaTooNew) {
			t.Errorf("Open = %v, want ErrSchemaTooNew", err)
		}
		for _, want := range []string{fmt.Sprintf("schema version %d", newer), fmt.Sprintf("up to %d", len(migrations))} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not say %q", err, want)
			}
		}
	})
}

func migrationRows(t *testing.T, db *sql.DB) []string {
	t.Helper()
	rows, err := db.QueryContext(t.Context(), `SELECT version, applied_at FROM schema_migrations ORDER BY version`)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = rows.Close() }()
	var out []string
	for rows.Next() {
		var v int
		var at string
		if err := rows.Scan(&v, &at); err != nil {
			t.Fatal(err)
		}
		out = append(out, fmt.Sprintf("%d@%s", v, at))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// withMigrations replaces the schema steps for one test.
func withMigrations(t *testing.T, steps []string) {
	old := migrations
	migrations = steps
	t.Cleanup(func() { migrations = old })
}
