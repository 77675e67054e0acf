package proxy_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/shipgate/shipgate/internal/proxy"
	"github.com/shipgate/shipgate/internal/rollout"
)

// unwritableDir returns a directory where no file can be written, and a
// function that makes it writable again. Where it can, it mounts a tiny
// tmpfs and fills it: a real full disk (ENOSPC). Otherwise (not root, no
// mount) it stands in with a read-only directory (EACCES), which a root
// user would ignore.
func unwritableDir(t *testing.T) (dir string, free func()) {
	t.Helper()
	dir = shortTempDir(t)
	if os.Geteuid() == 0 {
		if err := exec.Command("mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", dir).Run(); err == nil {
			t.Cleanup(func() { _ = exec.Command("umount", "-l", dir).Run() })
			filler := filepath.Join(dir, "filler")
			f, err := os.Create(filler)
			if err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, 4096)
			for {
				if _, err := f.Write(buf); err != nil {
					if !errors.Is(err, syscall.ENOSPC) {
						t.Fatalf("fill the tmpfs: %v", err)
					}
					break
				}
			}
			_ = f.Close()
			t.Log("the state file is on a full 64k tmpfs")
			return dir, func() { _ = os.Remove(filler) }
		}
		t.Skip("root, but mount fails: cannot make a directory unwritable")
	}
	if err := os.Chmod(dir, 0o500); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.Chmod(dir, 0o700) })
	t.Log("the state file is in a read-only directory, standing in for a full disk")
	return dir, func() { _ = os.Chmod(dir, 0o700) }
}

// TestRouterProcess_FullDiskStillMovesTraffic is defect 8 of issue 10:
// with the disk full, the router refused a new table because it could not
// save it first, so a rollback could not move users off a failing canary
// for as long as the disk stayed full. The router applies a table first,
// then saves it, and retries the save until the disk has room.
func TestRouterProcess_FullDiskStillMovesTraffic(t *testing.T) {
	stable := startApp(t, "v1", nil)
	canary := startApp(t, "v2", nil)
	stateDir, free := unwritableDir(t)
	ctlDir := shortTempDir(t)
	cfg := proxy.ProcessConfig{
		Env: "production", Listen: "127.0.0.1:0", StickyHeader: "X-User",
		StateFile: filepath.Join(stateDir, "router-production.json"), ControlSocket: filepath.Join(ctlDir, "router.sock"),
		Logger: slog.New(slog.DiscardHandler),
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- proxy.RunProcess(ctx, cfg) }()
	t.Cleanup(func() { cancel(); <-done })

	var c *proxy.Client
	waitFor(t, "the router answers", func() bool {
		var err error
		c, err = proxy.Dial(context.Background(), cfg.ControlSocket)
		return err == nil
	})
	defer c.Close()

	// Half the users on the canary, then the rollback: all on stable.
	for _, r := range []rollout.Routes{
		{Stable: backend("v1", stable), Canary: backend("v2", canary), Weight: 50, Seed: "s"},
		{Stable: backend("v1", stable), Seed: "s"},
	} {
		sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := c.SetRoutes(sctx, r)
		scancel()
		if err != nil {
			t.Fatalf("set routes with the disk full: %v", err)
		}
	}
	client := newClient(t)
	for u := range 20 {
		if got := send(t, client, "http://"+c.Addr()+"/", fmt.Sprintf("user-%d", u)); got.version != "v1" {
			t.Fatalf("user %d on %q after the rollback, want v1", u, got.version)
		}
	}
	if _, err := os.Stat(cfg.StateFile); err == nil {
		t.Fatal("the state file was written on a full disk: the test proves nothing")
	}

	// Room again: the table gets saved without anyone asking.
	free()
	waitFor(t, "the routing table saved", func() bool {
		b, err := os.ReadFile(cfg.StateFile)
		return err == nil && len(b) > 0 && !strings.Contains(string(b), `"version": "v2"`)
	})
}
