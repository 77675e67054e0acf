package rollout_test

import (
	"fmt"
	"sync"
	"testing"

	"github.com/shipgate/shipgate/internal/rollout"
)

// crashScenario is a rollout to crash at each of its persisted
// transitions.
type crashScenario struct {
	name          string
	envYAML, yaml string
	// drill runs a drill after v2, instead of deploying v2 under test.
	drill bool
	// migrations gives v1 and v2 schema migrations (v2 brings one more):
	// the rollout of v2 has a migrate step, and must apply exactly that
	// one, once, and record it.
	migrations bool
	// want is the version serving everyone at the end, and how many
	// instances of it run.
	want      string
	instances int
}

var crashScenarios = []crashScenario{
	{
		name: "migrate", want: "v2", instances: 1, migrations: true,
		yaml: `
strategy:
  canary:
    steps:
      - {weight: 50, bake: 20s}
    scale_down_delay: 5s
`,
	},
	{
		name: "canary", want: "v2", instances: 1,
		envYAML: "    gates: {approval: true}",
		yaml: `
strategy:
  canary:
    internal: {header: X-Internal, bake: 20s}
    steps:
      - {weight: 50, bake: 30s}
    scale_down_delay: 10s
post_smoke:
  - path: /version
`,
	},
	{
		name: "blue_green", want: "v2", instances: 1,
		yaml: `
strategy:
  blue_green: {analysis: 30s, keep_blue: 20s}
`,
	},
	{
		name: "rolling", want: "v2", instances: 2,
		yaml: `
strategy:
  rolling: {max_surge: 1, bake: 20s}
`,
	},
	{
		name: "drill", want: "v2", instances: 1, drill: true,
		yaml: `
strategy:
  canary:
    steps:
      - {weight: 50, bake: 20s}
    scale_down_delay: 5s
post_smoke:
  - path: /version
`,
	},
}

// TestEngine_CrashAndResumeAtEveryTransition stops the engine just before
// and just after each persisted transition of a rollout (entering a step,
// and the first thing a step records), then resumes it with a new Engine
// on the same store, router and runtime. Every resumed rollout must end
// as an uninterrupted one would: the new release serving everyone from
// running instances, nothing else running, no request failed, and the
// router never sent traffic to an instance being stopped (checked on
// every Stop by the harness).
func TestEngine_CrashAndResumeAtEveryTransition(t *testing.T) {
	for _, sc := range crashScenarios {
		t.Run(sc.name, func(t *testing.T) {
			t.Parallel()
			// A clean run tells which commits each step makes.
			commits := commitsPerStep(t, sc)
			for i := 0; i < len(commits); i++ {
				last := min(2, commits[i])
				if testing.Short() {
					last = 1
				}
				for nth := 1; nth <= last; nth++ {
					if i == 0 && nth == 1 {
						continue // the commit that creates the rollout: a crash there is a refused deploy
					}
					for _, point := range []crashPoint{crashBefore, crashAfter} {
						name := fmt.Sprintf("step%d/commit%d/%s", i, nth, map[crashPoint]string{crashBefore: "before", crashAfter: "after"}[point])
						t.Run(name, func(t *testing.T) { runCrash(t, sc, i, nth, point) })
					}
				}
			}
		})
	}
}

// commitsPerStep runs sc without a crash and counts the commits of the
// rollout at each step index (the last index is the end).
func commitsPerStep(t *testing.T, sc crashScenario) []int {
	t.Helper()
	h := scenarioHarness(t, sc)
	var mu sync.Mutex
	var commits []int
	h.life.crashAt = func(c rollout.Change) crashPoint {
		if c.Rollout.Kind == rollout.KindDeploy && sc.drill {
			return noCrash
		}
		mu.Lock()
		defer mu.Unlock()
		for len(commits) <= c.Rollout.StepIndex {
			commits = append(commits, 0)
		}
		commits[c.Rollout.StepIndex]++
		return noCrash
	}
	r := startScenario(h, sc)
	if r = h.final(r.ID); r.Phase != rollout.PhaseSucceeded {
		t.Fatalf("clean run: %s (%s)", r.Phase, r.Reason)
	}
	mu.Lock()
	defer mu.Unlock()
	return commits
}

func scenarioHarness(t *testing.T, sc crashScenario) *harness {
	h := newHarnessEnv(t, sc.envYAML, sc.yaml)
	if sc.instances > 1 {
		h.cfg.Run.Instances = sc.instances
	}
	h.approver = "bob"
	if sc.migrations {
		h.withMigrations()
	}
	h.deployV1()
	return h
}

func startScenario(h *harness, sc crashScenario) rollout.Rollout {
	h.t.Helper()
	if !sc.drill {
		return h.deploy("v2", nil)
	}
	v2 := h.final(h.deploy("v2", nil).ID)
	if v2.Phase != rollout.PhaseSucceeded {
		h.t.Fatalf("deploy v2 before the drill: %s (%s)", v2.Phase, v2.Reason)
	}
	r, err := h.eng.Drill(h.t.Context(), rollout.DrillRequest{App: "shop", Env: "production", Actor: "alice"})
	if err != nil {
		h.t.Fatalf("drill: %v", err)
	}
	return r
}

func runCrash(t *testing.T, sc crashScenario, step, nth int, point crashPoint) {
	h := scenarioHarness(t, sc)
	seen := map[int]int{}
	crashed := false
	h.life.crashAt = func(c rollout.Change) crashPoint {
		if c.Rollout.Kind == rollout.KindDeploy && sc.drill {
			return noCrash
		}
		seen[c.Rollout.StepIndex]++
		if !crashed && c.Rollout.StepIndex == step && seen[step] == nth {
			crashed = true
			return point
		}
		return noCrash
	}
	r := startScenario(h, sc)
	h.until("the crash", 2*60*60e9, func() bool {
		select {
		case <-h.life.crashed:
			return true
		default:
		}
		return h.rollout(r.ID).Phase.Final()
	})
	if crashed {
		h.crash()
		h.start()
	} else {
		t.Logf("no commit %d at step %d: ran without a crash", nth, step)
	}
	got := h.final(r.ID)
	if got.Phase != rollout.PhaseSucceeded {
		t.Fatalf("resumed rollout ended %s (%s), want succeeded", got.Phase, got.Reason)
	}
	h.checkServing(sc.want)
	if st := h.envState(); st.Stable != sc.want {
		t.Fatalf("env state stable = %s, want %s", st.Stable, sc.want)
	}
	run := h.running()
	if len(run) != 1 || run[sc.want] != sc.instances {
		t.Fatalf("running = %v, want %d of %s only", run, sc.instances, sc.want)
	}
	if n := h.failed.Load(); n != 0 {
		t.Fatalf("%d of %d requests failed through the router", n, h.sent.Load())
	}
	if sc.migrations {
		if len(got.Migrated) != 1 || got.Migrated[0] != 2 {
			t.Fatalf("migrated = %v, want [2]: v2's one migration, recorded once", got.Migrated)
		}
		if st := h.schemaStatus(); st != "at version 2, 0 pending" {
			t.Fatalf("database %s, want at version 2", st)
		}
	}
}
