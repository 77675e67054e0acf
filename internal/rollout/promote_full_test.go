package rollout_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/shipgate/shipgate/internal/audit"
	"github.com/shipgate/shipgate/internal/rollout"
)

// promote --full skips every remaining bake, analysis included, and takes
// the new release to 100%, audited with who and why; a crash right after
// it resumes the shortened plan, not the original one.
func TestEngine_PromoteFull(t *testing.T) {
	for _, s := range []struct {
		name, yaml string
		instances  int
		bakeKind   rollout.StepKind
	}{
		{"canary", "strategy: {canary: {steps: [{weight: 10, bake: 30m}, {weight: 25, bake: 30m}, {weight: 50, bake: 30m}], scale_down_delay: 5s}}", 1, rollout.StepWeight},
		{"blue_green", "strategy: {blue_green: {analysis: 30m, keep_blue: 5s}}", 1, rollout.StepObserve},
		{"rolling", "strategy: {rolling: {max_surge: 1, bake: 30m}}", 3, rollout.StepBatch},
	} {
		t.Run(s.name, func(t *testing.T) {
			h := newHarness(t, s.yaml)
			h.cfg.Run.Instances = s.instances
			h.deployV1()
			id := h.deploy("v2", nil).ID
			h.until("baking", time.Hour, func() bool {
				r := h.rollout(id)
				return r.Phase == rollout.PhaseRunning && r.StepIndex < len(r.Steps) && r.Steps[r.StepIndex].Kind == s.bakeKind && r.Bake != nil
			})
			before := h.rollout(id)
			at := before.StepIndex
			ro, err := h.eng.Promote(context.Background(), rollout.PromoteRequest{App: "shop", Env: "production", Reason: "hotfix verified by hand", Full: true, Actor: "user:bob"})
			if err != nil {
				t.Fatalf("promote --full: %v", err)
			}
			for _, st := range ro.Steps[at+1:] {
				if st.Kind == rollout.StepWeight || st.Kind == rollout.StepObserve || st.Kind == rollout.StepInternal || (st.Kind == rollout.StepBatch && !st.NoBake) {
					t.Fatalf("steps after promote --full: %+v, want no bake left", ro.Steps[at+1:])
				}
			}
			// The shortened plan is persisted: a server that dies now
			// resumes it, and the bakes stay skipped.
			h.crash()
			h.start()
			start := h.clk.Now()
			r := h.final(id)
			if r.Phase != rollout.PhaseSucceeded {
				t.Fatalf("after promote --full: %s (%s), want succeeded", r.Phase, r.Reason)
			}
			if took := h.clk.Now().Sub(start); took > 10*time.Minute {
				t.Errorf("the rollout took %s of virtual time after promote --full; its bakes were 30m each", took)
			}
			h.checkServing("v2")
			evs, err := h.store.ListAudit(context.Background(), audit.Filter{Action: audit.ActionPromoteManual})
			if err != nil || len(evs) != 1 {
				t.Fatalf("promote events: %v %v, want 1", evs, err)
			}
			if ev := evs[0]; ev.Actor != "user:bob" || ev.Reason != "hotfix verified by hand" || ev.Data["full"] != "true" || ev.Data["skipped"] == "" && s.name != "blue_green" {
				t.Errorf("promote event %+v, want actor, reason, full=true and what it skipped", ev)
			}
		})
	}
}

// A full promotion needs a reason and a rollout that bakes, like promote.
func TestEngine_PromoteFullRefused(t *testing.T) {
	h := newHarness(t, "strategy: {canary: {steps: [{weight: 10, bake: 30m}], scale_down_delay: 5s}}")
	h.deployV1()
	_, err := h.eng.Promote(context.Background(), rollout.PromoteRequest{App: "shop", Env: "production", Reason: "x", Full: true, Actor: "user:bob"})
	if !errors.Is(err, rollout.ErrConflict) || !strings.Contains(err.Error(), "no rollout") {
		t.Errorf("promote --full with nothing running: %v, want a conflict saying no rollout runs", err)
	}
	var fe *rollout.FieldError
	if _, err := h.eng.Promote(context.Background(), rollout.PromoteRequest{App: "shop", Env: "production", Full: true}); !errors.As(err, &fe) || fe.Field != "reason" {
		t.Errorf("promote --full without a reason: %v, want a field error on reason", err)
	}
}
