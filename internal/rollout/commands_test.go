package rollout_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shipgate/shipgate/internal/rollout"
)

// A command that comes once a rollout's end is committed but before its
// driver has left acts as if the driver were gone: a rollback goes back
// to the previous release, a drill runs, a deploy starts. On a busy
// machine that moment was hit: a drill was refused as a conflict, and a
// rollback answered with the deploy that had just succeeded. The test
// holds the ended driver in that moment (after its last commit landed)
// and lets it go only once the command has read the rollout that holds
// the environment.
func TestEngine_CommandRightAfterARolloutEnded(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		run  func(h *harness) (rollout.Rollout, error)
		kind rollout.Kind
		want string // the version the command's rollout brings
	}{
		{"rollback", func(h *harness) (rollout.Rollout, error) {
			return h.eng.Rollback(ctx, rollout.RollbackRequest{App: "shop", Env: "production", Reason: "bad", Actor: "alice"})
		}, rollout.KindRollback, "v2"},
		{"drill", func(h *harness) (rollout.Rollout, error) {
			return h.eng.Drill(ctx, rollout.DrillRequest{App: "shop", Env: "production", Actor: "alice"})
		}, rollout.KindDrill, "v2"},
		{"deploy", func(h *harness) (rollout.Rollout, error) {
			return h.eng.Deploy(ctx, rollout.DeployRequest{App: "shop", Env: "production", Version: "v4", Actor: "alice"})
		}, rollout.KindDeploy, "v4"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, canary)
			h.deployV1()
			if r := h.final(h.deploy("v2", nil).ID); r.Phase != rollout.PhaseSucceeded {
				t.Fatalf("deploy v2: %s (%s)", r.Phase, r.Reason)
			}
			ended, leave := make(chan struct{}), make(chan struct{})
			var armed atomic.Bool
			var letGo sync.Once
			release := func() { letGo.Do(func() { close(leave) }) }
			defer release()
			afterCommit := func(c rollout.Change) {
				if c.Rollout.Version == "v3" && c.Rollout.Phase.Final() {
					close(ended)
					<-leave
				}
			}
			onGet := func(int64) {
				if armed.Load() {
					release()
				}
			}
			h.life.afterCommit.Store(&afterCommit)
			h.life.onGetRollout.Store(&onGet)

			v3 := h.deploy("v3", nil)
			h.until("the end of v3 committed", 2*time.Hour, func() bool {
				select {
				case <-ended:
					return true
				default:
					return false
				}
			})
			if r := h.rollout(v3.ID); r.Phase != rollout.PhaseSucceeded {
				t.Fatalf("v3: %s (%s), want succeeded", r.Phase, r.Reason)
			}
			armed.Store(true)
			type result struct {
				r   rollout.Rollout
				err error
			}
			done := make(chan result, 1)
			go func() {
				r, err := tc.run(h)
				done <- result{r, err}
			}()
			var got result
			select {
			case got = <-done:
			case <-time.After(time.Minute):
				release()
				t.Fatalf("%s still waits for the driver of v3, which had ended", tc.name)
			}
			if got.err != nil {
				t.Fatalf("%s right after v3 ended: %v", tc.name, got.err)
			}
			if got.r.ID == v3.ID || got.r.Kind != tc.kind || got.r.Version != tc.want {
				t.Fatalf("%s answered rollout %d (%s of %s), want a new %s of %s", tc.name, got.r.ID, got.r.Kind, got.r.Version, tc.kind, tc.want)
			}
			if r := h.final(got.r.ID); r.Phase != rollout.PhaseSucceeded {
				t.Fatalf("the %s: %s (%s), want succeeded", tc.name, r.Phase, r.Reason)
			}
		})
	}
}
