package rollout_test

import (
	"fmt"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/shipgate/shipgate/internal/rollout"
)

// A data plane that takes a while to serve a routing change (Gateway API)
// answers ErrNotReady: the engine waits for it before the bake starts, and
// the bake's window begins only once the weight is served.
func TestEngine_WaitsUntilTheDataPlaneServesTheRoutes(t *testing.T) {
	h := newHarness(t, canary)
	h.deployV1()
	var asked atomic.Int32
	var servedAt atomic.Int64
	verify := func(rt rollout.Routes) error {
		if rt.Weight != 50 {
			return nil
		}
		if asked.Add(1) <= 5 {
			return fmt.Errorf("route shop: weights not programmed yet: %w", rollout.ErrNotReady)
		}
		servedAt.CompareAndSwap(0, h.clk.Now().UnixNano())
		return nil
	}
	h.verify.Store(&verify)
	r := h.final(h.deploy("v2", nil).ID)
	if r.Phase != rollout.PhaseSucceeded {
		t.Fatalf("%s (%s), want succeeded once the data plane served the weight", r.Phase, r.Reason)
	}
	if n := asked.Load(); n < 6 {
		t.Fatalf("VerifyRoutes asked %d times, want until it served (6)", n)
	}
	// The bake of the 50% step judged the window from when the weight
	// was served, not from when it was asked for.
	if r.Bake == nil || r.Bake.Since.UnixNano() < servedAt.Load() {
		t.Fatalf("bake %+v, its window began before the weight was served at %v", r.Bake, time.Unix(0, servedAt.Load()).UTC())
	}
}

// Routes the data plane can never serve fail the step after the bound,
// and the rollout goes back to stable, traffic first.
func TestEngine_RoutesNeverServedRollBack(t *testing.T) {
	h := newHarness(t, canary)
	h.deployV1()
	verify := func(rt rollout.Routes) error {
		if rt.Weight == 50 {
			return fmt.Errorf("route shop: backend not resolved: %w", rollout.ErrNotReady)
		}
		return nil
	}
	h.verify.Store(&verify)
	r := h.final(h.deploy("v2", nil).ID)
	if r.Phase != rollout.PhaseRolledBack || !strings.Contains(r.Reason, "not served after 2m0s") {
		t.Fatalf("%s (%s), want rolled back: routes not served after the bound", r.Phase, r.Reason)
	}
	h.checkServing("v1")
}

// Instances are observed, not owned: a canary instance that died while
// the server was down is replaced when the server resumes the rollout,
// which goes on instead of rolling back a release that is not at fault.
func TestEngine_ReplacedCanaryInstanceIsNotAFailure(t *testing.T) {
	h := newHarness(t, canary)
	h.deployV1()
	id := h.deploy("v2", nil).ID
	h.until("baking", time.Hour, func() bool { return h.rollout(id).Weight == 50 })
	h.crash()
	before := h.rollout(id).New
	for _, inst := range before {
		if err := syscall.Kill(inst.PID, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
	}
	// Down for as long as it takes the runtime to see it gone.
	deadline := time.Now().Add(10 * time.Second)
	for h.rt.Status(t.Context(), before[0]).State != rollout.InstanceExited {
		if time.Now().After(deadline) {
			t.Fatal("the killed instance is not seen exited")
		}
		time.Sleep(10 * time.Millisecond)
	}
	h.start()
	r := h.final(id)
	if r.Phase != rollout.PhaseSucceeded {
		t.Fatalf("%s (%s), want succeeded on a replaced instance", r.Phase, r.Reason)
	}
	if len(r.New) != 1 || r.New[0].ID == before[0].ID {
		t.Fatalf("new instances %v, want one that replaced %s", r.New, before[0].ID)
	}
	h.checkServing("v2")
}
