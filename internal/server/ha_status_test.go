package server_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shipgate/shipgate/internal/pgtest"
	"github.com/shipgate/shipgate/internal/server"
)

// TestServer_PostgresSeveralAppsStatusNeedsAnApp: a server on a
// PostgreSQL store that manages two apps answers `shipgate status` with
// no app as a server on SQLite does, asking which app and naming them.
// It answered the first app's status: the API's Service there is the
// command forwarder, whose embedding hid the apps' AppNames, so the API
// fell back to the first app, and a user of two apps saw one with no hint
// of the other.
func TestServer_PostgresSeveralAppsStatusNeedsAnApp(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "shop.yaml"), appYAML("shop", freePort(t), "[{weight: 50, bake: 1s}]"))
	writeFile(t, filepath.Join(dir, "billing.yaml"), appYAML("billing", freePort(t), "[{weight: 50, bake: 1s}]"))
	ctx := context.Background()
	cp, err := server.Start(ctx, server.Options{ConfigPath: dir, DataDir: filepath.Join(t.TempDir(), "data"),
		Listen: "127.0.0.1:0", Store: pgtest.Shared(t).NewDatabase(t), ServerID: "a",
		LeaseTTL: 5 * time.Second, Tick: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		_ = cp.Close(ctx)
	})
	if code, body := apiGet(t, cp, "/v1/status"); code != 404 || !strings.Contains(body, "several apps (billing, shop)") {
		t.Errorf("default status with two apps on PostgreSQL: %d %s, want 404 naming both apps", code, body)
	}
	for _, app := range []string{"shop", "billing"} {
		if code, body := apiGet(t, cp, "/v1/apps/"+app+"/status"); code != 200 || !strings.Contains(body, `"control_plane"`) {
			t.Errorf("status of %s: %d %s, want 200 with the control plane", app, code, body)
		}
	}
}
