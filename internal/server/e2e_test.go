package server_test

// End-to-end tests of the walking skeleton: a real control plane (SQLite
// store, builtin router, local processes) deploying the real example shop
// binary under real HTTP load. Nothing here is faked.

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shipgate/shipgate/internal/audit"
	"github.com/shipgate/shipgate/internal/config"
	"github.com/shipgate/shipgate/internal/demo"
	"github.com/shipgate/shipgate/internal/pgtest"
	"github.com/shipgate/shipgate/internal/rollout"
	"github.com/shipgate/shipgate/internal/server"
)

var shopBin, shipgateBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "shipgate-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	shopBin = filepath.Join(dir, "shop")
	shipgateBin = filepath.Join(dir, "shipgate")
	for bin, pkg := range map[string]string{shopBin: "../../examples/shop", shipgateBin: "../../cmd/shipgate"} {
		out, err := exec.Command("go", "build", "-o", bin, pkg).CombinedOutput()
		if err != nil {
			fmt.Fprintf(os.Stderr, "build %s: %v\n%s", pkg, err, out)
			os.Exit(1)
		}
	}
	code := pgtest.Main(m)
	os.RemoveAll(dir)
	os.Exit(code)
}

// testConfig is a shipgate.yaml with short bakes and a fast analysis
// interval, so that a rollout takes seconds instead of the better part of
// an hour.
const testConfig = `app: shop
vars: {PAY_FAIL_RATE: "0", LATENCY: "20ms", MERCHANT_ID: "m-1", FAIL_HEALTH: "false"}
run:
  command: [%q, "--port", "${PORT}", "--version", "${VERSION}", "--pay-fail-rate", "${PAY_FAIL_RATE}", "--latency", "${LATENCY}", "--fail-health=${FAIL_HEALTH}"]
  env: {MERCHANT_ID: "${MERCHANT_ID}"}
  instances: 2
  health: {path: /healthz, interval: 200ms, timeout: 1s}
  start_timeout: 4s
  stop_grace: 5s
environments:
  production:
    listen: 127.0.0.1:%d
    sticky: {header: X-User-ID}
strategy:
  canary:
    steps: %s
    scale_down_delay: 1s
analysis:
  interval: 500ms
  min_requests: 50
  gates:
    - {metric: error_rate, max: 0.02}
    - {metric: latency_p99, max_ratio_to_stable: 2}
  on_inconclusive: extend # a busy machine makes a healthy bake longer, not paused
smoke: [{path: /healthz}, {path: /products}]
`

type plane struct {
	*server.ControlPlane
	router  string
	dataDir string
	logs    *syncBuffer
}

// syncBuffer collects the server's logs.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Steps for the tests. A gate passes only on evidence: a p99 within 2x
// stable needs about 300 canary requests at 95% confidence, so the bakes
// and rates below give each step that many requests in time.
const (
	quickSteps = "[{weight: 20, bake: 5s}, {weight: 50, bake: 3s}]"
	// tenPercent holds the canary at 10% long enough to be caught there.
	tenPercent = "[{weight: 10, bake: 20s}, {weight: 50, bake: 20s}]"
)

func startPlane(t *testing.T, steps string) *plane {
	t.Helper()
	return startYAML(t, fmt.Sprintf(testConfig, shopBin, freePort(t), steps))
}

// freePort returns a loopback port that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	handedOut.Lock()
	defer handedOut.Unlock()
	for {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		// The port is free again once closed: the kernel may pick it
		// for the next call, before whoever got it binds it.
		if !handedOut.ports[port] {
			handedOut.ports[port] = true
			return port
		}
	}
}

// handedOut holds the ports freePort returned, so that it never returns
// one twice.
var handedOut = struct {
	sync.Mutex
	ports map[int]bool
}{ports: map[int]bool{}}

// startYAML starts a control plane from a shipgate.yaml.
func startYAML(t *testing.T, yaml string) *plane {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "shipgate.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	cp, err := server.Start(context.Background(), server.Options{
		Config: cfg, DataDir: filepath.Join(dir, "data"), Listen: "127.0.0.1:0", Tick: 50 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := cp.StopInstances(ctx); err != nil {
			t.Errorf("stop instances: %v", err)
		}
		_ = cp.Close(ctx)
	})
	p := &plane{ControlPlane: cp, dataDir: filepath.Join(dir, "data"), logs: logs}
	if _, ok := cfg.Environments["production"]; ok {
		p.router = "http://" + cp.Routers["production"].Addr()
	}
	return p
}

// deploy deploys a version and waits for its rollout to end.
func (p *plane) deploy(t *testing.T, version string, vars map[string]string) rollout.Rollout {
	t.Helper()
	r, err := p.Engine.Deploy(context.Background(), rollout.DeployRequest{App: "shop", Version: version, Vars: vars, Actor: "user:test"})
	if err != nil {
		t.Fatalf("deploy %s: %v", version, err)
	}
	return p.wait(t, r.ID)
}

func (p *plane) wait(t *testing.T, id int64) rollout.Rollout {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for time.Now().Before(deadline) {
		r, err := p.Engine.GetRollout(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if r.Phase.Final() {
			return r
		}
		time.Sleep(100 * time.Millisecond)
	}
	r, _ := p.Engine.GetRollout(context.Background(), id)
	t.Fatalf("rollout %d did not end in 90s: step %d paused %q analysis %+v", id, r.StepIndex, r.Paused, r.Analysis)
	return rollout.Rollout{}
}

func (p *plane) load(t *testing.T, rate int) *demo.Load {
	t.Helper()
	l := &demo.Load{URL: p.router, Rate: rate}
	l.Start(context.Background())
	t.Cleanup(l.Stop)
	return l
}

// onlyVersion sends n requests and fails unless all were answered by version.
func (p *plane) onlyVersion(t *testing.T, version string, n int) {
	t.Helper()
	for i := range n {
		req, _ := http.NewRequest(http.MethodGet, p.router+"/products", nil)
		req.Header.Set("X-User-ID", fmt.Sprintf("check-%d", i))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if got := resp.Header.Get(demo.VersionHeader); got != version || resp.StatusCode != 200 {
			t.Fatalf("request %d answered by %q with %d, want %s with 200", i, got, resp.StatusCode, version)
		}
	}
}

func auditActions(t *testing.T, p *plane, subject string) []audit.Event {
	t.Helper()
	events, err := p.Engine.Audit(context.Background(), audit.Filter{Subject: subject, Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	return events
}

func hasAction(events []audit.Event, action string) (audit.Event, bool) {
	for _, e := range events {
		if e.Action == action {
			return e, true
		}
	}
	return audit.Event{}, false
}

func TestE2E_HealthyCanaryUnderLoad(t *testing.T) {
	p := startPlane(t, quickSteps)
	if r := p.deploy(t, "v1", nil); r.Phase != rollout.PhaseSucceeded {
		t.Fatalf("v1: %s: %s", r.Phase, r.Reason)
	}
	load := p.load(t, 200)
	time.Sleep(time.Second)
	r := p.deploy(t, "v2", nil)
	if r.Phase != rollout.PhaseSucceeded {
		t.Fatalf("v2 ended %s: %s", r.Phase, r.Reason)
	}
	time.Sleep(500 * time.Millisecond)
	load.Stop()

	if fails := load.Failures(); len(fails) != 0 {
		t.Fatalf("%d user requests failed during a healthy rollout, first: %+v", len(fails), fails[0])
	}
	counts := load.Counts()
	if counts["v2"].Served == 0 || counts["v1"].Served == 0 {
		t.Fatalf("counts = %+v, want both versions to have served", counts)
	}
	elapsed := r.FinishedAt.Sub(r.CreatedAt).Seconds()
	if rate := float64(load.Total()) / (elapsed + 1.5); rate < 100 {
		t.Errorf("load was %.0f requests/s, want at least 100", rate)
	}
	// Every canary weight was entered and baked, then the promotion.
	events := auditActions(t, p, "shop/production/v2")
	var steps []string
	for i := len(events) - 1; i >= 0; i-- {
		if events[i].Action == audit.ActionStep {
			steps = append(steps, events[i].Reason)
		}
	}
	want := []string{"smoke", "weight 20% for 5s", "weight 50% for 3s", "promote", "scale down old release after 1s"}
	if got := strings.Join(steps, ", "); got != strings.Join(want, ", ") {
		t.Fatalf("steps = %s\nwant    %s", got, strings.Join(want, ", "))
	}
	if _, ok := hasAction(events, audit.ActionPromote); !ok {
		t.Fatal("no promotion in the audit log")
	}
	p.onlyVersion(t, "v2", 20)
}

func TestE2E_FailingPaymentsRolledBackAutomatically(t *testing.T) {
	p := startPlane(t, tenPercent)
	p.deploy(t, "v1", nil)
	const rate = 120
	load := p.load(t, rate)
	time.Sleep(time.Second)
	r := p.deploy(t, "v3", map[string]string{"PAY_FAIL_RATE": "0.4"})
	load.Stop()

	if r.Phase != rollout.PhaseRolledBack {
		t.Fatalf("v3 ended %s, want rolled back: %s", r.Phase, r.Reason)
	}
	if !strings.Contains(r.Reason, "error_rate") {
		t.Fatalf("reason = %q, want the error_rate gate", r.Reason)
	}
	toStable := r.TrafficRestoredAt.Sub(r.FirstTrafficAt)
	if toStable > 10*time.Second || toStable <= 0 {
		t.Fatalf("traffic back on stable %s after the canary's first request, want within 10s", toStable)
	}
	// As users saw it: no v3 answer started after the restore (allow the
	// requests that were in flight at the switch).
	var firstV3, lastV3 time.Time
	for _, f := range load.Failures() {
		if f.Version == "v3" {
			if firstV3.IsZero() {
				firstV3 = f.At
			}
			lastV3 = f.At
		}
	}
	if !lastV3.IsZero() && lastV3.After(r.TrafficRestoredAt.Add(500*time.Millisecond)) {
		t.Fatalf("v3 failed a user request at %s, after traffic was restored at %s", lastV3, r.TrafficRestoredAt)
	}
	// The bound on failed user requests: at R = 120 requests/s, weight
	// w = 10%, payments being 30% of requests and failing 40% of the time,
	// v3 fails R·w·0.3·0.4 = 1.44 requests per second of exposure. Exposure
	// is at most 10 s (asserted above), so 14.4 failures are expected at
	// worst; 25 is that plus 2.7 standard deviations of Poisson noise.
	failed := load.Counts()["v3"].Failed
	if failed > 25 {
		t.Fatalf("v3 failed %d user requests, bound is 25", failed)
	}
	if failed == 0 {
		t.Fatal("v3 failed no user request: the canary never got traffic, so this test proved nothing")
	}
	t.Logf("v3: %d failed user requests, traffic on stable %.2fs after its first request", failed, toStable.Seconds())

	ev, ok := hasAction(auditActions(t, p, "shop/production/v3"), audit.ActionRollbackAuto)
	if !ok {
		t.Fatal("no automatic rollback in the audit log")
	}
	if ev.Data["gate"] == "" || ev.Data["value"] == "" || ev.Data["threshold"] != "0.02" {
		t.Fatalf("rollback event data = %v, want gate, value and threshold 0.02", ev.Data)
	}
	p.onlyVersion(t, "v1", 20)
	st, err := p.Engine.Status(context.Background(), "shop")
	if err != nil {
		t.Fatal(err)
	}
	if got := st.Envs[0].State.Stable; got != "v1" {
		t.Fatalf("stable = %s, want v1", got)
	}
}

func TestE2E_SlowCanaryRolledBackByLatencyGate(t *testing.T) {
	p := startPlane(t, tenPercent)
	p.deploy(t, "v1", nil)
	load := p.load(t, 150)
	time.Sleep(2 * time.Second)
	r := p.deploy(t, "v2-slow", map[string]string{"LATENCY": "120ms"})
	load.Stop()
	if r.Phase != rollout.PhaseRolledBack {
		t.Fatalf("slow release ended %s, want rolled back: %s", r.Phase, r.Reason)
	}
	if !strings.Contains(r.Reason, "latency_p99") {
		t.Fatalf("reason = %q, want the latency_p99 gate", r.Reason)
	}
	if fails := load.Failures(); len(fails) != 0 {
		t.Fatalf("%d requests failed; a slow release fails none", len(fails))
	}
	p.onlyVersion(t, "v1", 10)
}

func TestE2E_ReleaseThatCannotStartGetsNoTraffic(t *testing.T) {
	tests := []struct {
		name       string
		vars       map[string]string
		wantReason string
	}{
		{"missing variable", map[string]string{"MERCHANT_ID": ""}, "exit"},
		{"failing health", map[string]string{"FAIL_HEALTH": "true"}, "health"},
	}
	p := startPlane(t, quickSteps)
	p.deploy(t, "v1", nil)
	load := p.load(t, 100)
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			version := fmt.Sprintf("bad%d", i)
			r := p.deploy(t, version, tt.vars)
			if r.Phase != rollout.PhaseRolledBack {
				t.Fatalf("ended %s, want rolled back", r.Phase)
			}
			if !strings.Contains(strings.ToLower(r.Reason), tt.wantReason) {
				t.Fatalf("reason = %q, want it to mention %q", r.Reason, tt.wantReason)
			}
			if !r.FirstTrafficAt.IsZero() || r.Weight != 0 {
				t.Fatalf("the release got traffic: first at %s, weight %d", r.FirstTrafficAt, r.Weight)
			}
			if got := load.Counts()[version].Served; got != 0 {
				t.Fatalf("%s answered %d user requests, want none", version, got)
			}
		})
	}
	load.Stop()
	if fails := load.Failures(); len(fails) != 0 {
		t.Fatalf("%d user requests failed, want none: %+v", len(fails), fails[0])
	}
}

func TestE2E_ManualRollbackAfterPromotion(t *testing.T) {
	p := startPlane(t, quickSteps)
	p.deploy(t, "v1", nil)
	load := p.load(t, 200)
	time.Sleep(time.Second)
	if r := p.deploy(t, "v2", nil); r.Phase != rollout.PhaseSucceeded {
		t.Fatalf("v2 ended %s: %s", r.Phase, r.Reason)
	}
	rb, err := p.Engine.Rollback(context.Background(), rollout.RollbackRequest{App: "shop", Reason: "customers report wrong totals", Actor: "user:alice"})
	if err != nil {
		t.Fatal(err)
	}
	rb = p.wait(t, rb.ID)
	time.Sleep(500 * time.Millisecond)
	load.Stop()
	if rb.Phase != rollout.PhaseSucceeded || rb.Version != "v1" || rb.Kind != rollout.KindRollback {
		t.Fatalf("rollback = %s %s %s, want a succeeded rollback to v1: %s", rb.Kind, rb.Version, rb.Phase, rb.Reason)
	}
	if fails := load.Failures(); len(fails) != 0 {
		t.Fatalf("%d user requests failed during promotion and rollback, first: %+v", len(fails), fails[0])
	}
	p.onlyVersion(t, "v1", 20)
	ev, ok := hasAction(auditActions(t, p, "shop/production/v1"), audit.ActionRollbackManual)
	if !ok {
		t.Fatal("no manual rollback in the audit log")
	}
	if ev.Actor != "user:alice" || ev.Reason != "customers report wrong totals" {
		t.Fatalf("audit event = %s %q, want user:alice with the reason", ev.Actor, ev.Reason)
	}
}
