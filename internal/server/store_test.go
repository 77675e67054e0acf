package server_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shipgate/shipgate/internal/api"
	"github.com/shipgate/shipgate/internal/audit"
	"github.com/shipgate/shipgate/internal/config"
	"github.com/shipgate/shipgate/internal/flags"
	"github.com/shipgate/shipgate/internal/pgtest"
	"github.com/shipgate/shipgate/internal/postgres"
	"github.com/shipgate/shipgate/internal/retire"
	"github.com/shipgate/shipgate/internal/server"
)

// TestServer_PostgresStore runs the control plane on a real PostgreSQL:
// its admin token authenticates through the API, nothing is written to a
// SQLite file, and a second server on the same store starts beside it
// (one leads, docs/ha.md) with an admin token of its own, leaving the
// first one's valid.
func TestServer_PostgresStore(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "shipgate.yaml")
	if err := os.WriteFile(path, fmt.Appendf(nil, testConfig, shopBin, freePort(t), quickSteps), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	dsn := pgtest.Shared(t).NewDatabase(t)
	dataA, dataB := filepath.Join(t.TempDir(), "a"), filepath.Join(t.TempDir(), "b")

	a, err := server.Start(ctx, server.Options{Config: cfg, DataDir: dataA, Listen: "127.0.0.1:0", Store: dsn, ServerID: "a"})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close(ctx)
	if _, err := api.NewClient(a.APIURL, a.AdminToken, nil).Status(ctx, "shop"); err != nil {
		t.Fatalf("status with the admin token of a server on PostgreSQL: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dataA, "shipgate.db")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a SQLite file was made beside a PostgreSQL store: %v", err)
	}

	// A second server's data plane must not be the first's routers: the
	// in-process router of this test listens on the config's port, so
	// the second one gets a config with another.
	cfgB, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, env := range cfgB.Environments {
		env.Listen = fmt.Sprintf("127.0.0.1:%d", freePort(t))
	}
	b, err := server.Start(ctx, server.Options{Config: cfgB, DataDir: dataB, Listen: "127.0.0.1:0", Store: dsn, ServerID: "b"})
	if err != nil {
		t.Fatalf("second server on the same store: %v", err)
	}
	defer b.Close(ctx)
	if b.AdminToken == "" || b.AdminToken == a.AdminToken {
		t.Fatalf("second server's admin token = %q, want a new one", b.AdminToken)
	}
	for name, secret := range map[string]string{"first": a.AdminToken, "second": b.AdminToken} {
		if _, err := api.NewClient(b.APIURL, secret, nil).Status(ctx, "shop"); err != nil {
			t.Errorf("the %s server's admin token on the second server: %v", name, err)
		}
	}
	// A copy is kept out while they run.
	src, err := server.OpenStore(ctx, server.StoreSpec{URL: dsn})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	if _, err := server.LockForCopy(ctx, src, server.StoreSpec{URL: dsn}, "test copy"); !errors.Is(err, postgres.ErrLocked) {
		t.Errorf("a copy while servers run = %v, want ErrLocked", err)
	}
}

// TestStoreSpec_String: what the server logs of its store has no password.
func TestStoreSpec_String(t *testing.T) {
	tests := []struct {
		spec server.StoreSpec
		want string
	}{
		{server.StoreSpec{DataDir: "/var/lib/shipgate"}, "sqlite:/var/lib/shipgate/shipgate.db"},
		{server.StoreSpec{URL: "sqlite:/tmp/x.db"}, "sqlite:/tmp/x.db"},
		{server.StoreSpec{URL: "postgres://ship:hunter2@db/shipgate"}, "postgres://ship:xxxxx@db/shipgate"},
		{server.StoreSpec{URL: "postgresql://ship@db/shipgate?password=hunter2&sslmode=require"}, "postgresql://ship@db/shipgate?password=xxxxx&sslmode=require"},
	}
	for _, tt := range tests {
		if got := tt.spec.String(); got != tt.want {
			t.Errorf("String() = %q, want %q", got, tt.want)
		}
	}
	if _, err := (server.StoreSpec{URL: "mysql://ship:hunter2@db/x"}).Kind(); err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Errorf("Kind of an unknown store = %v, want an error without the password", err)
	}
}

// TestServer_HARetirementFinishedByTheLeader: a flag retirement started
// through a follower, which then stops, is watched to its end by the
// leader (the store's change feed tells it), and deleted once.
func TestServer_HARetirementFinishedByTheLeader(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	if out, err := exec.Command("git", "init", "-q", dir).CombinedOutput(); err != nil {
		t.Fatalf("git init: %v\n%s", err, out)
	}
	yaml := `app: shop
` + baseVars + baseRun + `environments:
  production:
    listen: 127.0.0.1:%d
retire:
  cycle: 1s
  watch: 2s
  backup_command: [sh, -c, 'true']
smoke: [{path: /healthz}]
`
	load := func(name string) *config.Config {
		path := filepath.Join(dir, name+".yaml")
		if err := os.WriteFile(path, fmt.Appendf(nil, yaml, shopBin, freePort(t)), 0o600); err != nil {
			t.Fatal(err)
		}
		cfg, err := config.Load(path)
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	dsn := pgtest.Shared(t).NewDatabase(t)
	start := func(name string) *server.ControlPlane {
		cp, err := server.Start(ctx, server.Options{Config: load(name), DataDir: filepath.Join(dir, name), Listen: "127.0.0.1:0",
			// Nothing here waits for a lease to lapse: a long one keeps a
			// leading on a busy machine, where a renewal may come late.
			Store: dsn, ServerID: name, LeaseTTL: 5 * time.Second, RetirePoll: 50 * time.Millisecond, Tick: 50 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		return cp
	}
	leads := func(cp *server.ControlPlane) bool {
		st, err := api.NewClient(cp.APIURL, cp.AdminToken, nil).Status(ctx, "shop")
		return err == nil && st.ControlPlane != nil && st.ControlPlane.Leading
	}
	a := start("a")
	defer a.Close(ctx)
	for deadline := time.Now().Add(10 * time.Second); !leads(a); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the first server never led")
		}
	}
	b := start("b")
	bClosed := false
	defer func() {
		if !bClosed {
			_ = b.Close(ctx)
		}
	}()
	if leads(b) {
		t.Fatal("the second server leads beside the first")
	}
	if _, err := a.Flags.Create(ctx, flags.NewBooleanFlag("old-checkout", "team-pay", "the old checkout", time.Time{}, time.Now()), flags.Who{Actor: "user:ana"}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1100 * time.Millisecond) // a cycle since the flag was created
	r, err := b.Retirements.Retire(ctx, server.RetireRequest{Kind: retire.KindFlag, Subject: "old-checkout", Reason: "new checkout is at 100%", Actor: "user:ana"})
	if err != nil || r.Stage != retire.StageWatch {
		t.Fatalf("retire through the follower = %s %s, %v; want watch", r.Stage, r.Detail, err)
	}
	bClosed = true
	if err := b.Close(ctx); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		got, err := a.Retirements.Get(ctx, r.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.Stage.Final() {
			if got.Stage != retire.StageDeleted {
				t.Fatalf("retirement ended %s (%s), want deleted", got.Stage, got.Detail)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the leader never finished the retirement the follower started (stage %s)", got.Stage)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if _, ok := a.Flags.Snapshot().Flag("old-checkout"); ok {
		t.Error("the flag is still served after its retirement")
	}
	events, err := a.Store.ListAudit(ctx, audit.Filter{Action: retire.ActionDelete})
	if err != nil || len(events) != 1 {
		t.Errorf("%d %s events, %v; want one", len(events), retire.ActionDelete, err)
	}
}
