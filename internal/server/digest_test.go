package server_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shipgate/shipgate/internal/audit"
	"github.com/shipgate/shipgate/internal/config"
	"github.com/shipgate/shipgate/internal/rollout"
	"github.com/shipgate/shipgate/internal/server"
)

// TestReleaseDigest_KeyedAndStable records a release whose only variable
// is a 4-digit PIN and checks that the digest in its release.record event
// is not the plain SHA-256 an attacker could brute-force (10 000 guesses),
// that it is the same after a restart on the same data dir, and that the
// key is never in the server's logs or output.
func TestReleaseDigest_KeyedAndStable(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "shipgate.yaml")
	yaml := fmt.Sprintf("app: shop\nrun: {command: [%q, \"--port\", \"${PORT}\"]}\nenvironments:\n  production: {listen: 127.0.0.1:%d}\n", shopBin, freePort(t))
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	var logs, out syncBuffer
	record := func() string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		cp, err := server.Start(ctx, server.Options{Config: cfg, DataDir: filepath.Join(dir, "data"), Listen: "127.0.0.1:0",
			Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})), Out: &out})
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = cp.Close(ctx) }()
		req := rollout.ReleaseRequest{App: "shop", Version: "1.0.0", Commit: "abc123", Vars: map[string]string{"PIN": "1234"}, Actor: "user:ci"}
		if _, err := cp.Engine.CreateRelease(ctx, req); err != nil {
			t.Fatal(err)
		}
		evs, err := cp.Store.ListAudit(ctx, audit.Filter{Action: audit.ActionRelease, Limit: 1})
		if err != nil || len(evs) != 1 {
			t.Fatalf("release.record events: %v, %v", evs, err)
		}
		key, err := cp.Store.Secret(ctx, "release_digest")
		if err != nil {
			t.Fatal(err)
		}
		for _, text := range []string{logs.String(), out.String()} {
			if bytes.Contains([]byte(text), key) || strings.Contains(text, hex.EncodeToString(key)) {
				t.Errorf("the digest key is in the server's logs or output")
			}
		}
		return evs[0].Data["digest"]
	}
	first := record()
	// The digest as it was before it was keyed: a SHA-256 anyone can
	// recompute for each of the 10 000 PINs.
	h := sha256.Sum256([]byte("1.0.0\x00abc123\x00var PIN=1234\x00"))
	plain := hex.EncodeToString(h[:])
	if first == "" || strings.HasPrefix(plain, first) || strings.HasPrefix(first, plain[:16]) {
		t.Fatalf("digest %q is (a prefix of) the plain SHA-256 %s of the values", first, plain)
	}
	if got := record(); got != first {
		t.Errorf("digest after a restart = %q, want %q as before it", got, first)
	}
}
