package server_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/shipgate/shipgate/internal/auth"
	"github.com/shipgate/shipgate/internal/config"
	"github.com/shipgate/shipgate/internal/server"
)

// A revoked admin token stays revoked across a restart, even though its
// file is still in the data dir; the database file is private.
func TestServer_RevokedAdminTokenStaysRevoked(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "shipgate.yaml")
	if err := os.WriteFile(path, fmt.Appendf(nil, testConfig, shopBin, freePort(t), quickSteps), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(t.TempDir(), "data")
	first, err := server.Start(ctx, server.Options{Config: cfg, DataDir: data, Listen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	if first.AdminToken == "" {
		t.Fatal("no admin token at first start")
	}
	if err := first.Store.CreateToken(ctx, auth.Token{Name: "ops", Role: auth.RoleAdmin, CreatedAt: time.Now()}, auth.Hash("sgt_ops")); err != nil {
		t.Fatal(err)
	}
	if err := first.Store.DeleteToken(ctx, "admin"); err != nil {
		t.Fatal(err)
	}
	if err := first.Close(ctx); err != nil {
		t.Fatal(err)
	}
	again, err := server.Start(ctx, server.Options{Config: cfg, DataDir: data, Listen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close(ctx)
	if again.AdminToken != "" {
		t.Fatal("the revoked admin token came back after a restart")
	}
	if _, err := again.Store.TokenByHash(ctx, auth.Hash("sgt_ops")); err != nil {
		t.Fatalf("the other admin token is gone: %v", err)
	}
	fi, err := os.Stat(filepath.Join(data, "shipgate.db"))
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != 0o600 {
		t.Fatalf("database file mode %o, want 600", got)
	}
}
