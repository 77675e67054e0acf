package server_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/shipgate/shipgate/internal/config"
	"github.com/shipgate/shipgate/internal/rollout"
	"github.com/shipgate/shipgate/internal/server"
)

// TestE2E_ManualRollbackWithTheDiskFull is defect 8 of issue 10 end to
// end: with the data directory's disk full mid-canary (a real full disk:
// a tmpfs, filled), a manual rollback must still move every user back to
// stable, through the router process, and answer at once.
func TestE2E_ManualRollbackWithTheDiskFull(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a tmpfs that can be filled")
	}
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	if err := os.MkdirAll(data, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := exec.Command("mount", "-t", "tmpfs", "-o", "size=32m", "tmpfs", data).Run(); err != nil {
		t.Skipf("cannot mount a tmpfs: %v", err)
	}
	t.Cleanup(func() { _ = exec.Command("umount", "-l", data).Run() })

	path := filepath.Join(dir, "shipgate.yaml")
	if err := os.WriteFile(path, []byte(fmt.Sprintf(testConfig, shopBin, freePort(t), "[{weight: 50, bake: 10m}]")), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	cp, err := server.Start(context.Background(), server.Options{
		Config: cfg, DataDir: data, Listen: "127.0.0.1:0", Tick: 50 * time.Millisecond,
		RouterCommand: []string{shipgateBin, "router"}, Logger: slog.New(slog.NewTextHandler(logs, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	p := &plane{ControlPlane: cp, dataDir: data, router: "http://" + cp.Routers["production"].Addr()}
	filler := filepath.Join(data, "filler")
	t.Cleanup(func() {
		_ = os.Remove(filler)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		_ = cp.StopInstances(ctx)
		_ = cp.StopRouters(ctx)
		_ = cp.Close(ctx)
	})
	if r := p.deploy(t, "v1", nil); r.Phase != rollout.PhaseSucceeded {
		t.Fatalf("v1: %s %s", r.Phase, r.Reason)
	}
	r, err := cp.Engine.Deploy(context.Background(), rollout.DeployRequest{App: "shop", Version: "v2", Actor: "user:test"})
	if err != nil {
		t.Fatal(err)
	}
	p.waitStep(t, r.ID, rollout.StepWeight)

	// The disk fills up.
	f, err := os.Create(filler)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1<<16)
	for {
		if _, err := f.Write(buf); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatal(err)
			}
			break
		}
	}
	_ = f.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	if _, err := cp.Engine.Rollback(ctx, rollout.RollbackRequest{App: "shop", Env: "production", Reason: "payments fail", Actor: "user:test"}); err != nil {
		t.Fatalf("rollback with the disk full: %v", err)
	}
	t.Logf("the rollback answered after %s with the disk full", time.Since(start))
	// The store could not record it either: the full disk is real.
	waitForLog := time.Now().Add(10 * time.Second)
	for !strings.Contains(logs.String(), "disk is full") && time.Now().Before(waitForLog) {
		time.Sleep(50 * time.Millisecond)
	}
	if !strings.Contains(logs.String(), "disk is full") {
		t.Fatalf("no write failed on the full disk; the test proves nothing:\n%s", logs.String())
	}
	for _, line := range strings.Split(logs.String(), "\n") {
		if strings.Contains(line, "disk is full") {
			t.Logf("first full-disk log line: %s", line)
			break
		}
	}
	client := &http.Client{Timeout: 5 * time.Second}
	for u := range 40 {
		req, _ := http.NewRequest(http.MethodGet, p.router+"/products", nil)
		req.Header.Set("X-User-ID", fmt.Sprintf("user-%d", u))
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if v := resp.Header.Get("X-Shipgate-Version"); v != "v1" {
			t.Fatalf("user %d on %q after the rollback with the disk full, want v1", u, v)
		}
	}
}
