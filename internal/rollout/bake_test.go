package rollout_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/shipgate/shipgate/internal/analysis"
	"github.com/shipgate/shipgate/internal/audit"
	"github.com/shipgate/shipgate/internal/rollout"
)

// thinEvidence is an environment's analysis whose 1% gate needs ~300
// error-free canary requests to pass: more than the harness sends when its
// traffic is thin.
func thinEvidence(policy string) string {
	y := "    analysis: {interval: 5s, min_requests: 20, gates: [{metric: error_rate, max: 1%}]"
	if policy != "" {
		y += ", on_inconclusive: " + policy
	}
	return y + "}"
}

var inconclusiveStrategies = []struct {
	name, yaml string
	instances  int
	bakeKind   rollout.StepKind
}{
	{"canary", "strategy: {canary: {steps: [{weight: 50, bake: 1m}], scale_down_delay: 5s}}", 1, rollout.StepWeight},
	{"blue_green", "strategy: {blue_green: {analysis: 1m, keep_blue: 10s}}", 1, rollout.StepObserve},
	{"rolling", "strategy: {rolling: {max_surge: 1, bake: 1m}}", 2, rollout.StepBatch},
}

// inconclusiveHarness is a harness whose healthy v2 cannot gather enough
// evidence in its bakes.
func inconclusiveHarness(t *testing.T, strategy, policy string, instances int) *harness {
	h := newHarnessEnv(t, thinEvidence(policy), strategy)
	h.cfg.Run.Instances = instances
	h.deployV1()
	h.traffic = 1
	return h
}

// Defect 5: a healthy release whose bake lacked evidence was rolled back
// (canary) or promoted unjudged (blue-green). The default policy, pause,
// makes every strategy wait for a person, and says so.
func TestEngine_InconclusivePausesEveryStrategy(t *testing.T) {
	for _, s := range inconclusiveStrategies {
		t.Run(s.name, func(t *testing.T) {
			h := inconclusiveHarness(t, s.yaml, "", s.instances)
			id := h.deploy("v2", nil).ID
			var r rollout.Rollout
			h.until("paused", time.Hour, func() bool {
				r = h.rollout(id)
				return r.Phase.Final() || r.Paused != ""
			})
			if r.Phase != rollout.PhaseRunning || r.Steps[r.StepIndex].Kind != s.bakeKind {
				t.Fatalf("rollout %s at %s (%s), want running and paused at its %s step", r.Phase, r.Steps[min(r.StepIndex, len(r.Steps)-1)].Kind, r.Reason, s.bakeKind)
			}
			if !strings.Contains(r.Paused, "inconclusive") || !strings.Contains(r.Paused, "shipgate promote") {
				t.Fatalf("paused = %q, want why and the way out", r.Paused)
			}
			// A paused rollout waits for a person, however long.
			h.traffic = 0
			h.until("an hour paused", 2*time.Hour, func() bool { return h.clk.Now().Sub(r.UpdatedAt) > time.Hour })
			st, err := h.eng.Status(context.Background(), "shop")
			if err != nil {
				t.Fatal(err)
			}
			if a := st.Envs[0].Active; a == nil || a.ID != id || a.Paused == "" || a.Phase != rollout.PhaseRunning {
				t.Fatalf("status after an hour: %+v, want the rollout still paused", a)
			}
			if !slices.Contains(h.auditActions(), audit.ActionPause) {
				t.Fatalf("audit %v has no %s", h.auditActions(), audit.ActionPause)
			}
			if _, err := h.eng.Promote(context.Background(), rollout.PromoteRequest{App: "shop", Env: "production", Reason: "checked the dashboards", Actor: "user:bob"}); err != nil {
				t.Fatalf("promote: %v", err)
			}
			h.traffic = 1
			// Further bakes (rolling's next batch) pause too; promote each.
			h.until("final", 3*time.Hour, func() bool {
				if r := h.rollout(id); r.Paused != "" {
					if _, err := h.eng.Promote(context.Background(), rollout.PromoteRequest{App: "shop", Env: "production", Reason: "again", Actor: "user:bob"}); err != nil {
						t.Fatalf("promote: %v", err)
					}
				}
				return h.rollout(id).Phase.Final()
			})
			if r := h.rollout(id); r.Phase != rollout.PhaseSucceeded {
				t.Fatalf("after promote: %s (%s), want succeeded", r.Phase, r.Reason)
			}
			h.checkServing("v2")
			if !slices.Contains(h.auditActions(), audit.ActionPromoteManual) {
				t.Fatalf("audit %v has no %s", h.auditActions(), audit.ActionPromoteManual)
			}
		})
	}
}

func TestEngine_InconclusivePolicies(t *testing.T) {
	for _, s := range inconclusiveStrategies {
		t.Run(s.name+"/rollback", func(t *testing.T) {
			h := inconclusiveHarness(t, s.yaml, "rollback", s.instances)
			r := h.final(h.deploy("v2", nil).ID)
			if r.Phase != rollout.PhaseRolledBack || !strings.Contains(r.Reason, "inconclusive") {
				t.Fatalf("%s (%s), want rolled back as inconclusive", r.Phase, r.Reason)
			}
			h.checkServing("v1")
		})
		t.Run(s.name+"/extend", func(t *testing.T) {
			h := inconclusiveHarness(t, s.yaml, "extend", s.instances)
			id := h.deploy("v2", nil).ID
			h.traffic = 0
			// Long after the bake and as long again, the evidence comes.
			h.until("an hour of thin traffic", 2*time.Hour, func() bool {
				return h.clk.Now().Sub(h.rollout(id).CreatedAt) > time.Hour || h.rollout(id).Phase.Final()
			})
			if r := h.rollout(id); r.Phase != rollout.PhaseRunning || r.Paused != "" {
				t.Fatalf("after an hour: %s, paused %q (%s), want still baking", r.Phase, r.Paused, r.Reason)
			}
			h.traffic = 40
			if r := h.final(id); r.Phase != rollout.PhaseSucceeded {
				t.Fatalf("%s (%s), want succeeded once the evidence came", r.Phase, r.Reason)
			}
		})
	}
}

// Defect 6: a server restart mid-bake counted the downtime against the
// step and started the evidence window again, then rolled back a healthy
// release as inconclusive. The resumed bake goes on with the evidence
// gathered before and the bake time it had left.
func TestEngine_RestartMidBakeKeepsEvidenceAndTimeLeft(t *testing.T) {
	h := newHarnessEnv(t, "    analysis: {interval: 5s, min_requests: 20, gates: [{metric: error_rate, max: 10%}], on_inconclusive: rollback}",
		"strategy: {canary: {steps: [{weight: 50, bake: 2m}], scale_down_delay: 5s}}")
	h.deployV1()
	id := h.deploy("v2", nil).ID
	var before rollout.Rollout
	h.until("a minute of bake", time.Hour, func() bool {
		before = h.rollout(id)
		return before.Analysis != nil && before.Steps[before.StepIndex].Kind == rollout.StepWeight && before.Analysis.At.Sub(before.StepStartedAt) >= time.Minute
	})
	h.crash()
	h.clk.Step(10 * time.Minute) // the server is down for ten minutes
	h.traffic = 0                // and no more evidence comes after it
	h.start()
	var first rollout.Rollout
	h.until("a judgement after the restart", time.Hour, func() bool {
		first = h.rollout(id)
		return first.Phase.Final() || first.Analysis.At.After(before.Analysis.At.Add(10*time.Minute))
	})
	if first.Phase == rollout.PhaseRunning && first.Analysis.Canary.Requests < before.Analysis.Canary.Requests {
		t.Fatalf("after the restart the canary has %d requests of evidence, before it had %d", first.Analysis.Canary.Requests, before.Analysis.Canary.Requests)
	}
	r := h.final(id)
	if r.Phase != rollout.PhaseSucceeded {
		t.Fatalf("resumed bake: %s (%s), want succeeded on the evidence gathered before", r.Phase, r.Reason)
	}
	h.checkServing("v2")
}

// A person can hold a bake (it does not end, even with its gates passing)
// and let it go on; a bake resumed after an inconclusive pause bakes on
// until its evidence is there.
func TestEngine_PauseAndResume(t *testing.T) {
	ctx := context.Background()
	req := rollout.PauseRequest{App: "shop", Env: "production", Reason: "watching the payment provider", Actor: "user:bob"}
	t.Run("manual", func(t *testing.T) {
		h := newHarness(t, canary)
		h.deployV1()
		id := h.deploy("v2", nil).ID
		h.until("baking", time.Hour, func() bool { return h.rollout(id).Weight == 50 })
		if _, err := h.eng.Resume(ctx, req); !errors.Is(err, rollout.ErrConflict) {
			t.Fatalf("resume of a bake that is not paused: %v, want a conflict", err)
		}
		r, err := h.eng.Pause(ctx, req)
		if err != nil || !strings.Contains(r.Paused, "paused by user:bob") {
			t.Fatalf("pause: %q, %v", r.Paused, err)
		}
		// The bake (1m, with evidence to pass) would be long over.
		h.until("ten minutes paused", time.Hour, func() bool { return h.clk.Now().Sub(r.UpdatedAt) > 10*time.Minute })
		if r := h.rollout(id); r.Phase != rollout.PhaseRunning || r.Weight != 50 || r.Paused == "" {
			t.Fatalf("after ten minutes: %s at %d%%, paused %q; want still held", r.Phase, r.Weight, r.Paused)
		}
		if _, err := h.eng.Resume(ctx, req); err != nil {
			t.Fatalf("resume: %v", err)
		}
		if r := h.final(id); r.Phase != rollout.PhaseSucceeded {
			t.Fatalf("%s (%s), want succeeded", r.Phase, r.Reason)
		}
		acts := h.auditActions()
		if !slices.Contains(acts, audit.ActionPause) || !slices.Contains(acts, audit.ActionResume) {
			t.Fatalf("audit %v, want a pause and a resume", acts)
		}
	})
	t.Run("after inconclusive", func(t *testing.T) {
		h := inconclusiveHarness(t, inconclusiveStrategies[0].yaml, "", 1)
		id := h.deploy("v2", nil).ID
		h.until("paused", time.Hour, func() bool { return h.rollout(id).Paused != "" })
		if _, err := h.eng.Resume(ctx, req); err != nil {
			t.Fatalf("resume: %v", err)
		}
		h.traffic = 0
		resumed := h.clk.Now()
		h.until("an hour later", 2*time.Hour, func() bool { return h.clk.Now().Sub(resumed) > time.Hour || h.rollout(id).Paused != "" })
		if r := h.rollout(id); r.Paused != "" || r.Phase != rollout.PhaseRunning {
			t.Fatalf("resumed bake: %s, paused %q; want baking on", r.Phase, r.Paused)
		}
		h.traffic = 40
		if r := h.final(id); r.Phase != rollout.PhaseSucceeded {
			t.Fatalf("%s (%s), want succeeded once the evidence came", r.Phase, r.Reason)
		}
	})
}

// Issue 11: the bake looks at the evidence every second (analysis.LookEvery)
// and persists the verdict every interval, so a canary failing 40% of its
// requests at 5% of 100 requests/s is convicted after the few requests that
// prove it (median 9 in the simulator), not after the first 10 s interval
// (about 50). Several rollouts, because each one's count is random.
func TestEngine_BakeLooksBetweenIntervals(t *testing.T) {
	h := newHarnessEnv(t, "    analysis: {interval: 10s, min_requests: 50, gates: [{metric: error_rate, max: 0.5%}]}",
		"strategy: {canary: {steps: [{weight: 5, bake: 10m}, {weight: 25, bake: 15m}, {weight: 50, bake: 15m}], scale_down_delay: 5s}}")
	h.deployV1()
	h.traffic = 100 // requests per virtual second, 5% of them to the canary
	var counts []uint64
	for i := range 7 {
		version := fmt.Sprintf("v%d", i+2)
		began := h.clk.Now()
		r := h.final(h.deploy(version, map[string]string{"FAIL_RATE": "0.4"}).ID)
		if r.Phase != rollout.PhaseRolledBack || !strings.Contains(r.Reason, "error_rate") {
			t.Fatalf("%s: %s (%s), want rolled back on error_rate", version, r.Phase, r.Reason)
		}
		if r.Analysis == nil || r.Analysis.Verdict != analysis.Fail || r.Bake == nil || r.Steps[r.Bake.Step].Kind != rollout.StepWeight || r.Steps[r.Bake.Step].Weight != 5 {
			t.Fatalf("%s: judgement %+v, bake %+v; want a failed look persisted in the 5%% step", version, r.Analysis, r.Bake)
		}
		if r.Bake.Elapsed >= 10*time.Second {
			t.Errorf("%s: convicted after %s of bake, want before the first 10s interval", version, r.Bake.Elapsed)
		}
		t.Logf("%s: rolled back after %s of bake (%s in all) on %d canary requests, %d failed", version, r.Bake.Elapsed, h.clk.Now().Sub(began), r.Analysis.Canary.Requests, r.Analysis.Canary.Errors)
		counts = append(counts, r.Analysis.Canary.Requests)
	}
	slices.Sort(counts)
	if med := counts[len(counts)/2]; med > 15 {
		t.Fatalf("canary requests to the rollback %v: median %d, want at most 15", counts, med)
	}
}
