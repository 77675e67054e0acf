package cli

import (
	"strings"
	"testing"
	"time"

	"github.com/shipgate/shipgate/internal/analysis"
	"github.com/shipgate/shipgate/internal/rollout"
)

// TestCLI_DeployWaitSaysPaused: a bake paused because a gate stayed
// inconclusive waits for a person however long. deploy --wait printed
// "running ... verdict pass" every 5 s for as long, never saying the
// rollout was paused nor how to let it go on (found by using it as a new
// user: ten minutes of "verdict pass" on a 10 s bake). It must say so once
// per pause, -o json included, with the commands for this app and env.
func TestCLI_DeployWaitSaysPaused(t *testing.T) {
	const why = "gate error_rate <= 1% still inconclusive after 20s: 0 of 142 canary requests failed (0%); paused: shipgate promote to go on, shipgate rollback to roll back"
	for _, output := range []string{"text", "json"} {
		t.Run(output, func(t *testing.T) {
			e := newEnv(t)
			base := rollout.Rollout{App: "shop", Env: "staging", Kind: rollout.KindDeploy, FromVersion: "1.0.0", CreatedAt: t0, Strategy: "canary",
				Steps: canarySteps(), Phase: rollout.PhaseRunning, StepIndex: 2, Weight: 10, Analysis: judgement(analysis.Pass, 0)}
			paused := base
			paused.Paused = why
			done := base
			done.Phase, done.StepIndex, done.Weight, done.FinishedAt = rollout.PhaseSucceeded, len(base.Steps), 100, t0.Add(time.Minute)
			e.svc.mu.Lock()
			e.svc.scripts["5.5.0"] = []rollout.Rollout{base, paused, paused, paused, base, paused, paused, done}
			e.svc.mu.Unlock()

			r := e.run(t, "-o", output, "deploy", "shop", "5.5.0", "--env", "staging", "--wait")
			r.wantCode(t, ExitOK)
			// Two pauses (a person resumed the first): each said once.
			if got, want := strings.Count(r.stderr, "PAUSED: "+why+"\n"), 2; got != want {
				t.Fatalf("pause notices = %d, want %d:\n%s", got, want, r.stderr)
			}
			hint := "waiting for a person: shipgate promote shop --env staging --reason TEXT to go on, shipgate rollback shop --env staging --reason TEXT to roll back\n"
			if got, want := strings.Count(r.stderr, hint), 2; got != want {
				t.Fatalf("hints = %d, want %d:\n%s", got, want, r.stderr)
			}
		})
	}
}
