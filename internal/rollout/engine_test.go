package rollout_test

import (
	"context"
	"encoding/json"
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
	if r.Spec == nil || r.Spec.Analysis.MinRequests != 20 || r.Spec.Vars != nil || len(r.Spec.VarNames) != 2 {
		t.Fatalf("frozen spec = %+v, want min_requests 20, the names of the variables and not their values", r.Spec)
	}
	// A new deploy takes the config as it is now.
	if next := h.deploy("v3", nil); next.Spec.Analysis.MinRequests != 1<<30 {
		t.Fatalf("the next deploy froze min_requests %d, want the new config's", next.Spec.Analysis.MinRequests)
	}
}

// A resumed rollout starts its instances with the command frozen at
// deploy and judges them by the gates frozen then: here a rolling
// rollout's second batch starts after a restart on a config whose
// run.command cannot start anything and whose error_rate gate no release
// can pass.
func TestEngine_ResumedRolloutRunsTheFrozenCommandAndGates(t *testing.T) {
	h := newHarness(t, `
strategy:
  rolling: {max_surge: 1, bake: 20s}
`)
	h.cfg.Run.Instances = 2
	h.deployV1()
	id := h.deploy("v2", nil).ID
	h.until("first batch", time.Hour, func() bool { r := h.rollout(id); return r.StepIndex == 0 && len(r.New) == 1 })
	h.crash()
	h.cfg.Run.Command = []string{"/bin/false"}
	h.cfg.Analysis.Gates[0].Max.Value = -1
	h.start()
	r := h.final(id)
	if r.Phase != rollout.PhaseSucceeded {
		t.Fatalf("%s (%s), want succeeded with the command and gates planned at deploy", r.Phase, r.Reason)
	}
	if got := h.running(); got["v2"] != 2 || len(got) != 1 {
		t.Fatalf("running = %v, want 2 of v2 started by the frozen command", got)
	}
	if got := r.Spec.Run.Command; len(got) != 1 || got[0] != shopBin {
		t.Fatalf("frozen command = %q, want the shop", got)
	}
}

// A rollout recorded before Specs carries the config's stage as JSON
// under "stage": it still loads, and the engine runs it by that stage
// (translated by internal/plan), not by the config as it is now.
func TestEngine_LegacyStageIsTranslatedOnRead(t *testing.T) {
	h := newHarness(t, canary)
	h.deployV1()
	id := h.deploy("v2", nil).ID
	h.until("baking", time.Hour, func() bool { return h.rollout(id).Weight == 50 })
	h.crash()
	// Rewrite the rollout as an earlier Shipgate recorded it: the stage
	// of the config of that time, no spec.
	st, err := h.cfg.Stage("production")
	if err != nil {
		t.Fatal(err)
	}
	st.Vars = nil
	raw, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	old := h.rollout(id)
	old.Spec, old.LegacyStage = nil, raw
	if err := h.store.Commit(context.Background(), rollout.Change{Rollout: &old}); err != nil {
		t.Fatal(err)
	}
	if got := h.rollout(id); got.Spec != nil || !strings.Contains(string(got.LegacyStage), `"min_requests":20`) {
		t.Fatalf("stored rollout: spec %v, stage %s; want the legacy stage only", got.Spec, got.LegacyStage)
	}
	h.cfg.Analysis.MinRequests = 1 << 30
	h.cfg.Analysis.OnInconclusive = "rollback"
	h.start()
	if r := h.final(id); r.Phase != rollout.PhaseSucceeded {
		t.Fatalf("%s (%s), want succeeded by the recorded stage", r.Phase, r.Reason)
	}
}
