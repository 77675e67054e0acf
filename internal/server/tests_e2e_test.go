package server_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/shipgate/shipgate/internal/audit"
	"github.com/shipgate/shipgate/internal/rollout"
	"github.com/shipgate/shipgate/internal/testsignal"
)

// recordRun stores a JUnit fixture as a test run of a release, at a time
// of the test's choosing: the flaky gate judges ages of days.
func recordRun(t *testing.T, p *plane, version, commit, file string, at time.Time) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "testsignal", "testdata", "junit", file))
	if err != nil {
		t.Fatal(err)
	}
	cases, err := testsignal.ParseJUnit(strings.NewReader(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	r := testsignal.Run{App: "shop", Version: version, Commit: commit, At: at, CIDuration: 11 * time.Minute, Cases: cases}
	r.Classify(testsignal.DefaultLevels, 0)
	ev := audit.Event{Time: at, Actor: "user:ci", Action: testsignal.ActionTestRun, Subject: "shop/" + version, Outcome: "ok", Data: map[string]string{}}
	if _, err := p.Store.AddTestRun(context.Background(), r, ev); err != nil {
		t.Fatal(err)
	}
}

// TestE2E_FlakyGateRefusesAndHotfixSkipsIt: a release whose CI ran a test
// flaky for more than max_age is refused, and the refusal is audited; a
// hotfix that may skip the gate goes through, and the bypass is audited.
func TestE2E_FlakyGateRefusesAndHotfixSkipsIt(t *testing.T) {
	p := startYAML(t, fmt.Sprintf(`app: shop
`+baseVars+baseRun+`environments:
  production:
    listen: 127.0.0.1:%d
    gates:
      flaky_tests: {max_age: 48h}
      ci_time: {max: 15m}
      require_levels: [unit, integration]
hotfix: {skip: [flaky_tests]}
strategy:
  canary: {steps: [{weight: 50, bake: 1s}], scale_down_delay: 1s}
analysis:
  interval: 500ms
  min_requests: 1
  gates: [{metric: error_rate, max: 0.5}]
smoke: [{path: /healthz}]
`, shopBin, freePort(t)))
	ctx := context.Background()
	now := time.Now()
	// addItem failed and passed on a rerun three days ago; v2's CI ran it.
	recordRun(t, p, "v1", "aaa", "surefire-flaky.xml", now.Add(-72*time.Hour))
	recordRun(t, p, "v2", "bbb", "clean.xml", now.Add(-time.Minute))
	if _, err := p.Engine.CreateRelease(ctx, rollout.ReleaseRequest{App: "shop", Version: "v2", Commit: "bbb", Actor: "user:ci"}); err != nil {
		t.Fatal(err)
	}

	plan, err := p.Engine.Plan(ctx, rollout.DeployRequest{App: "shop", Env: "production", Version: "v2"})
	if err != nil {
		t.Fatal(err)
	}
	var gates []string
	for _, g := range plan.Gates {
		gates = append(gates, fmt.Sprintf("%s=%v", g.Gate, g.OK))
	}
	if want := []string{"flaky_tests=false", "ci_time=true", "require_levels=true"}; !slices.Equal(gates, want) {
		t.Fatalf("plan gates %v, want %v", gates, want)
	}

	_, err = p.Engine.Deploy(ctx, rollout.DeployRequest{App: "shop", Env: "production", Version: "v2", Actor: "user:dev"})
	var ge *rollout.GateError
	if !errors.As(err, &ge) || ge.Gate != testsignal.GateFlakyTests || !strings.Contains(ge.Message, "com.shop.CartTest.addItem (flaky since") {
		t.Fatalf("deploy: %v, want the flaky_tests gate to refuse, naming addItem", err)
	}
	refusal, ok := hasAction(auditActions(t, p, "shop/production/v2"), audit.ActionGateRefuse)
	if !ok || refusal.Data["gate"] != testsignal.GateFlakyTests || refusal.Outcome != "failed" || !strings.Contains(refusal.Reason, "addItem") {
		t.Fatalf("refusal audit event = %+v (found %v)", refusal, ok)
	}

	r, err := p.Engine.Deploy(ctx, rollout.DeployRequest{App: "shop", Env: "production", Version: "v2", Actor: "user:oncall", Hotfix: true, Reason: "checkout down"})
	if err != nil {
		t.Fatalf("hotfix: %v", err)
	}
	if !slices.Equal(r.Bypassed, []string{testsignal.GateFlakyTests}) {
		t.Fatalf("bypassed %v, want flaky_tests", r.Bypassed)
	}
	bypass, ok := hasAction(auditActions(t, p, "shop/production/v2"), audit.ActionGateBypass)
	if !ok || bypass.Data["gate"] != testsignal.GateFlakyTests || bypass.Actor != "user:oncall" || bypass.Reason != "checkout down" {
		t.Fatalf("bypass audit event = %+v (found %v)", bypass, ok)
	}
	if r = p.wait(t, r.ID); r.Phase != rollout.PhaseSucceeded {
		t.Fatalf("hotfix ended %s: %s", r.Phase, r.Reason)
	}
}
