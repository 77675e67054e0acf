package server_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/shipgate/shipgate/internal/api"
	"github.com/shipgate/shipgate/internal/config"
	"github.com/shipgate/shipgate/internal/pgtest"
	"github.com/shipgate/shipgate/internal/postgres"
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
