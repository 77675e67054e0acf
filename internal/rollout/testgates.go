package rollout

import (
	"context"
	"fmt"

	"github.com/shipgate/shipgate/internal/audit"
	"github.com/shipgate/shipgate/internal/testsignal"
)

// TestJudge judges a release on the test results its CI recorded.
type TestJudge interface {
	// Judge evaluates the test gates g for a release.
	Judge(ctx context.Context, app, version string, g testsignal.Gates) ([]testsignal.Verdict, error)
}

// testGates evaluates the test gates of a stage (flaky_tests, ci_time,
// require_levels) for a release. Without a TestJudge they are not
// evaluated: the server always has one.
func (e *Engine) testGates(ctx context.Context, st *Spec, rel Release) ([]GateStatus, error) {
	g := st.Gates
	tg := g.Tests
	if e.tests == nil || (tg.FlakyMaxAge == 0 && tg.CITimeMax == 0 && len(tg.RequireLevels) == 0) {
		return nil, nil
	}
	verdicts, err := e.tests.Judge(ctx, rel.App, rel.Version, tg)
	if err != nil {
		return nil, fmt.Errorf("judge the tests of %s: %w", rel.Version, err)
	}
	out := make([]GateStatus, 0, len(verdicts))
	for _, v := range verdicts {
		out = append(out, GateStatus{Gate: v.Gate, OK: v.OK, Detail: v.Detail})
	}
	return out, nil
}

// auditRefusal records that a test gate refused a deploy. Other gates'
// refusals are answered to the caller only; a test gate's is also kept,
// so that the flaky tests that held a release are on record.
func (e *Engine) auditRefusal(ctx context.Context, st *Spec, rel Release, g GateStatus) {
	if !testsignal.IsGate(g.Gate) {
		return
	}
	ev := audit.Event{Time: e.clock.Now(), Actor: ActorEngine, Action: audit.ActionGateRefuse,
		Subject: rel.App + "/" + st.Name + "/" + rel.Version, Reason: g.Detail, Outcome: "failed",
		Data: map[string]string{"gate": g.Gate}}
	if err := e.store.Commit(ctx, Change{Audit: []audit.Event{ev}}); err != nil {
		e.log.Warn("record gate refusal", "gate", g.Gate, "error", err)
	}
}
