package rollout_test

import (
	"context"
	"testing"
	"time"

	"github.com/shipgate/shipgate/internal/audit"
	"github.com/shipgate/shipgate/internal/rollout"
)

// TestEngine_RecordsTheCommandItCarriesOut: what the engine writes when
// it carries out a stored command (rollout.WithCommand) records the
// command's identity in the audit event committed with the change: the
// deploy event (same transaction as the rollout), the pause and the
// promote a running rollout's driver commits, and the event of a
// rollback's rollout. What no command asked for records none. This is
// what a leader that claims a command again looks up (internal/ha).
func TestEngine_RecordsTheCommandItCarriesOut(t *testing.T) {
	h := newHarness(t, "strategy: {canary: {steps: [{weight: 10, bake: 30m}, {weight: 50, bake: 30m}], scale_down_delay: 5s}}")
	h.deployV1()
	ctx := context.Background()
	r, err := h.eng.Deploy(rollout.WithCommand(ctx, "41"), rollout.DeployRequest{App: "shop", Env: "production", Version: "v2", Actor: "dave"})
	if err != nil {
		t.Fatal(err)
	}
	id := r.ID
	h.until("baking", time.Hour, func() bool {
		r := h.rollout(id)
		return r.Phase == rollout.PhaseRunning && r.Steps[r.StepIndex].Kind == rollout.StepWeight && r.Bake != nil
	})
	if _, err := h.eng.Pause(rollout.WithCommand(ctx, "42"), rollout.PauseRequest{App: "shop", Env: "production", Reason: "look", Actor: "bob"}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.eng.Promote(rollout.WithCommand(ctx, "43"), rollout.PromoteRequest{App: "shop", Env: "production", Reason: "fine", Full: true, Actor: "bob"}); err != nil {
		t.Fatal(err)
	}
	if r := h.final(id); r.Phase != rollout.PhaseSucceeded {
		t.Fatalf("v2: %s (%s)", r.Phase, r.Reason)
	}
	back, err := h.eng.Rollback(rollout.WithCommand(ctx, "44"), rollout.RollbackRequest{App: "shop", Env: "production", Reason: "undo", Actor: "carol"})
	if err != nil {
		t.Fatal(err)
	}
	h.final(back.ID)

	evs, err := h.store.ListAudit(ctx, audit.Filter{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{audit.ActionDeploy + " dave": "41", audit.ActionPause + " bob": "42", audit.ActionPromoteManual + " bob": "43", audit.ActionRollbackManual + " carol": "44"}
	seen := map[string]bool{}
	for _, ev := range evs {
		k := ev.Action + " " + ev.Actor
		got := ev.Data[rollout.CommandData]
		if w, ok := want[k]; ok {
			if got != w {
				t.Errorf("%s on %s records command %q, want %q", k, ev.Subject, got, w)
			}
			seen[k] = true
			continue
		}
		if got != "" {
			t.Errorf("%s by %s on %s records command %q, which did not ask for it", ev.Action, ev.Actor, ev.Subject, got)
		}
	}
	for k := range want {
		if !seen[k] {
			t.Errorf("no audit event %s", k)
		}
	}
}
