package cli

import (
	"database/sql"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"

	"github.com/shipgate/shipgate/internal/audit"
	"github.com/shipgate/shipgate/internal/pgtest"
	"github.com/shipgate/shipgate/internal/postgres"
	"github.com/shipgate/shipgate/internal/sqlite"
	"github.com/shipgate/shipgate/internal/storetest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// TestStoreMigrate_RoundTrip moves a generated SQLite history into a real
// PostgreSQL with the command, then back into a new SQLite file, and
// expects the same content at each end, its audit chain verified.
func TestStoreMigrate_RoundTrip(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	src, err := sqlite.Open(ctx, filepath.Join(dir, "shipgate.db"))
	if err != nil {
		t.Fatal(err)
	}
	storetest.GenerateHistory(t, src, 30)
	want, err := src.Export(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := src.Close(); err != nil {
		t.Fatal(err)
	}
	dsn := pgtest.Shared(t).NewDatabase(t)
	e := &env{data: dir, getenv: map[string]string{}}

	r := e.runRaw(t, "-o", "json", "store", "migrate", "--from", "sqlite:"+filepath.Join(dir, "shipgate.db"), "--to", dsn)
	r.wantCode(t, ExitOK)
	var out storeMigration
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil {
		t.Fatalf("output %q: %v", r.stdout, err)
	}
	if out.Counts != want.Counts() || out.Rollouts != 30 || out.Secrets != 1 || out.Incidents == 0 || out.Outbox == 0 || out.TestRuns == 0 || out.RouteDays == 0 || out.Retirements == 0 || !out.ChainVerified {
		t.Errorf("store migrate = %+v, want %+v, chain verified", out, want.Counts())
	}

	pg, err := postgres.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	got, err := pg.Export(ctx)
	_ = pg.Close()
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("PostgreSQL after store migrate differs from the SQLite source")
	}
	if err := audit.Verify(got.Audit); err != nil {
		t.Errorf("chain in PostgreSQL: %v", err)
	}

	// And back, into a new SQLite file: the same again.
	back := filepath.Join(dir, "back.db")
	r = e.runRaw(t, "store", "migrate", "--from", dsn, "--to", "sqlite:"+back)
	r.wantCode(t, ExitOK)
	if !strings.Contains(r.stdout, "the chain verifies") {
		t.Errorf("text output %q does not say the chain verifies", r.stdout)
	}
	s2, err := sqlite.Open(ctx, back)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	again, err := s2.Export(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(again, want) {
		t.Errorf("SQLite after the round trip differs from the source")
	}

	// A running server on the target keeps the copy out.
	pg2, err := postgres.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	unlock, err := pg2.LockServer(ctx, "shipgate test server", nil)
	if err != nil {
		t.Fatal(err)
	}
	r = e.runRaw(t, "store", "migrate", "--from", "sqlite:"+filepath.Join(dir, "shipgate.db"), "--to", dsn)
	if r.code == ExitOK || !strings.Contains(r.stderr, "shipgate test server") {
		t.Errorf("copy into a store a server uses: exit %d, stderr %q; want a refusal naming the server", r.code, r.stderr)
	}
	_ = unlock()
	_ = pg2.Close()

	// A server running on the source's data dir keeps the copy out too:
	// what it writes during the copy would be lost.
	lockPath := filepath.Join(dir, "server.lock")
	lf, err := os.OpenFile(lockPath, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Flock(int(lf.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		t.Fatal(err)
	}
	_, _ = lf.WriteString("4242\n")
	other := pgtest.Shared(t).NewDatabase(t)
	r = e.runRaw(t, "store", "migrate", "--from", "sqlite:"+filepath.Join(dir, "shipgate.db"), "--to", other)
	if r.code == ExitOK || !strings.Contains(r.stderr, "pid 4242") {
		t.Errorf("copy from the store of a running server: exit %d, stderr %q; want a refusal naming its pid", r.code, r.stderr)
	}
	_ = lf.Close()

	// A target on which a server has run, and made its own key of the
	// release digests, is refused: the copied digests would not match.
	made := pgtest.Shared(t).NewDatabase(t)
	pg3, err := postgres.Open(ctx, made)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pg3.Secret(ctx, sqlite.SecretDigestKey); err != nil {
		t.Fatal(err)
	}
	_ = pg3.Close()
	r = e.runRaw(t, "store", "migrate", "--from", "sqlite:"+filepath.Join(dir, "shipgate.db"), "--to", made)
	if r.code == ExitOK || !strings.Contains(r.stderr, "release_digest") || !strings.Contains(r.stderr, "new database") {
		t.Errorf("copy into a store with its own digest key: exit %d, stderr %q; want a refusal naming the secret", r.code, r.stderr)
	}

	// A second copy into the now full target is refused, and says why.
	r = e.runRaw(t, "store", "migrate", "--from", "sqlite:"+filepath.Join(dir, "shipgate.db"), "--to", dsn)
	if r.code == ExitOK || !strings.Contains(r.stderr, "not empty") {
		t.Errorf("copy into a full store: exit %d, stderr %q; want a failure saying it is not empty", r.code, r.stderr)
	}
}

// TestStoreFlags_PasswordKeptOffTheCommandLine: a password in a store URL
// on the command line is refused without being echoed; from a file it is
// used.
func TestStoreFlags_PasswordKeptOffTheCommandLine(t *testing.T) {
	e := &env{data: t.TempDir(), getenv: map[string]string{}}
	for _, args := range [][]string{
		{"store", "migrate", "--from", "sqlite:x.db", "--to", "postgres://ship:hunter2@127.0.0.1:1/db"},
		{"store", "migrate", "--from", "postgres://ship@127.0.0.1:1/db?password=hunter2", "--to", "sqlite:x.db"},
		{"server", "--store", "postgres://ship:hunter2@127.0.0.1:1/db"},
	} {
		r := e.runRaw(t, args...)
		r.wantCode(t, ExitInvalid)
		if strings.Contains(r.stdout+r.stderr, "hunter2") {
			t.Errorf("%v: the password is printed: %q", args, r.stderr)
		}
		if !strings.Contains(r.stderr, "password-file") {
			t.Errorf("%v: %q does not say where the password goes", args, r.stderr)
		}
	}

	r := e.runRaw(t, "store", "migrate", "--from", "nowhere:x", "--to", "sqlite:y.db")
	r.wantCode(t, ExitInvalid)
	if !strings.Contains(r.stderr, "want sqlite:PATH or postgres://") {
		t.Errorf("unknown store kind: %q", r.stderr)
	}
}

// TestStoreMigrate_PasswordFile logs in to a PostgreSQL that checks the
// password of its role "ship", with the password read from a file; a
// wrong one is refused without being printed.
func TestStoreMigrate_PasswordFile(t *testing.T) {
	ctx := t.Context()
	srv := pgtest.New(t)
	admin, err := sql.Open("pgx", srv.DSN)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	var hba string
	if err := admin.QueryRowContext(ctx, `SHOW hba_file`).Scan(&hba); err != nil {
		t.Fatal(err)
	}
	// The role ship must give its password over TCP; the superuser keeps
	// trust so that the test can clean up.
	rules := "host all ship 127.0.0.1/32 scram-sha-256\nhost all all 127.0.0.1/32 trust\nlocal all all trust\n"
	if err := os.WriteFile(hba, []byte(rules), 0o600); err != nil {
		t.Skipf("cannot rewrite %s to make the server check passwords: %v", hba, err)
	}
	for _, q := range []string{`SELECT pg_reload_conf()`, `CREATE ROLE ship LOGIN PASSWORD 's3cret'`, `CREATE DATABASE ship OWNER ship`} {
		if _, err := admin.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	dsn := fmt.Sprintf("postgres://ship@127.0.0.1:%d/ship?sslmode=disable", srv.Port)
	dir := t.TempDir()
	src, err := sqlite.Open(ctx, filepath.Join(dir, "a.db"))
	if err != nil {
		t.Fatal(err)
	}
	storetest.GenerateHistory(t, src, 2)
	_ = src.Close()
	e := &env{data: dir, getenv: map[string]string{}}

	wrong := filepath.Join(dir, "wrong")
	if err := os.WriteFile(wrong, []byte("hunter2\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r := e.runRaw(t, "store", "migrate", "--from", "sqlite:"+filepath.Join(dir, "a.db"), "--to", dsn, "--to-password-file", wrong)
	if r.code == ExitOK || !strings.Contains(r.stderr, "password authentication failed") || strings.Contains(r.stderr, "hunter2") {
		t.Errorf("wrong password: exit %d, stderr %q; want a failed login that does not print the password", r.code, r.stderr)
	}

	right := filepath.Join(dir, "pgpass")
	if err := os.WriteFile(right, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r = e.runRaw(t, "store", "migrate", "--from", "sqlite:"+filepath.Join(dir, "a.db"), "--to", dsn, "--to-password-file", right)
	r.wantCode(t, ExitOK)
}
