package server_test

// End-to-end tests of issue 3's strategies and gates: real control plane,
// real shop processes, real HTTP load.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/shipgate/shipgate/internal/audit"
	"github.com/shipgate/shipgate/internal/demo"
	"github.com/shipgate/shipgate/internal/rollout"
	"github.com/shipgate/shipgate/internal/server"
)

// baseRun is the run section every pipeline test shares.
const baseRun = `run:
  command: [%q, "--port", "${PORT}", "--version", "${VERSION}", "--pay-fail-rate", "${PAY_FAIL_RATE}", "--latency", "${LATENCY}", "--fail-health-file", "${FAIL_FILE}"]
  env: {MERCHANT_ID: "${MERCHANT_ID}"}
  instances: 2
  health: {path: /healthz, interval: 200ms, timeout: 1s, failure_threshold: 2}
  start_timeout: 4s
  stop_grace: 5s
`

const baseVars = `vars: {PAY_FAIL_RATE: "0", LATENCY: "20ms", MERCHANT_ID: "m-1", FAIL_FILE: "/nonexistent/shipgate-test"}
`

const baseAnalysis = `analysis:
  interval: 500ms
  min_requests: 50
  gates:
    - {metric: error_rate, max: 0.02}
    - {metric: latency_p99, max_ratio_to_stable: 2}
  on_inconclusive: extend # a busy machine makes a healthy bake longer, not paused
smoke: [{path: /healthz}, {path: /products}]
`

// loadOn sends steady traffic to an environment's router.
func (p *plane) loadOn(t *testing.T, env string, rate int) *demo.Load {
	t.Helper()
	l := &demo.Load{URL: "http://" + p.Config.Environments[env].Listen, Rate: rate}
	l.Start(context.Background())
	t.Cleanup(l.Stop)
	return l
}

// get sends one GET with headers and returns the version that answered.
func get(t *testing.T, url string, header map[string]string) (string, int) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.Header.Get("X-Shipgate-Version"), resp.StatusCode
}

// waitStep waits until rollout id is at a step of kind k.
func (p *plane) waitStep(t *testing.T, id int64, k rollout.StepKind) rollout.Rollout {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		r, err := p.Engine.GetRollout(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if r.StepIndex < len(r.Steps) && r.Steps[r.StepIndex].Kind == k && r.Phase == rollout.PhaseRunning {
			return r
		}
		if r.Phase.Final() {
			t.Fatalf("rollout %d ended %s (%s) before reaching %s", id, r.Phase, r.Reason, k)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("rollout %d never reached %s", id, k)
	return rollout.Rollout{}
}

func TestE2E_BlueGreenSwitchAndSwitchBack(t *testing.T) {
	prod, preview := freePort(t), freePort(t)
	p := startYAML(t, fmt.Sprintf(`app: shop
`+baseVars+baseRun+`environments:
  production:
    listen: 127.0.0.1:%d
    preview_listen: 127.0.0.1:%d
    sticky: {header: X-User-ID}
    gates: {approval: true}
strategy:
  blue_green: {keep_blue: 60s, analysis: 2s}
`+baseAnalysis, shopBin, prod, preview))
	// The first deploy waits for approval too.
	first, err := p.Engine.Deploy(context.Background(), rollout.DeployRequest{App: "shop", Version: "v1", Actor: "user:test"})
	if err != nil {
		t.Fatal(err)
	}
	p.waitStep(t, first.ID, rollout.StepApproval)
	if _, err := p.Engine.Approve(context.Background(), rollout.ApproveRequest{App: "shop", Version: "v1", Actor: "user:alice"}); err != nil {
		t.Fatal(err)
	}
	if r := p.wait(t, first.ID); r.Phase != rollout.PhaseSucceeded {
		t.Fatalf("v1: %s %s", r.Phase, r.Reason)
	}
	load := p.load(t, 150)
	time.Sleep(time.Second)

	r, err := p.Engine.Deploy(context.Background(), rollout.DeployRequest{App: "shop", Version: "v2", Actor: "user:test"})
	if err != nil {
		t.Fatal(err)
	}
	p.waitStep(t, r.ID, rollout.StepApproval)
	// Green is up and smoke-checked, reachable on the preview address
	// only; users are all on blue.
	previewURL := fmt.Sprintf("http://127.0.0.1:%d/products", preview)
	if v, code := get(t, previewURL, nil); v != "v2" || code != 200 {
		t.Fatalf("preview answered by %q with %d, want v2", v, code)
	}
	if got := load.Counts()["v2"].Served; got != 0 {
		t.Fatalf("%d user requests reached green before the switch", got)
	}
	if _, err := p.Engine.Approve(context.Background(), rollout.ApproveRequest{App: "shop", Actor: "user:alice", Comment: "looks good"}); err != nil {
		t.Fatal(err)
	}
	r = p.waitStep(t, r.ID, rollout.StepScaleDown)
	switchAt := r.PromotedAt
	time.Sleep(time.Second)
	p.onlyVersion(t, "v2", 20)
	// One atomic step: no user request sent after the switch reached blue.
	if last := load.LastSent("v1"); last.After(switchAt.Add(50 * time.Millisecond)) {
		t.Fatalf("blue answered a request sent %s after the switch", last.Sub(switchAt))
	}

	// Switch back while blue still runs: instant.
	rb, err := p.Engine.Rollback(context.Background(), rollout.RollbackRequest{App: "shop", Reason: "green misbehaves", Actor: "user:alice"})
	if err != nil {
		t.Fatal(err)
	}
	if took := rb.TrafficRestoredAt.Sub(rb.RollbackStartedAt); took > time.Second || took < 0 {
		t.Fatalf("switching back took %s, want under a second", took)
	}
	time.Sleep(500 * time.Millisecond)
	load.Stop()
	p.onlyVersion(t, "v1", 20)
	if fails := load.Failures(); len(fails) != 0 {
		t.Fatalf("%d requests failed during switch and switch back, first %+v", len(fails), fails[0])
	}
	events := auditActions(t, p, "shop/production/v2")
	var promotes, approvals int
	for _, e := range events {
		switch e.Action {
		case audit.ActionPromote:
			promotes++
		case audit.ActionApprove:
			approvals++
			if e.Actor != "user:alice" {
				t.Fatalf("approval by %s, want user:alice", e.Actor)
			}
		}
	}
	if promotes != 1 || approvals != 1 {
		t.Fatalf("audit has %d switches and %d approvals, want 1 and 1", promotes, approvals)
	}
}

func TestE2E_BlueGreenPostSwitchAnalysisSwitchesBack(t *testing.T) {
	p := startYAML(t, fmt.Sprintf(`app: shop
`+baseVars+baseRun+`environments:
  production:
    listen: 127.0.0.1:%d
    sticky: {header: X-User-ID}
strategy:
  blue_green: {keep_blue: 60s, analysis: 10s}
`+baseAnalysis, shopBin, freePort(t)))
	p.deploy(t, "v1", nil)
	load := p.load(t, 150)
	time.Sleep(2 * time.Second)
	r := p.deploy(t, "v2", map[string]string{"PAY_FAIL_RATE": "0.5"})
	load.Stop()
	if r.Phase != rollout.PhaseRolledBack || !strings.Contains(r.Reason, "error_rate") {
		t.Fatalf("green ended %s (%s), want switched back by the error_rate gate", r.Phase, r.Reason)
	}
	if took := r.TrafficRestoredAt.Sub(r.PromotedAt); took > 10*time.Second {
		t.Fatalf("green kept traffic %s after the switch", took)
	}
	p.onlyVersion(t, "v1", 10)
}

func TestE2E_RollingBatchFailingHealthRestoresOld(t *testing.T) {
	failFile := filepath.Join(t.TempDir(), "fail")
	p := startYAML(t, fmt.Sprintf(`app: shop
`+baseVars+strings.Replace(baseRun, "instances: 2", "instances: 3", 1)+`environments:
  production:
    listen: 127.0.0.1:%d
    sticky: {header: X-User-ID}
strategy:
  rolling: {max_surge: 1, bake: 3s}
`+baseAnalysis, shopBin, freePort(t)))
	p.deploy(t, "v1", nil)
	load := p.load(t, 150)
	time.Sleep(time.Second)

	r, err := p.Engine.Deploy(context.Background(), rollout.DeployRequest{App: "shop", Version: "v2", Vars: map[string]string{"FAIL_FILE": failFile}, Actor: "user:test"})
	if err != nil {
		t.Fatal(err)
	}
	// Wait for the first new instance to take traffic, then break its health.
	deadline := time.Now().Add(30 * time.Second)
	for load.Counts()["v2"].Served == 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if err := os.WriteFile(failFile, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	brokenAt := time.Now()
	r = p.wait(t, r.ID)
	time.Sleep(500 * time.Millisecond)
	load.Stop()
	if r.Phase != rollout.PhaseRolledBack || !strings.Contains(r.Reason, "unhealthy") {
		t.Fatalf("rolling ended %s (%s), want rolled back for an unhealthy instance", r.Phase, r.Reason)
	}
	// Health is checked every 200ms and fails after 2 checks: after at most
	// ~600ms the instance is out. No request sent after that reached v2.
	if last := load.LastSent("v2"); last.After(brokenAt.Add(time.Second)) {
		t.Fatalf("v2 answered a request sent %s after its health broke", last.Sub(brokenAt))
	}
	st, err := p.Engine.Status(context.Background(), "shop")
	if err != nil {
		t.Fatal(err)
	}
	if got := st.Envs[0].State; got.Stable != "v1" || len(got.Instances) != 3 {
		t.Fatalf("after the rollback: stable %s with %d instances, want v1 with 3", got.Stable, len(got.Instances))
	}
	for _, inst := range got(st).Instances {
		if syscall.Kill(inst.PID, 0) != nil {
			t.Fatalf("instance %s (pid %d) of the restored release is not running", inst.ID, inst.PID)
		}
	}
	p.onlyVersion(t, "v1", 20)
	if fails := load.Failures(); len(fails) != 0 {
		t.Fatalf("%d requests failed; an unhealthy instance that still answers fails none", len(fails))
	}
}

func got(st rollout.AppStatus) rollout.EnvState { return *st.Envs[0].State }

func TestE2E_RollingReplacesAllInstances(t *testing.T) {
	p := startYAML(t, fmt.Sprintf(`app: shop
`+baseVars+strings.Replace(baseRun, "instances: 2", "instances: 3", 1)+`environments:
  production:
    listen: 127.0.0.1:%d
    sticky: {header: X-User-ID}
strategy:
  rolling: {max_surge: 1, bake: 1s}
analysis:
  interval: 500ms
  gates: [{metric: error_rate, max: 0.05}]
  min_requests: 20
smoke: [{path: /healthz}]
`, shopBin, freePort(t)))
	p.deploy(t, "v1", nil)
	load := p.load(t, 150)
	time.Sleep(time.Second)
	r := p.deploy(t, "v2", nil)
	load.Stop()
	if r.Phase != rollout.PhaseSucceeded {
		t.Fatalf("rolling ended %s: %s", r.Phase, r.Reason)
	}
	if fails := load.Failures(); len(fails) != 0 {
		t.Fatalf("%d requests failed during a healthy rolling update", len(fails))
	}
	st, _ := p.Engine.Status(context.Background(), "shop")
	if s := got(st); s.Stable != "v2" || len(s.Instances) != 3 {
		t.Fatalf("stable %s with %d instances, want v2 with 3", s.Stable, len(s.Instances))
	}
	p.onlyVersion(t, "v2", 10)
}

func TestE2E_InternalUsersFirstThenPercentages(t *testing.T) {
	p := startYAML(t, fmt.Sprintf(`app: shop
`+baseVars+baseRun+`environments:
  production:
    listen: 127.0.0.1:%d
    sticky: {header: X-User-ID}
strategy:
  canary:
    internal: {header: X-Internal, values: ["1"], users: [alice, bob], bake: 3s}
    steps: [{weight: 25, bake: 3s}, {weight: 50, bake: 3s}]
    scale_down_delay: 1s
analysis:
  interval: 500ms
  min_requests: 20
  gates: [{metric: error_rate, max: 0.05}]
smoke: [{path: /healthz}]
`, shopBin, freePort(t)))
	p.deploy(t, "v1", nil)
	// Background users give the percentage steps enough evidence to pass.
	p.load(t, 150)
	r, err := p.Engine.Deploy(context.Background(), rollout.DeployRequest{App: "shop", Version: "v2", Actor: "user:test"})
	if err != nil {
		t.Fatal(err)
	}
	p.waitStep(t, r.ID, rollout.StepInternal)
	url := p.router + "/products"
	for i := range 100 {
		if v, _ := get(t, url, map[string]string{"X-User-ID": fmt.Sprintf("user-%d", i)}); v != "v1" {
			t.Fatalf("public user-%d reached %s during the internal step", i, v)
		}
	}
	for _, h := range []map[string]string{{"X-Internal": "1"}, {"X-User-ID": "alice"}, {"X-User-ID": "bob", "X-Internal": "0"}} {
		if v, _ := get(t, url, h); v != "v2" {
			t.Fatalf("internal request %v reached %s, want v2", h, v)
		}
	}
	if v, _ := get(t, url, map[string]string{"X-Internal": "0", "X-User-ID": "carol"}); v != "v1" {
		t.Fatalf("X-Internal: 0 reached %s, want v1", v)
	}

	// From here every user keeps to one version, or moves to v2 once.
	users := make([]string, 300)
	for i := range users {
		users[i] = fmt.Sprintf("u-%d", i)
	}
	// The users are asked a few at a time, with a look at the rollout
	// between, so that on a busy machine one round over all of them cannot
	// outlast both percentage steps.
	users = append(users, "alice")
	seen := map[string][]string{}
	for next := 0; ; {
		cur, err := p.Engine.GetRollout(context.Background(), r.ID)
		if err != nil {
			t.Fatal(err)
		}
		if cur.Phase.Final() || !cur.PromotedAt.IsZero() {
			if cur.Phase == rollout.PhaseRolledBack {
				t.Fatalf("rolled back: %s", cur.Reason)
			}
			break
		}
		for range 20 {
			u := users[next%len(users)]
			next++
			v, _ := get(t, url, map[string]string{"X-User-ID": u})
			if h := seen[u]; len(h) == 0 || h[len(h)-1] != v {
				seen[u] = append(seen[u], v)
			}
		}
	}
	users = users[:len(users)-1]
	for u, h := range seen {
		if len(h) > 2 || (len(h) == 2 && (h[0] != "v1" || h[1] != "v2")) {
			t.Fatalf("user %s went %s", u, strings.Join(h, " -> "))
		}
	}
	if h := seen["alice"]; len(h) != 1 || h[0] != "v2" {
		t.Fatalf("internal user alice went %v, want v2 throughout", h)
	}
	var moved int
	for _, u := range users {
		if len(seen[u]) == 2 {
			moved++
		}
	}
	if moved == 0 {
		t.Fatal("no public user moved to v2 during the percentage steps")
	}
}

func TestE2E_GatesRefuseAndHotfixBypassesOnlyWhatItMay(t *testing.T) {
	p := startYAML(t, fmt.Sprintf(`app: shop
`+baseVars+baseRun+`pipeline: [staging, production]
environments:
  staging:
    listen: 127.0.0.1:%d
  production:
    listen: 127.0.0.1:%d
    vars: {REGION: eu}
    gates:
      checks: [unit]
      approval: true
      drift: {allow: [instances]}
hotfix: {skip: [drift, approval], bake_scale: 0.1}
strategy:
  canary: {steps: [{weight: 50, bake: 1s}], scale_down_delay: 1s}
analysis:
  interval: 500ms
  min_requests: 1
  gates: [{metric: error_rate, max: 0.5}]
smoke: [{path: /healthz}]
`, shopBin, freePort(t), freePort(t)))
	ctx := context.Background()
	deploy := func(version string, hotfix bool) error {
		req := rollout.DeployRequest{App: "shop", Env: "production", Version: version, Actor: "user:test", Hotfix: hotfix}
		if hotfix {
			req.Reason = "card payments down"
		}
		_, err := p.Engine.Deploy(ctx, req)
		return err
	}
	refusals := 0
	wantGate := func(err error, gate string) {
		t.Helper()
		var ge *rollout.GateError
		if !errors.As(err, &ge) || ge.Gate != gate {
			t.Fatalf("err = %v, want the %s gate to refuse", err, gate)
		}
		// Every refusal is on record, naming the gate and why.
		var got []audit.Event
		for _, e := range auditActions(t, p, "shop/production/v1") {
			if e.Action == audit.ActionGateRefuse {
				got = append(got, e)
			}
		}
		refusals++
		if len(got) != refusals || got[0].Data["gate"] != gate || got[0].Reason != ge.Message {
			t.Fatalf("after the %s gate refused: %d gate.refuse events (want %d), latest %+v", gate, len(got), refusals, got)
		}
	}
	if _, err := p.Engine.CreateRelease(ctx, rollout.ReleaseRequest{App: "shop", Version: "v1", Commit: "abc", Actor: "user:ci"}); err != nil {
		t.Fatal(err)
	}
	// Not in staging yet.
	wantGate(deploy("v1", false), "pipeline")
	// A hotfix may not skip the pipeline either: the rules do not say so.
	wantGate(deploy("v1", true), "pipeline")

	staged, err := p.Engine.Deploy(ctx, rollout.DeployRequest{App: "shop", Env: "staging", Version: "v1", Actor: "user:test"})
	if err != nil {
		t.Fatal(err)
	}
	if r := p.wait(t, staged.ID); r.Phase != rollout.PhaseSucceeded {
		t.Fatalf("staging: %s %s", r.Phase, r.Reason)
	}
	wantGate(deploy("v1", false), "checks")
	if _, err := p.Engine.CreateRelease(ctx, rollout.ReleaseRequest{App: "shop", Version: "v1", Commit: "abc",
		Checks: map[string]rollout.CheckState{"unit": rollout.CheckFailed}}); err != nil {
		t.Fatal(err)
	}
	wantGate(deploy("v1", false), "checks")
	wantGate(deploy("v1", true), "checks") // checks are not skippable
	if _, err := p.Engine.CreateRelease(ctx, rollout.ReleaseRequest{App: "shop", Version: "v1", Commit: "abc",
		Checks: map[string]rollout.CheckState{"unit": rollout.CheckPassed}}); err != nil {
		t.Fatal(err)
	}
	// production sets REGION, staging does not: drift.
	err = deploy("v1", false)
	wantGate(err, "drift")
	if !strings.Contains(err.Error(), "REGION") {
		t.Fatalf("drift error does not name the variable: %v", err)
	}
	rep, err := p.Engine.Drift(ctx, "shop", "production", "")
	if err != nil || rep.OK || rep.Against != "staging" {
		t.Fatalf("drift report = %+v, %v", rep, err)
	}

	// The hotfix skips drift and approval, and only those.
	r, err := p.Engine.Deploy(ctx, rollout.DeployRequest{App: "shop", Env: "production", Version: "v1", Actor: "user:oncall", Hotfix: true, Reason: "card payments down"})
	if err != nil {
		t.Fatalf("hotfix: %v", err)
	}
	if r = p.wait(t, r.ID); r.Phase != rollout.PhaseSucceeded {
		t.Fatalf("hotfix ended %s: %s", r.Phase, r.Reason)
	}
	if !slices.Equal(r.Bypassed, []string{"approval", "drift"}) {
		t.Fatalf("bypassed %v, want approval and drift", r.Bypassed)
	}
	var bypasses []string
	for _, e := range auditActions(t, p, "shop/production/v1") {
		if e.Action == audit.ActionGateBypass {
			if e.Actor != "user:oncall" || e.Reason != "card payments down" {
				t.Fatalf("bypass event %+v lacks actor or reason", e)
			}
			bypasses = append(bypasses, e.Data["gate"])
		}
	}
	slices.Sort(bypasses)
	if !slices.Equal(bypasses, []string{"approval", "drift"}) {
		t.Fatalf("audit shows bypasses %v, want approval and drift", bypasses)
	}
}

func TestE2E_ApprovalWaitsAndIsVoidedByAChangedRelease(t *testing.T) {
	p := startYAML(t, fmt.Sprintf(`app: shop
`+baseVars+baseRun+`environments:
  production:
    listen: 127.0.0.1:%d
    gates: {approval: true}
strategy:
  canary: {steps: [{weight: 50, bake: 1s}], scale_down_delay: 1s}
analysis: {interval: 500ms, min_requests: 1, gates: [{metric: error_rate, max: 0.5}]}
smoke: [{path: /healthz}]
`, shopBin, freePort(t)))
	ctx := context.Background()
	first, err := p.Engine.Deploy(ctx, rollout.DeployRequest{App: "shop", Version: "v1", Actor: "user:test"})
	if err != nil {
		t.Fatal(err)
	}
	p.waitStep(t, first.ID, rollout.StepApproval)
	time.Sleep(300 * time.Millisecond)
	if v, code := get(t, p.router+"/products", nil); code != http.StatusServiceUnavailable {
		t.Fatalf("before approval the router answered %d from %q, want 503: nothing is live", code, v)
	}
	if _, err := p.Engine.Approve(ctx, rollout.ApproveRequest{App: "shop", Actor: "user:alice"}); err != nil {
		t.Fatal(err)
	}
	if r := p.wait(t, first.ID); r.Phase != rollout.PhaseSucceeded {
		t.Fatalf("v1: %s %s", r.Phase, r.Reason)
	}
	p.load(t, 50)

	// v2 is approved, then CI changes its checks: the approval is void.
	if _, err := p.Engine.CreateRelease(ctx, rollout.ReleaseRequest{App: "shop", Version: "v2", Commit: "c2",
		Checks: map[string]rollout.CheckState{"e2e": rollout.CheckPassed}}); err != nil {
		t.Fatal(err)
	}
	r, err := p.Engine.Deploy(ctx, rollout.DeployRequest{App: "shop", Version: "v2", Actor: "user:test"})
	if err != nil {
		t.Fatal(err)
	}
	p.waitStep(t, r.ID, rollout.StepApproval)
	if _, err := p.Engine.Approve(ctx, rollout.ApproveRequest{App: "shop", Actor: "user:alice"}); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Engine.CreateRelease(ctx, rollout.ReleaseRequest{App: "shop", Version: "v2", Commit: "c2",
		Checks: map[string]rollout.CheckState{"e2e": rollout.CheckFailed}}); err != nil {
		t.Fatal(err)
	}
	r = p.wait(t, r.ID)
	if r.Phase != rollout.PhaseRolledBack || !strings.Contains(r.Reason, "void") {
		t.Fatalf("v2 ended %s (%s), want rolled back because the approval is void", r.Phase, r.Reason)
	}
	if _, ok := hasAction(auditActions(t, p, "shop/production/v2"), audit.ActionApprovalVoid); !ok {
		t.Fatal("no approval.void event in the audit log")
	}
}

func TestE2E_DrillPassesAndFailsWhenThePreviousReleaseCannotStart(t *testing.T) {
	bin := t.TempDir()
	for _, v := range []string{"v1", "v2", "v3"} {
		b, err := os.ReadFile(shopBin)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(bin, "shop-"+v), b, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	p := startYAML(t, fmt.Sprintf(`app: shop
vars: {MERCHANT_ID: "m-1"}
run:
  command: ["%s/shop-${VERSION}", "--port", "${PORT}", "--version", "${VERSION}", "--latency", "5ms"]
  env: {MERCHANT_ID: "${MERCHANT_ID}"}
  health: {path: /healthz, interval: 200ms, timeout: 1s}
  start_timeout: 4s
  stop_grace: 5s
pipeline: [staging, production]
environments:
  staging:
    listen: 127.0.0.1:%d
  production:
    listen: 127.0.0.1:%d
    gates: {drill_within: 1h}
strategy:
  canary: {steps: [{weight: 50, bake: 1s}], scale_down_delay: 1s}
analysis: {interval: 500ms, min_requests: 1, gates: [{metric: error_rate, max: 0.5}]}
smoke: [{path: /healthz}]
`, bin, freePort(t), freePort(t)))
	ctx := context.Background()
	stage := func(version string) {
		r, err := p.Engine.Deploy(ctx, rollout.DeployRequest{App: "shop", Env: "staging", Version: version, Actor: "user:test"})
		if err != nil {
			t.Fatal(err)
		}
		if r = p.wait(t, r.ID); r.Phase != rollout.PhaseSucceeded {
			t.Fatalf("staging %s: %s %s", version, r.Phase, r.Reason)
		}
	}
	stage("v1")
	p.loadOn(t, "staging", 50)
	stage("v2")
	// Production needs a drill first.
	_, err := p.Engine.Deploy(ctx, rollout.DeployRequest{App: "shop", Env: "production", Version: "v2", Actor: "user:test"})
	var ge *rollout.GateError
	if !errors.As(err, &ge) || ge.Gate != "drill" {
		t.Fatalf("production before any drill: %v, want the drill gate", err)
	}

	d, err := p.Engine.Drill(ctx, rollout.DrillRequest{App: "shop", Env: "staging", Actor: "user:sre"})
	if err != nil {
		t.Fatal(err)
	}
	if d = p.wait(t, d.ID); d.Phase != rollout.PhaseSucceeded {
		t.Fatalf("drill ended %s: %s", d.Phase, d.Reason)
	}
	st, _ := p.Engine.Status(ctx, "shop")
	for _, e := range st.Envs {
		if e.Env == "staging" && (e.State.Stable != "v2" || e.State.Previous != "v1") {
			t.Fatalf("after the drill staging runs %s (previous %s), want v2 (previous v1)", e.State.Stable, e.State.Previous)
		}
	}
	ev, ok := hasAction(auditActions(t, p, "shop/staging/v1"), audit.ActionDrill)
	if !ok || ev.Outcome != "ok" {
		t.Fatalf("drill audit event = %+v, want outcome ok", ev)
	}
	prod, err := p.Engine.Deploy(ctx, rollout.DeployRequest{App: "shop", Env: "production", Version: "v2", Actor: "user:test"})
	if err != nil {
		t.Fatalf("production after a good drill: %v", err)
	}
	if r := p.wait(t, prod.ID); r.Phase != rollout.PhaseSucceeded {
		t.Fatalf("production v2: %s %s", r.Phase, r.Reason)
	}

	// The previous release can no longer start: its binary is gone.
	stage("v3")
	if err := os.Remove(filepath.Join(bin, "shop-v2")); err != nil {
		t.Fatal(err)
	}
	d, err = p.Engine.Drill(ctx, rollout.DrillRequest{App: "shop", Env: "staging", Actor: "user:sre"})
	if err != nil {
		t.Fatal(err)
	}
	d = p.wait(t, d.ID)
	if d.Phase != rollout.PhaseRolledBack || !strings.Contains(d.Reason, "did not start") {
		t.Fatalf("drill ended %s (%s), want failed because v2 cannot start", d.Phase, d.Reason)
	}
	ev, ok = hasAction(auditActions(t, p, "shop/staging/v2"), audit.ActionDrill)
	if !ok || ev.Outcome != "failed" || !strings.Contains(ev.Reason, "did not start") {
		t.Fatalf("failed drill audit event = %+v", ev)
	}
	if v, _ := get(t, fmt.Sprintf("http://%s/products", p.Config.Environments["staging"].Listen), nil); v != "v3" {
		t.Fatalf("after the failed drill staging is served by %q, want v3", v)
	}
}

func TestE2E_CanaryInstanceKilledMidBakeRollsBack(t *testing.T) {
	p := startPlane(t, tenPercent)
	p.deploy(t, "v1", nil)
	load := p.load(t, 120)
	time.Sleep(time.Second)
	r, err := p.Engine.Deploy(context.Background(), rollout.DeployRequest{App: "shop", Version: "v2", Actor: "user:test"})
	if err != nil {
		t.Fatal(err)
	}
	r = p.waitStep(t, r.ID, rollout.StepWeight)
	time.Sleep(time.Second)
	victim := r.New[0]
	if err := syscall.Kill(victim.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killedAt := time.Now()
	r = p.wait(t, r.ID)
	load.Stop()
	if r.Phase != rollout.PhaseRolledBack || !strings.Contains(r.Reason, victim.ID) {
		t.Fatalf("ended %s (%s), want rolled back naming %s", r.Phase, r.Reason, victim.ID)
	}
	if took := r.TrafficRestoredAt.Sub(killedAt); took > 3*time.Second {
		t.Fatalf("traffic back on stable %s after the kill", took)
	}
	// Requests in flight on the killed instance, and those routed to it
	// before the rollback, fail: at 120 req/s, 10%% canary, half of it on
	// the victim, over at most ~1s until detection: about 6.
	if n := load.Counts()["v2"].Failed; n > 20 {
		t.Fatalf("%d requests failed on the killed canary", n)
	}
	p.onlyVersion(t, "v1", 10)
}

func TestServer_SecondServerOnTheSameDataRefuses(t *testing.T) {
	p := startPlane(t, quickSteps)
	_, err := server.Start(context.Background(), server.Options{Config: p.Config, DataDir: p.dataDir, Listen: "127.0.0.1:0"})
	if !errors.Is(err, server.ErrLocked) || !strings.Contains(err.Error(), fmt.Sprint(os.Getpid())) {
		t.Fatalf("second server: %v, want ErrLocked naming pid %d", err, os.Getpid())
	}
}
