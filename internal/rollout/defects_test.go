package rollout_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shipgate/shipgate/internal/audit"
	"github.com/shipgate/shipgate/internal/rollout"
)

// Defect 2: a first deploy that failed after going live left the
// environment "stable v1" with stopped instances, and the router sending
// users to them.
func TestEngine_FailedFirstDeployLeavesNothingLive(t *testing.T) {
	h := newHarness(t, `
post_smoke:
  - {path: /version, expect_body: "not what v1 says"}
`)
	r := h.final(h.deploy("v1", nil).ID)
	if r.Phase != rollout.PhaseRolledBack {
		t.Fatalf("phase = %s (%s), want rolled_back", r.Phase, r.Reason)
	}
	if st := h.envState(); st.Stable != "" || len(st.Instances) != 0 {
		t.Fatalf("env state = %+v, want nothing live", st)
	}
	st, err := h.eng.Status(context.Background(), "shop")
	if err != nil {
		t.Fatal(err)
	}
	if s := st.Envs[0].State; s != nil {
		t.Fatalf("status says %+v is live, want nothing", s)
	}
	if rt := h.router.Routes(); len(rt.Stable.Addrs)+len(rt.Canary.Addrs) != 0 {
		t.Fatalf("router still routes to %+v", rt)
	}
	resp, err := h.client.Get("http://" + h.router.Addr() + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode == http.StatusBadGateway {
		t.Fatalf("router answered 502: it sends users to a stopped instance")
	}
	if got := h.running(); len(got) != 0 {
		t.Fatalf("running = %v, want nothing", got)
	}
	// The next deploy is a first deploy again, not judged against a dead
	// stable release.
	next := h.deploy("v2", nil)
	if next.FromVersion != "" {
		t.Fatalf("next deploy is from %q, want from nothing", next.FromVersion)
	}
	if _, err := h.eng.Drill(context.Background(), rollout.DrillRequest{App: "shop", Env: "production"}); !errors.Is(err, rollout.ErrNotFound) && !errors.Is(err, rollout.ErrConflict) {
		t.Fatalf("drill with nothing live: %v, want refused", err)
	}
}

// Defect 3: a refused deploy recorded its release anyway, and the version
// was then blocked for a later deploy with variables.
func TestEngine_RefusedDeployLeavesNoRelease(t *testing.T) {
	ctx := context.Background()
	released := func(h *harness, version string) bool {
		_, err := h.store.GetRelease(ctx, "shop", version)
		if err != nil && !errors.Is(err, rollout.ErrNotFound) {
			t.Fatal(err)
		}
		return err == nil
	}
	t.Run("missing variable", func(t *testing.T) {
		h := newHarness(t, canary)
		h.cfg.Run.Env["REGION"] = "${REGION}"
		_, err := h.eng.Deploy(ctx, rollout.DeployRequest{App: "shop", Env: "production", Version: "v1", Actor: "alice"})
		var fe *rollout.FieldError
		if !errors.As(err, &fe) || !strings.Contains(err.Error(), "REGION") {
			t.Fatalf("deploy without REGION: %v, want refused naming REGION", err)
		}
		if released(h, "v1") {
			t.Fatal("the refused deploy recorded release v1")
		}
		if r := h.final(h.deploy("v1", map[string]string{"REGION": "eu"}).ID); r.Phase != rollout.PhaseSucceeded {
			t.Fatalf("deploy with REGION: %s (%s)", r.Phase, r.Reason)
		}
	})
	t.Run("checks gate", func(t *testing.T) {
		h := newHarnessEnv(t, "    gates: {checks: [unit]}", canary)
		_, err := h.eng.Deploy(ctx, rollout.DeployRequest{App: "shop", Env: "production", Version: "v1", Vars: map[string]string{"FAIL_RATE": "0"}, Actor: "alice"})
		var ge *rollout.GateError
		if !errors.As(err, &ge) || ge.Gate != "checks" {
			t.Fatalf("deploy without checks: %v, want refused by the checks gate", err)
		}
		if released(h, "v1") {
			t.Fatal("the refused deploy recorded release v1")
		}
		if _, err := h.eng.CreateRelease(ctx, rollout.ReleaseRequest{App: "shop", Version: "v1", Commit: "abc", Checks: map[string]rollout.CheckState{"unit": rollout.CheckPassed}}); err != nil {
			t.Fatalf("release create after the refused deploy: %v", err)
		}
	})
	t.Run("20 concurrent deploys", func(t *testing.T) {
		h := newHarness(t, canary)
		h.deployV1()
		var wg sync.WaitGroup
		errs := make([]error, 20)
		for i := range errs {
			wg.Go(func() {
				_, errs[i] = h.eng.Deploy(ctx, rollout.DeployRequest{App: "shop", Env: "production", Version: fmt.Sprintf("v%d", i+2), Actor: "ci"})
			})
		}
		wg.Wait()
		var accepted []int
		for i, err := range errs {
			switch {
			case err == nil:
				accepted = append(accepted, i+2)
			case !errors.Is(err, rollout.ErrConflict):
				t.Fatalf("deploy v%d: %v, want accepted or a conflict", i+2, err)
			case released(h, fmt.Sprintf("v%d", i+2)):
				t.Fatalf("the refused deploy of v%d recorded its release", i+2)
			}
		}
		if len(accepted) != 1 {
			t.Fatalf("accepted %v, want exactly one", accepted)
		}
		if !released(h, fmt.Sprintf("v%d", accepted[0])) {
			t.Fatalf("the accepted v%d has no release", accepted[0])
		}
	})
}

// Defect 4: release variables silently carried over to a later deploy of
// the same version. A deploy runs with exactly the variables it names;
// plan and the rollout show their names, never their values.
func TestEngine_DeployVariablesAreExplicit(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t, canary)
	h.deployV1()
	bad := h.final(h.deploy("v2", map[string]string{"FAIL_RATE": "0.5"}).ID)
	if bad.Phase != rollout.PhaseRolledBack {
		t.Fatalf("v2 with FAIL_RATE=0.5: %s (%s), want rolled back", bad.Phase, bad.Reason)
	}
	if got := strings.Join(bad.Vars, ","); got != "FAIL_RATE" {
		t.Fatalf("rollout vars = %q, want the name FAIL_RATE", got)
	}
	for _, tc := range []struct {
		name string
		vars map[string]string
		want string
	}{
		{"no vars", nil, "release v2: it was recorded with FAIL_RATE, which this deploy does not give:"},
		{"other value", map[string]string{"FAIL_RATE": "0"}, "release v2: this deploy gives other values of FAIL_RATE:"},
		{"more vars", map[string]string{"FAIL_RATE": "0.5", "COLOR": "red"}, "release v2: it was recorded without COLOR:"},
	} {
		_, err := h.eng.Deploy(ctx, rollout.DeployRequest{App: "shop", Env: "production", Version: "v2", Vars: tc.vars, Actor: "alice"})
		var fe *rollout.FieldError
		if !errors.As(err, &fe) || fe.Field != "vars" || !strings.Contains(err.Error(), tc.want) {
			t.Fatalf("%s: deploy v2: %v, want refused on vars with %q", tc.name, err, tc.want)
		}
		if strings.Contains(err.Error(), "0.5") {
			t.Fatalf("%s: the error shows a variable's value: %v", tc.name, err)
		}
		if _, err := h.eng.Plan(ctx, rollout.DeployRequest{App: "shop", Env: "production", Version: "v2", Vars: tc.vars}); !errors.As(err, &fe) {
			t.Fatalf("%s: plan v2: %v, want the same refusal", tc.name, err)
		}
	}
	view, err := h.eng.Plan(ctx, rollout.DeployRequest{App: "shop", Env: "production", Version: "v2", Vars: map[string]string{"FAIL_RATE": "0.5"}})
	if err != nil || strings.Join(view.Vars, ",") != "FAIL_RATE" {
		t.Fatalf("plan with the same vars: %+v, %v; want allowed, showing FAIL_RATE", view.Vars, err)
	}
	if r := h.final(h.deploy("v3", nil).ID); r.Phase != rollout.PhaseSucceeded || len(r.Vars) != 0 {
		t.Fatalf("v3 without vars: %s (%s), vars %v", r.Phase, r.Reason, r.Vars)
	}
}

// Defect 9: a rollback after promotion erased "previous": drill and a
// second rollback then refused. The environment keeps its history, and
// rollback --to goes to any release that was live before.
func TestEngine_RollbackKeepsHistory(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t, canary)
	h.deployV1()
	for _, v := range []string{"v2", "v3", "v4"} {
		if r := h.final(h.deploy(v, nil).ID); r.Phase != rollout.PhaseSucceeded {
			t.Fatalf("deploy %s: %s (%s)", v, r.Phase, r.Reason)
		}
	}
	if st := h.envState(); strings.Join(st.History, ",") != "v3,v2,v1" || st.Previous != "v3" {
		t.Fatalf("after v4: history %v, previous %s; want v3,v2,v1 and v3", st.History, st.Previous)
	}
	rollback := func(to string) rollout.Rollout {
		t.Helper()
		r, err := h.eng.Rollback(ctx, rollout.RollbackRequest{App: "shop", Env: "production", Reason: "bad", To: to, Actor: "alice"})
		if err != nil {
			t.Fatalf("rollback --to %q: %v", to, err)
		}
		return h.final(r.ID)
	}
	if r := rollback(""); r.Phase != rollout.PhaseSucceeded || r.Version != "v3" {
		t.Fatalf("rollback: %s to %s (%s), want succeeded to v3", r.Phase, r.Version, r.Reason)
	}
	h.checkServing("v3")
	if st := h.envState(); strings.Join(st.History, ",") != "v2,v1" || st.Previous != "v2" {
		t.Fatalf("after rolling back to v3: history %v, previous %q; want v2,v1", st.History, st.Previous)
	}
	// A drill still works after a rollback after promotion...
	d, err := h.eng.Drill(ctx, rollout.DrillRequest{App: "shop", Env: "production", Actor: "alice"})
	if err != nil {
		t.Fatalf("drill after a rollback: %v", err)
	}
	if d = h.final(d.ID); d.Phase != rollout.PhaseSucceeded || d.Version != "v2" {
		t.Fatalf("drill: %s with %s (%s), want succeeded with v2", d.Phase, d.Version, d.Reason)
	}
	h.checkServing("v3")
	if st := h.envState(); strings.Join(st.History, ",") != "v2,v1" {
		t.Fatalf("after the drill: history %v, want v2,v1 as before", st.History)
	}
	// ...and so does a rollback to any earlier release.
	if _, err := h.eng.Rollback(ctx, rollout.RollbackRequest{App: "shop", Env: "production", Reason: "x", To: "v4", Actor: "alice"}); err == nil {
		t.Fatal("rollback --to v4, rolled back from: accepted")
	}
	if _, err := h.eng.Rollback(ctx, rollout.RollbackRequest{App: "shop", Env: "production", Reason: "x", To: "v9", Actor: "alice"}); !strings.Contains(fmt.Sprint(err), "v2, v1") {
		t.Fatalf("rollback --to v9: %v, want refused listing v2, v1", err)
	}
	if r := rollback("v1"); r.Phase != rollout.PhaseSucceeded || r.Version != "v1" {
		t.Fatalf("rollback --to v1: %s to %s (%s)", r.Phase, r.Version, r.Reason)
	}
	h.checkServing("v1")
	if st := h.envState(); len(st.History) != 0 || st.Previous != "" {
		t.Fatalf("after rolling back to v1: history %v, previous %q; want none", st.History, st.Previous)
	}
}

// Defect 9, automatic: a blue-green release switched back by its observe
// step after promotion leaves the history as it was before it.
func TestEngine_SwitchBackAfterPromotionKeepsPrevious(t *testing.T) {
	h := newHarness(t, "strategy: {blue_green: {analysis: 1m, keep_blue: 10s}}")
	h.deployV1()
	if r := h.final(h.deploy("v2", nil).ID); r.Phase != rollout.PhaseSucceeded {
		t.Fatalf("v2: %s (%s)", r.Phase, r.Reason)
	}
	r := h.final(h.deploy("v3", map[string]string{"FAIL_RATE": "0.6"}).ID)
	if r.Phase != rollout.PhaseRolledBack || r.PromotedAt.IsZero() {
		t.Fatalf("v3: %s (%s), want switched back after promotion", r.Phase, r.Reason)
	}
	h.checkServing("v2")
	if st := h.envState(); st.Stable != "v2" || st.Previous != "v1" {
		t.Fatalf("after the switch back: stable %s, previous %q; want v2 and v1", st.Stable, st.Previous)
	}
	d, err := h.eng.Drill(context.Background(), rollout.DrillRequest{App: "shop", Env: "production", Actor: "alice"})
	if err != nil {
		t.Fatalf("drill: %v", err)
	}
	if d = h.final(d.ID); d.Phase != rollout.PhaseSucceeded {
		t.Fatalf("drill: %s (%s)", d.Phase, d.Reason)
	}
}

// Defect 13: a rollback stopped the canary while requests sent to it just
// before the switch were still on their way. The engine stops a version
// only once the router has drained what was in flight to it (the harness
// checks, at every Stop, that the router has nothing in flight there).
func TestEngine_RollbackDrainsBeforeStopping(t *testing.T) {
	h := newHarness(t, canary)
	h.deployV1()
	h.traffic = 0
	id := h.deploy("v2", map[string]string{"LATENCY": "800ms"}).ID
	h.until("the canary at 50%", time.Hour, func() bool { return h.rollout(id).Weight == 50 })
	r := h.rollout(id)
	results := make(chan int, 20)
	for range cap(results) {
		go func() {
			resp, err := h.client.Get("http://" + h.router.Addr() + "/version")
			if err != nil {
				results <- 0
				return
			}
			resp.Body.Close()
			results <- resp.StatusCode
		}()
	}
	deadline := time.Now().Add(10 * time.Second)
	for h.router.InFlight(r.New[0].Addr) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no request reached the slow canary")
		}
		time.Sleep(time.Millisecond)
	}
	if _, err := h.eng.Rollback(context.Background(), rollout.RollbackRequest{App: "shop", Env: "production", Reason: "slow", Actor: "alice"}); err != nil {
		t.Fatal(err)
	}
	if r = h.final(id); r.Phase != rollout.PhaseRolledBack {
		t.Fatalf("%s (%s), want rolled back", r.Phase, r.Reason)
	}
	for range cap(results) {
		if code := <-results; code != http.StatusOK {
			t.Fatalf("a request in flight during the rollback got %d, want 200", code)
		}
	}
	h.checkServing("v1")
}

// Defect 10: a deployer approved its own production deploy. An approval
// rule sets how many different people must approve, whether the deployer
// may be one, and which roles may; every approval and refusal is audited.
func TestEngine_ApprovalSeparationOfDuties(t *testing.T) {
	ctx := context.Background()
	h := newHarnessEnv(t, "    gates: {approval: {required: 2, prevent_self_approval: true, roles: [deployer, admin]}}", canary)
	id := h.deploy("v1", nil).ID // by alice
	h.until("waiting for approval", time.Hour, func() bool {
		r := h.rollout(id)
		return r.Steps[r.StepIndex].Kind == rollout.StepApproval
	})
	approve := func(actor, role string) (rollout.Rollout, error) {
		return h.eng.Approve(ctx, rollout.ApproveRequest{App: "shop", Env: "production", Actor: actor, Role: role, Comment: "lgtm"})
	}
	if _, err := approve("alice", "deployer"); !errors.Is(err, rollout.ErrForbidden) || !strings.Contains(err.Error(), "prevent_self_approval") {
		t.Fatalf("alice approves her own deploy: %v, want forbidden", err)
	}
	if _, err := approve("vic", "viewer"); !errors.Is(err, rollout.ErrForbidden) || !strings.Contains(err.Error(), "deployer or admin") {
		t.Fatalf("a viewer approves: %v, want forbidden", err)
	}
	r, err := approve("bob", "deployer")
	if err != nil || r.Approval != nil || len(r.Approvals) != 1 {
		t.Fatalf("bob approves: %+v, %v; want one approval of two, still waiting", r.Approvals, err)
	}
	if _, err := approve("bob", "deployer"); !errors.Is(err, rollout.ErrConflict) {
		t.Fatalf("bob approves twice: %v, want a conflict", err)
	}
	h.clk.Step(time.Hour) // an approval does not expire while the rollout waits
	if r := h.rollout(id); r.Phase != rollout.PhaseRunning || r.Steps[r.StepIndex].Kind != rollout.StepApproval {
		t.Fatalf("with one approval of two: %s at %s", r.Phase, r.Steps[r.StepIndex].Kind)
	}
	if r, err = approve("carol", "admin"); err != nil || r.Approval == nil || r.Approval.By != "carol" {
		t.Fatalf("carol approves: %+v, %v; want approved", r.Approval, err)
	}
	if r = h.final(id); r.Phase != rollout.PhaseSucceeded {
		t.Fatalf("%s (%s), want succeeded", r.Phase, r.Reason)
	}
	evs, err := h.store.ListAudit(ctx, audit.Filter{Action: audit.ActionApprove})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for i := len(evs) - 1; i >= 0; i-- {
		got = append(got, evs[i].Actor+" "+evs[i].Outcome+" "+evs[i].Data["approvals"])
	}
	if want := "alice failed ,vic failed ,bob ok 1/2,bob failed ,carol ok 2/2"; strings.Join(got, ",") != want {
		t.Fatalf("approval audit = %q, want %q", strings.Join(got, ","), want)
	}
}

// Defect 1, engine side: a blue-green release is not settled while its
// observe step can still switch back, and its final phase says what
// happened.
func TestEngine_BlueGreenIsNotSettledWhileObserved(t *testing.T) {
	h := newHarness(t, "strategy: {blue_green: {analysis: 1m, keep_blue: 10s}}")
	h.deployV1()
	for _, tc := range []struct {
		version, failRate string
		want              rollout.Phase
	}{{"v2", "0", rollout.PhaseSucceeded}, {"v3", "0.6", rollout.PhaseRolledBack}} {
		id := h.deploy(tc.version, map[string]string{"FAIL_RATE": tc.failRate}).ID
		var observed rollout.Rollout
		h.until("observing", time.Hour, func() bool {
			observed = h.rollout(id)
			return observed.Phase.Final() || observed.Steps[observed.StepIndex].Kind == rollout.StepObserve
		})
		if observed.PromotedAt.IsZero() || !observed.SettledAt.IsZero() || observed.Phase != rollout.PhaseRunning {
			t.Fatalf("%s while observed: promoted %v, settled %v, %s; want promoted, not settled, running", tc.version, observed.PromotedAt, observed.SettledAt, observed.Phase)
		}
		r := h.final(id)
		if r.Phase != tc.want || r.SettledAt.IsZero() != (tc.want == rollout.PhaseRolledBack) {
			t.Fatalf("%s: %s, settled %v (%s); want %s", tc.version, r.Phase, r.SettledAt, r.Reason, tc.want)
		}
	}
	h.checkServing("v2")
}

// A rolled back deploy can be retried as it was: same release, same
// variables; a succeeded one cannot.
func TestEngine_RetryAnAbortedDeploy(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t, canary)
	h.deployV1()
	id := h.deploy("v2", map[string]string{"LATENCY": "1ms"}).ID
	h.until("baking", time.Hour, func() bool { return h.rollout(id).Weight == 50 })
	if _, err := h.eng.Rollback(ctx, rollout.RollbackRequest{App: "shop", Env: "production", Reason: "not now", Actor: "alice"}); err != nil {
		t.Fatal(err)
	}
	if r := h.final(id); r.Phase != rollout.PhaseRolledBack {
		t.Fatalf("aborted: %s", r.Phase)
	}
	again, err := h.eng.Retry(ctx, rollout.RetryRequest{App: "shop", Env: "production", Actor: "alice"})
	if err != nil {
		t.Fatalf("retry: %v", err)
	}
	if again.Version != "v2" || strings.Join(again.Vars, ",") != "LATENCY" {
		t.Fatalf("retry deployed %s with %v, want v2 with LATENCY", again.Version, again.Vars)
	}
	if r := h.final(again.ID); r.Phase != rollout.PhaseSucceeded {
		t.Fatalf("retry: %s (%s)", r.Phase, r.Reason)
	}
	if _, err := h.eng.Retry(ctx, rollout.RetryRequest{App: "shop", Env: "production", Actor: "alice"}); !errors.Is(err, rollout.ErrConflict) {
		t.Fatalf("retry of a succeeded deploy: %v, want a conflict", err)
	}
}

// A plan of the version already live said "replacing v1" and passed,
// while the deploy it previews is refused as a conflict: plan refuses it
// as the deploy does.
func TestEngine_PlanOfTheLiveVersionIsRefusedLikeItsDeploy(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t, canary)
	h.deployV1()
	req := rollout.DeployRequest{App: "shop", Env: "production", Version: "v1", Actor: "alice"}
	_, derr := h.eng.Deploy(ctx, req)
	if !errors.Is(derr, rollout.ErrConflict) {
		t.Fatalf("deploy of the live v1: %v, want a conflict", derr)
	}
	view, err := h.eng.Plan(ctx, req)
	if !errors.Is(err, rollout.ErrConflict) || err.Error() != derr.Error() {
		t.Fatalf("plan of the live v1: %+v, %v; want the deploy's refusal %q", view, err, derr)
	}
	if _, err := h.eng.Plan(ctx, rollout.DeployRequest{App: "shop", Env: "production", Version: "v2"}); err != nil {
		t.Fatalf("plan of v2: %v", err)
	}
}
