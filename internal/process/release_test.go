package process

import (
	"context"
	"log/slog"
	"strings"
	"testing"

	"github.com/shipgate/shipgate/internal/rollout"
)

// Ensure is idempotent, scales a release up and down (stopping the
// instances named in StopFirst first), and a server that restarts on the
// same data dir finds the release's instances again instead of starting
// duplicates; Remove stops them all.
func TestRuntime_EnsureObserveRemove(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	first := New(Config{DataDir: dir, Logger: slog.New(slog.DiscardHandler)})
	s := shopSpec(t)
	ref := rollout.ReleaseRef{App: s.App, Env: s.Env, Version: s.Version}
	s.Count = 2
	ins, err := first.Ensure(ctx, s)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = first.Remove(ctx, ref) })
	again, err := first.Ensure(ctx, s)
	if err != nil || len(again) != 2 || again[0].ID != ins[0].ID || again[1].ID != ins[1].ID {
		t.Fatalf("second Ensure = %v, %v; want the same two instances", again, err)
	}
	first.Close()

	// A new server on the same data: the registry gives the instances back.
	second := New(Config{DataDir: dir, Logger: slog.New(slog.DiscardHandler)})
	t.Cleanup(second.Close)
	t.Cleanup(func() { _ = second.Remove(ctx, ref) })
	obs, err := second.Observe(ctx, ref)
	if err != nil || len(obs) != 2 || obs[0].Status.State != rollout.InstanceUnknown {
		t.Fatalf("Observe before adoption = %+v, %v; want 2 unknown", obs, err)
	}
	s.Count = 3
	s.StopFirst = nil
	up, err := second.Ensure(ctx, s)
	if err != nil || len(up) != 3 {
		t.Fatalf("Ensure 3 = %v, %v", up, err)
	}
	kept := 0
	for _, inst := range up {
		if inst.ID == ins[0].ID || inst.ID == ins[1].ID {
			kept++
		}
	}
	if kept != 2 {
		t.Fatalf("Ensure 3 after a restart = %v, want the 2 earlier instances adopted and one started", up)
	}
	obs, _ = second.Observe(ctx, ref)
	for _, o := range obs {
		if o.Status.State != rollout.InstanceRunning {
			t.Fatalf("observed %s %s, want running", o.ID, o.Status.State)
		}
	}

	s.Count, s.StopFirst = 1, []string{up[2].ID, up[0].ID}
	down, err := second.Ensure(ctx, s)
	if err != nil || len(down) != 1 || down[0].ID != up[1].ID {
		t.Fatalf("Ensure 1 stopping %v first = %v, %v; want %s kept", s.StopFirst, down, err, up[1].ID)
	}
	assertGone(t, []int{up[0].PID, up[2].PID})

	if err := second.Remove(ctx, ref); err != nil {
		t.Fatal(err)
	}
	assertGone(t, []int{up[1].PID})
	if obs, err := second.Observe(ctx, ref); err != nil || len(obs) != 0 {
		t.Fatalf("Observe after Remove = %+v, %v; want none", obs, err)
	}
	if err := second.Remove(ctx, ref); err != nil {
		t.Fatalf("Remove of a release that is gone: %v", err)
	}
}

// A release that cannot start leaves nothing running, and says why.
func TestRuntime_Ensure_cannotStart(t *testing.T) {
	ctx := context.Background()
	r, _ := newRuntime(t)
	s := appSpec(t, "--no-such-flag") // the app exits 2 on an unknown flag
	s.Count = 2
	if _, err := r.Ensure(ctx, s); err == nil || !strings.Contains(err.Error(), "exit") {
		t.Fatalf("Ensure of a release that exits: %v, want an error saying it exited", err)
	}
	obs, err := r.Observe(ctx, rollout.ReleaseRef{App: s.App, Env: s.Env, Version: s.Version})
	if err != nil || len(obs) != 0 {
		t.Fatalf("after a failed Ensure: %+v, %v; want nothing", obs, err)
	}
}
