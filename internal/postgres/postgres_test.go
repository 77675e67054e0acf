package postgres

import (
	"database/sql"
	"errors"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/shipgate/shipgate/internal/audit"
	"github.com/shipgate/shipgate/internal/pgtest"
	"github.com/shipgate/shipgate/internal/rollout"
	"github.com/shipgate/shipgate/internal/sqlite"
	"github.com/shipgate/shipgate/internal/store"
	"github.com/shipgate/shipgate/internal/storetest"
)

// TestStore_AuditAppendOnly goes around the Store, straight to SQL, and
// expects the database itself to refuse changing or forking the log.
func TestStore_AuditAppendOnly(t *testing.T) {
	dsn := pgtest.Shared(t).NewDatabase(t)
	s := openStore(t, dsn, nil)
	ctx := t.Context()
	events := []audit.Event{
		{Actor: "user:alice", Action: audit.ActionDeploy, Subject: "shop/production/v1"},
		{Actor: "user:alice", Action: audit.ActionStep, Subject: "rollout/1"},
	}
	if err := s.Commit(ctx, rollout.Change{Audit: events}); err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()

	tests := []struct {
		name    string
		sql     string
		args    []any
		wantErr string
	}{
		{"update", `UPDATE audit_events SET reason = 'nothing happened' WHERE seq = 1`, nil, "append-only"},
		{"delete", `DELETE FROM audit_events WHERE seq = 2`, nil, "append-only"},
		{"truncate", `TRUNCATE audit_events`, nil, "append-only"},
		{"insert a gap", `INSERT INTO audit_events (seq, time, actor, action, subject, reason, outcome, data, prev_hash, hash)
			VALUES (5, '2024-01-01T00:00:00Z', 'a', 'b', '', '', '', '{}', $1, $2)`, []any{events[1].Hash, strings.Repeat("a", 64)}, "continue the chain"},
		{"insert a fork", `INSERT INTO audit_events (seq, time, actor, action, subject, reason, outcome, data, prev_hash, hash)
			VALUES (3, '2024-01-01T00:00:00Z', 'a', 'b', '', '', '', '{}', $1, $2)`, []any{events[0].Hash, strings.Repeat("a", 64)}, "continue the chain"},
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

// TestCopy_FromSQLite moves a generated SQLite history into PostgreSQL
// and expects the same content back, its audit chain verified.
func TestCopy_FromSQLite(t *testing.T) {
	ctx := t.Context()
	src, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "shipgate.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	storetest.GenerateHistory(t, src, 40)
	dst := openStore(t, pgtest.Shared(t).NewDatabase(t), nil)

	want, err := src.Export(ctx)
	if err != nil {
		t.Fatal(err)
	}
	counts, err := store.Copy(ctx, src, dst)
	if err != nil {
		t.Fatalf("Copy: %v", err)
	}
	if counts != want.Counts() || counts.Rollouts != 40 || counts.AuditEvents != 40*3+12 || counts.TestRuns == 0 || counts.Outbox == 0 || counts.Retirements == 0 {
		t.Errorf("Copy = %+v, want %+v: 40 rollouts, %d audit events, and every later table", counts, want.Counts(), 40*3+12)
	}
	got, err := dst.Export(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("PostgreSQL holds\n%+v\nwant what SQLite holds\n%+v", got, want)
	}
}

func TestRedact(t *testing.T) {
	tests := []struct{ in, want string }{
		{"postgres://ship:s3cret@db:5432/shipgate?sslmode=require", "postgres://ship:xxxxx@db:5432/shipgate?sslmode=require"},
		{"postgres://ship@db/shipgate?password=s3cret", "postgres://ship@db/shipgate?password=xxxxx"},
		{"postgres://db/shipgate", "postgres://db/shipgate"},
		{"host=db password=s3cret", "(connection string)"},
	}
	for _, tt := range tests {
		if got := Redact(tt.in); got != tt.want {
			t.Errorf("Redact(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// TestStore_LockServer: a second server is refused while the first holds
// the lock, which names its holder; the lock is free again once given up,
// and its loss (the session killed, as a database restart does) is
// reported.
func TestStore_LockServer(t *testing.T) {
	ctx := t.Context()
	dsn := pgtest.Shared(t).NewDatabase(t)
	a, b := openStore(t, dsn, nil), openStore(t, dsn, nil)
	unlock, err := a.LockServer(ctx, "shipgate test-a", nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = b.LockServer(ctx, "shipgate test-b", nil)
	if !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), "shipgate test-a") {
		t.Fatalf("second LockServer = %v, want ErrLocked naming shipgate test-a", err)
	}
	if err := unlock(); err != nil {
		t.Fatal(err)
	}
	lost := make(chan error, 1)
	if _, err = b.LockServer(ctx, "shipgate test-b", func(err error) { lost <- err }); err != nil {
		t.Fatalf("LockServer after the first gave it up: %v", err)
	}
	if _, err := a.pool.Exec(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'shipgate test-b'`); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-lost:
		if !strings.Contains(err.Error(), "lost") {
			t.Errorf("lost with %v", err)
		}
	case <-time.After(5 * lockCheck):
		t.Fatal("the loss of the lock's session was not reported")
	}
	if _, err := a.LockServer(ctx, "shipgate test-a", nil); err != nil {
		t.Errorf("LockServer once the holder's session is gone: %v", err)
	}
}

// BenchmarkCopy_FromSQLite copies a history of 500 rollouts (1,512 audit
// events, and the tables of DORA, notifications, test runs, route usage
// and retirements) from SQLite into a new PostgreSQL database per iteration.
func BenchmarkCopy_FromSQLite(b *testing.B) {
	ctx := b.Context()
	src, err := sqlite.Open(ctx, filepath.Join(b.TempDir(), "shipgate.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer src.Close()
	storetest.GenerateHistory(b, src, 500)
	srv := pgtest.Shared(b)
	for b.Loop() {
		b.StopTimer()
		dst, err := Open(ctx, srv.NewDatabase(b))
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		if _, err := store.Copy(ctx, src, dst); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		_ = dst.Close()
		b.StartTimer()
	}
}
