package rollout_test

// The harness runs real rollouts on virtual time: the real SQLite store
// (internal/sqlite), the builtin router used in-process (internal/proxy),
// the real process runtime (internal/process) starting the example shop,
// and the real smoke prober. Only time is fake (clocktest.Fake): bakes of
// minutes pass as the harness steps the clock, sending real requests
// through the router before each step so that the analysis has evidence.
//
// The migrate step runs the server's own runner (internal/migrate/releases)
// against a SQLite database in the test's directory.
//
// A "crash" is simulated by a life: every port the engine gets (store,
// router, runtime) goes through a gate that, once the life has ended,
// refuses every call without acting, as a process that died at that line
// would. A new Engine on the same store, router and runtime then resumes.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shipgate/shipgate/internal/analysis"
	"github.com/shipgate/shipgate/internal/audit"
	"github.com/shipgate/shipgate/internal/clock/clocktest"
	"github.com/shipgate/shipgate/internal/config"
	"github.com/shipgate/shipgate/internal/kubetest"
	"github.com/shipgate/shipgate/internal/migrate/releases"
	"github.com/shipgate/shipgate/internal/plan"
	"github.com/shipgate/shipgate/internal/process"
	"github.com/shipgate/shipgate/internal/proxy"
	"github.com/shipgate/shipgate/internal/rollout"
	"github.com/shipgate/shipgate/internal/smoke"
	"github.com/shipgate/shipgate/internal/sqlite"
)

// shopBin is the example shop, built once for all tests.
var shopBin string

func TestMain(m *testing.M) {
	os.Exit(buildAndRun(m))
}

func buildAndRun(m *testing.M) int {
	dir, err := os.MkdirTemp("", "rollout-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	shopBin = filepath.Join(dir, "shop")
	if out, err := exec.Command("go", "build", "-o", shopBin, "../../examples/shop").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "go build shop: %v\n%s", err, out)
		return 1
	}
	// The package's Kubernetes tests share one cluster (kubetest), started
	// by the first that needs it and stopped after the last.
	return kubetest.Main(m)
}

// errCrashed is what every port answers once its engine's life ended.
var errCrashed = errors.New("the engine crashed")

// life is one engine's time alive. Its gates act only while it lasts.
type life struct {
	dead atomic.Bool
	// crashAt, when set, is asked before each commit of a rollout; it
	// answers whether the engine dies before the commit lands, after it
	// lands, or not at all.
	crashAt func(c rollout.Change) crashPoint
	// afterCommit, when set, is called after each commit of a rollout
	// landed, before the engine hears of it; onGetRollout before each
	// read of a rollout.
	afterCommit  atomic.Pointer[func(c rollout.Change)]
	onGetRollout atomic.Pointer[func(id int64)]
	crashed      chan struct{}
	once         sync.Once
}

type crashPoint int

const (
	noCrash crashPoint = iota
	crashBefore
	crashAfter
)

func (l *life) die() {
	l.dead.Store(true)
	l.once.Do(func() { close(l.crashed) })
}

// harness is one environment "production" of the app shop, with its
// store, router and runtime, and the engine of the current life.
type harness struct {
	t      *testing.T
	dir    string
	cfg    *config.Config
	store  *sqlite.Store
	router *proxy.Proxy
	rt     *process.Runtime
	clk    *clocktest.Fake
	tick   time.Duration
	client *http.Client

	eng *rollout.Engine
	// verify, when set, answers VerifyRoutes before the router does: an
	// asynchronous data plane still converging.
	verify atomic.Pointer[func(rollout.Routes) error]
	life   *life

	mu     sync.Mutex
	events []string // what the router and the runtime did, in order
	// traffic is the number of requests sent through the router before
	// each step of the clock.
	traffic int
	path    string
	// approver, when set, approves every rollout that waits for approval.
	approver  string
	approving atomic.Bool
	sent      atomic.Int64
	failed    atomic.Int64 // requests the router answered 502 (a stopped backend)
}

// shipgateYAML is the harness's config; %s are the shop binary, the
// router address, extra YAML of the environment, then extra top-level
// YAML.
const shipgateYAML = `
app: shop
vars:
  FAIL_RATE: "0"
  LATENCY: "0s"
run:
  command: [%q]
  env:
    PORT: "${PORT}"
    SHOP_VERSION: "${VERSION}"
    SHOP_PAY_FAIL_RATE: "${FAIL_RATE}"
    SHOP_LATENCY: "${LATENCY}"
    MERCHANT_ID: m-1
  instances: 1
  stop_grace: 2s
  start_timeout: 20s
environments:
  production:
    listen: %q
%s
analysis:
  interval: 5s
  min_requests: 20
  gates:
    - metric: error_rate
      max: 10%%
%s`

func newHarness(t *testing.T, extra string) *harness {
	return newHarnessEnv(t, "", extra)
}

// newHarnessEnv is newHarness with extra YAML for the environment, each
// line indented by four spaces.
func newHarnessEnv(t *testing.T, envExtra, extra string) *harness {
	t.Helper()
	dir := t.TempDir()
	listen := freeAddr(t)
	cfg, err := config.Parse(filepath.Join(dir, "shipgate.yaml"), fmt.Appendf(nil, shipgateYAML, shopBin, listen, envExtra, extra))
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	ctx := context.Background()
	store, err := sqlite.Open(ctx, filepath.Join(dir, "shipgate.db"))
	if err != nil {
		t.Fatal(err)
	}
	clk := clocktest.New(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
	h := &harness{
		t: t, dir: dir, cfg: cfg, store: store, tick: time.Second, traffic: 10, path: "/pay",
		clk:    clk,
		rt:     process.New(process.Config{DataDir: dir}),
		router: proxy.New(proxy.Config{Env: "production", Listen: listen, Logger: slog.New(slog.DiscardHandler), Now: clk.Now}),
		client: &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 16}},
	}
	if err := h.router.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if h.eng != nil {
			h.eng.Close()
		}
		if insts, err := h.rt.List(context.Background()); err == nil {
			_ = h.rt.Stop(context.Background(), insts)
		}
		h.rt.Close()
		_ = h.router.Shutdown(context.Background())
		_ = h.store.Close()
	})
	h.start()
	return h
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// start begins a new life: a new Engine on the same store, router and
// runtime, started (so it resumes what the last one left).
func (h *harness) start() {
	h.t.Helper()
	h.life = &life{crashed: make(chan struct{})}
	l := h.life
	router := &gatedRouter{p: h.router, l: l, h: h}
	eng, err := rollout.New(rollout.Options{
		Specs: plan.New(h.cfg), Store: &gatedStore{Store: h.store, l: l},
		Environments: environments{env: rollout.Environment{
			Runtime: &gatedRuntime{rt: h.rt, l: l, h: h},
			Router:  router, Metrics: router, Drainer: router, Prober: smoke.New(),
		}},
		Migrations: releases.New(releases.Options{}),
		Clock:      h.clk, Tick: h.tick,
		// Drains end in real time, while the harness steps virtual time
		// fast: a virtual bound must not cut them short.
		DrainTimeout: 24 * time.Hour,
	})
	if err != nil {
		h.t.Fatal(err)
	}
	h.eng = eng
	if err := eng.Start(context.Background()); err != nil {
		h.t.Fatalf("start engine: %v", err)
	}
}

// crash ends the current life as if the server died, and waits for its
// drivers to return.
func (h *harness) crash() {
	h.life.die()
	h.eng.Close()
	h.eng = nil
}

func (h *harness) record(format string, args ...any) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.events = append(h.events, fmt.Sprintf(format, args...))
}

func (h *harness) log() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.events)
}

// deploy asks for version with vars; it fails the test if refused.
func (h *harness) deploy(version string, vars map[string]string) rollout.Rollout {
	h.t.Helper()
	r, err := h.eng.Deploy(context.Background(), rollout.DeployRequest{App: "shop", Env: "production", Version: version, Vars: vars, Actor: "alice"})
	if err != nil {
		h.t.Fatalf("deploy %s: %v", version, err)
	}
	return r
}

// rollout reads a rollout from the store.
func (h *harness) rollout(id int64) rollout.Rollout {
	h.t.Helper()
	r, err := h.store.GetRollout(context.Background(), id)
	if err != nil {
		h.t.Fatal(err)
	}
	return r
}

// until steps virtual time (sending traffic before each step) until cond
// holds, failing the test after limit of virtual time or a minute of real
// time.
func (h *harness) until(what string, limit time.Duration, cond func() bool) {
	h.t.Helper()
	end := h.clk.Now().Add(limit)
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if h.approver != "" {
			h.maybeApprove()
		}
		if h.clk.Now().After(end) || time.Now().After(deadline) {
			h.t.Fatalf("%s: not after %s of virtual time (events: %s)", what, limit, strings.Join(h.log(), "; "))
		}
		if h.clk.HasWaiters() {
			h.send(h.traffic)
			h.clk.Step(h.tick)
			time.Sleep(time.Millisecond) // let the engine take the tick
			continue
		}
		time.Sleep(2 * time.Millisecond) // the engine is busy in real time (starting, probing)
	}
}

// maybeApprove approves, in the background, a rollout waiting for it.
func (h *harness) maybeApprove() {
	if h.eng == nil || h.approving.Load() {
		return
	}
	active, err := h.store.ActiveRollouts(context.Background())
	if err != nil || len(active) == 0 {
		return
	}
	r := active[0]
	if r.Phase != rollout.PhaseRunning || r.StepIndex >= len(r.Steps) || r.Steps[r.StepIndex].Kind != rollout.StepApproval || r.Approval != nil {
		return
	}
	h.approving.Store(true)
	eng := h.eng
	go func() {
		defer h.approving.Store(false)
		_, _ = eng.Approve(context.Background(), rollout.ApproveRequest{App: "shop", Env: "production", Actor: h.approver})
	}()
}

// final steps time until rollout id is final and returns it.
func (h *harness) final(id int64) rollout.Rollout {
	h.t.Helper()
	var r rollout.Rollout
	h.until(fmt.Sprintf("rollout %d final", id), 2*time.Hour, func() bool {
		r = h.rollout(id)
		return r.Phase.Final()
	})
	return r
}

// send sends n requests through the router.
func (h *harness) send(n int) {
	for range n {
		resp, err := h.client.Get("http://" + h.router.Addr() + h.path)
		h.sent.Add(1)
		if err != nil {
			h.failed.Add(1)
			continue
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusBadGateway {
			h.failed.Add(1)
		}
	}
}

// envState returns what the store says is live, or the zero state.
func (h *harness) envState() rollout.EnvState {
	st, err := h.store.GetEnvState(context.Background(), "shop", "production")
	if err != nil && !errors.Is(err, rollout.ErrNotFound) {
		h.t.Fatal(err)
	}
	return st
}

// running returns the running instances of the app by version.
func (h *harness) running() map[string]int {
	insts, err := h.rt.List(context.Background())
	if err != nil {
		h.t.Fatal(err)
	}
	out := map[string]int{}
	for _, inst := range insts {
		if h.rt.Status(context.Background(), inst).State == rollout.InstanceRunning || h.rt.Status(context.Background(), inst).State == rollout.InstanceUnknown {
			out[inst.Version]++
		}
	}
	return out
}

// checkServing fails the test unless the router sends every user to
// running instances of version.
func (h *harness) checkServing(version string) {
	h.t.Helper()
	rt := h.router.Routes()
	if rt.Stable.Version != version || rt.Canary.Version != "" || rt.Weight != 0 {
		h.t.Fatalf("routes = stable %s %v, canary %s %v at %d%%; want all on %s", rt.Stable.Version, rt.Stable.Addrs, rt.Canary.Version, rt.Canary.Addrs, rt.Weight, version)
	}
	for i := range 5 {
		resp, err := h.client.Get("http://" + h.router.Addr() + "/version")
		if err != nil {
			h.t.Fatalf("request %d through the router: %v", i, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), version) {
			h.t.Fatalf("request %d through the router: %d %q, want 200 from %s", i, resp.StatusCode, body, version)
		}
	}
}

// deployV1 makes v1 the stable release.
func (h *harness) deployV1() {
	h.t.Helper()
	r := h.deploy("v1", nil)
	if r = h.final(r.ID); r.Phase != rollout.PhaseSucceeded {
		h.t.Fatalf("first deploy of v1: %s (%s)", r.Phase, r.Reason)
	}
	h.mu.Lock()
	h.events = nil
	h.mu.Unlock()
}

// gatedStore is the store as one life of the engine sees it.
type gatedStore struct {
	*sqlite.Store
	l *life
}

var (
	_ rollout.Store   = (*gatedStore)(nil)
	_ rollout.Drainer = (*gatedRouter)(nil)
)

func (s *gatedStore) Commit(ctx context.Context, c rollout.Change) error {
	if s.l.dead.Load() {
		return errCrashed
	}
	point := noCrash
	if s.l.crashAt != nil && c.Rollout != nil {
		point = s.l.crashAt(c)
	}
	if point == crashBefore {
		s.l.die()
		return errCrashed
	}
	err := s.Store.Commit(ctx, c)
	if point == crashAfter {
		s.l.die()
	}
	if f := s.l.afterCommit.Load(); f != nil && err == nil && c.Rollout != nil {
		(*f)(c)
	}
	return err
}

func (s *gatedStore) GetRollout(ctx context.Context, id int64) (rollout.Rollout, error) {
	if f := s.l.onGetRollout.Load(); f != nil {
		(*f)(id)
	}
	return s.Store.GetRollout(ctx, id)
}

func (s *gatedStore) PutRelease(ctx context.Context, r rollout.Release) error {
	if s.l.dead.Load() {
		return errCrashed
	}
	return s.Store.PutRelease(ctx, r)
}

// gatedRouter is the router as one life sees it; it logs each routing
// change.
type gatedRouter struct {
	p *proxy.Proxy
	l *life
	h *harness
}

var (
	_ rollout.TrafficRouter = (*gatedRouter)(nil)
	_ rollout.MetricSource  = (*gatedRouter)(nil)
)

func (r *gatedRouter) SetRoutes(ctx context.Context, rt rollout.Routes) error {
	if r.l.dead.Load() {
		return errCrashed
	}
	if err := r.p.SetRoutes(ctx, rt); err != nil {
		return err
	}
	r.h.record("routes stable=%s canary=%s@%d", rt.Stable.Version, rt.Canary.Version, rt.Weight)
	return nil
}

func (r *gatedRouter) VerifyRoutes(ctx context.Context, rt rollout.Routes) error {
	if r.l.dead.Load() {
		return errCrashed
	}
	if v := r.h.verify.Load(); v != nil {
		if err := (*v)(rt); err != nil {
			return err
		}
	}
	return r.p.VerifyRoutes(ctx, rt)
}

func (r *gatedRouter) Drain(ctx context.Context, addrs []string) error {
	if r.l.dead.Load() {
		return errCrashed
	}
	return r.p.Drain(ctx, addrs)
}

func (r *gatedRouter) Window(ctx context.Context, version string, since time.Time) (analysis.Sample, error) {
	if r.l.dead.Load() {
		return analysis.Sample{}, errCrashed
	}
	return r.p.Window(ctx, version, since)
}

// gatedRuntime is the runtime as one life sees it. It checks the
// invariant of every test: the router never points at an instance that
// is being stopped while it runs.
type gatedRuntime struct {
	rt *process.Runtime
	l  *life
	h  *harness
}

var _ rollout.Runtime = (*gatedRuntime)(nil)

func (g *gatedRuntime) Ensure(ctx context.Context, spec rollout.InstanceSpec) ([]rollout.Instance, error) {
	if g.l.dead.Load() {
		return nil, errCrashed
	}
	ref := rollout.ReleaseRef{App: spec.App, Env: spec.Env, Version: spec.Version}
	before, _ := g.rt.Observe(ctx, ref)
	if extra := len(before) - spec.Count; extra > 0 {
		// The ones to stop: StopFirst, else any; none may be routed.
		var stopping []rollout.Instance
		for _, o := range before {
			if slices.Contains(spec.StopFirst, o.ID) {
				stopping = append(stopping, o.Instance)
			}
		}
		g.checkUnrouted(stopping)
	}
	insts, err := g.rt.Ensure(ctx, spec)
	if err != nil {
		return nil, err
	}
	started, stopped := 0, 0
	for _, inst := range insts {
		if !slices.ContainsFunc(before, func(o rollout.ObservedInstance) bool { return o.ID == inst.ID }) {
			started++
		}
	}
	for _, o := range before {
		if o.Status.State != rollout.InstanceExited && !slices.ContainsFunc(insts, func(i rollout.Instance) bool { return i.ID == o.ID }) {
			stopped++
		}
	}
	if started > 0 {
		g.h.record("start %s x%d", spec.Version, started)
	}
	if stopped > 0 {
		g.h.record("stop %s x%d", spec.Version, stopped)
	}
	return insts, nil
}

func (g *gatedRuntime) Observe(ctx context.Context, ref rollout.ReleaseRef) ([]rollout.ObservedInstance, error) {
	if g.l.dead.Load() {
		return nil, errCrashed
	}
	return g.rt.Observe(ctx, ref)
}

func (g *gatedRuntime) Remove(ctx context.Context, ref rollout.ReleaseRef) error {
	if g.l.dead.Load() {
		return errCrashed
	}
	obs, _ := g.rt.Observe(ctx, ref)
	var live []rollout.Instance
	for _, o := range obs {
		if o.Status.State != rollout.InstanceExited {
			live = append(live, o.Instance)
		}
	}
	g.checkUnrouted(live)
	if len(live) > 0 {
		g.h.record("stop %s x%d", ref.Version, len(live))
	}
	return g.rt.Remove(ctx, ref)
}

// checkUnrouted fails the test if the router sends traffic to, or has
// requests in flight to, an instance about to be stopped.
func (g *gatedRuntime) checkUnrouted(insts []rollout.Instance) {
	rt := g.h.router.Routes()
	routed := slices.Concat(rt.Stable.Addrs, rt.Canary.Addrs, rt.Preview.Addrs)
	for _, inst := range insts {
		if slices.Contains(routed, inst.Addr) {
			g.h.t.Errorf("instance %s (%s) is stopped while the router still sends it traffic: %+v", inst.ID, inst.Version, rt)
		}
		if n := g.h.router.InFlight(inst.Addr); n > 0 {
			g.h.t.Errorf("instance %s (%s) is stopped with %d request(s) in flight to it", inst.ID, inst.Version, n)
		}
	}
}

// environments gives the engine of one life its gated adapters.
type environments struct {
	env rollout.Environment
}

func (e environments) For(app, env string) (rollout.Environment, error) {
	if app != "shop" || env != "production" {
		return rollout.Environment{}, fmt.Errorf("no environment %s of %s: %w", env, app, rollout.ErrNotFound)
	}
	return e.env, nil
}

// auditActions returns the actions of the audit log, oldest first.
func (h *harness) auditActions() []string {
	evs, err := h.store.ListAudit(context.Background(), audit.Filter{})
	if err != nil {
		h.t.Fatal(err)
	}
	var out []string
	for i := len(evs) - 1; i >= 0; i-- {
		out = append(out, evs[i].Action)
	}
	return out
}

// withMigrations gives v1 one schema migration and v2 two, in SQLite, as
// the config's migrations section (dir per version).
func (h *harness) withMigrations() {
	h.t.Helper()
	files := map[string]string{
		"v1/001_items.up.sql": "CREATE TABLE items (id integer primary key);", "v1/001_items.down.sql": "DROP TABLE items;",
		"v2/001_items.up.sql": "CREATE TABLE items (id integer primary key);", "v2/001_items.down.sql": "DROP TABLE items;",
		"v2/002_name.up.sql": "CREATE INDEX items_id ON items (id);", "v2/002_name.down.sql": "DROP INDEX items_id;",
	}
	for name, body := range files {
		path := filepath.Join(h.dir, "migrations", name)
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			h.t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
			h.t.Fatal(err)
		}
	}
	h.cfg.Migrations = &config.Migrations{Dir: "migrations/${VERSION}", Database: "sqlite:" + filepath.Join(h.dir, "app.db")}
}

// schemaStatus describes the app database's migration state as of v2's
// migrations.
func (h *harness) schemaStatus() string {
	h.t.Helper()
	m, err := releases.New(releases.Options{}).Open(h.t.Context(), filepath.Join(h.dir, "migrations", "v2"), "sqlite:"+filepath.Join(h.dir, "app.db"))
	if err != nil {
		h.t.Fatal(err)
	}
	defer m.Close()
	st, err := m.Status(h.t.Context())
	if err != nil {
		h.t.Fatal(err)
	}
	return st
}
