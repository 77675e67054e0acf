package rollout_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/shipgate/shipgate/internal/rollout"
)

const canary = `
strategy:
  canary:
    steps:
      - {weight: 50, bake: 1m}
    scale_down_delay: 10s
`

func TestEngine_CanaryPromotesOnVirtualTime(t *testing.T) {
	h := newHarness(t, canary)
	h.deployV1()
	r := h.final(h.deploy("v2", nil).ID)
	if r.Phase != rollout.PhaseSucceeded {
		t.Fatalf("phase = %s (%s), want succeeded", r.Phase, r.Reason)
	}
	h.checkServing("v2")
	if got := h.running(); got["v1"] != 0 || got["v2"] != 1 {
		t.Fatalf("running = %v, want one v2 and no v1", got)
	}
	if n := h.failed.Load(); n != 0 {
		t.Fatalf("%d of %d requests failed during a healthy rollout", n, h.sent.Load())
	}
}

func TestEngine_BadCanaryRollsBackTrafficFirst(t *testing.T) {
	h := newHarness(t, canary)
	h.deployV1()
	r := h.final(h.deploy("v2", map[string]string{"FAIL_RATE": "0.6"}).ID)
	if r.Phase != rollout.PhaseRolledBack || !strings.Contains(r.Reason, "error_rate") {
		t.Fatalf("phase = %s (%s), want rolled back on error_rate", r.Phase, r.Reason)
	}
	h.checkServing("v1")
	events := h.log()
	back := slices.IndexFunc(events, func(e string) bool { return e == "routes stable=v1 canary=@0" })
	stop := slices.Index(events, "stop v2 x1")
	if back < 0 || stop < 0 || back > stop {
		t.Fatalf("traffic went back at %d, v2 stopped at %d; want traffic first (events: %v)", back, stop, events)
	}
	if got := h.running(); got["v2"] != 0 || got["v1"] != 1 {
		t.Fatalf("running = %v, want v1 only", got)
	}
}

// A rollout runs what was planned: its stage is frozen into it at deploy,
// and a config that changed meanwhile (here: evidence it can never have,
// and a rollback when it is missing) does not reach a resumed rollout.
func TestEngine_ResumedRolloutRunsTheFrozenPlan(t *testing.T) {
	h := newHarness(t, canary)
	h.deployV1()
	id := h.deploy("v2", nil).ID
	h.until("baking", time.Hour, func() bool { return h.rollout(id).Weight == 50 })
	h.crash()
	h.cfg.Analysis.MinRequests = 1 << 30
	h.cfg.Analysis.OnInconclusive = "rollback"
	h.cfg.Strategy.Canary.Steps = append(h.cfg.Strategy.Canary.Steps, h.cfg.Strategy.Canary.Steps[0])
	h.start()
	r := h.final(id)
	if r.Phase != rollout.PhaseSucceeded {
		t.Fatalf("%s (%s), want succeeded as planned at deploy", r.Phase, r.Reason)
	}
	if r.Stage == nil || r.Stage.Analysis.MinRequests != 20 || r.Stage.Vars != nil {
		t.Fatalf("frozen stage = %+v, want min_requests 20 and no variables", r.Stage)
	}
	// A new deploy takes the config as it is now.
	if next := h.deploy("v3", nil); next.Stage.Analysis.MinRequests != 1<<30 {
		t.Fatalf("the next deploy froze min_requests %d, want the new config's", next.Stage.Analysis.MinRequests)
	}
}
