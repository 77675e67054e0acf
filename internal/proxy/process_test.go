package proxy_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/shipgate/shipgate/internal/proxy"
	"github.com/shipgate/shipgate/internal/rollout"
)

// The router process tests run the real shipgate binary, built once, as
// the server would: through EnsureProcess, talking over a real unix
// socket, with real signals.

// supervisorEnv, when set, makes the test binary a stand-in for a server:
// it supervises a router with the SupervisorConfig and sets the routes in
// the variable's JSON (a helperSpec), prints "ready <router pid>", and
// waits until its stdin closes, or a kill -9.
const supervisorEnv = "SHIPGATE_TEST_SUPERVISOR"

type helperSpec struct {
	Config proxy.SupervisorConfig
	Routes rollout.Routes
}

var (
	testTmp   string
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

func TestMain(m *testing.M) {
	if spec := os.Getenv(supervisorEnv); spec != "" {
		os.Exit(runSupervisorHelper(spec))
	}
	dir, err := os.MkdirTemp("", "shipgate-proxy-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	testTmp = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// shipgateBinary builds cmd/shipgate once per test run, only for the
// tests that need it.
func shipgateBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		binPath = filepath.Join(testTmp, "shipgate")
		cmd := exec.Command("go", "build", "-o", binPath, "../../cmd/shipgate")
		out, err := cmd.CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %w\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

func runSupervisorHelper(spec string) int {
	var h helperSpec
	if err := json.Unmarshal([]byte(spec), &h); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	h.Config.Logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	ctx := context.Background()
	c, err := proxy.EnsureProcess(ctx, h.Config)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if err := c.SetRoutes(ctx, h.Routes); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Printf("ready %d\n", c.PID())
	_, _ = io.Copy(io.Discard, os.Stdin)
	return 0
}

// freeListen returns a loopback address with a port nothing listens on,
// for a router that must come back on the same address after a restart.
func freeListen(t *testing.T) string {
	t.Helper()
	handedOut.Lock()
	defer handedOut.Unlock()
	for {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		// Once closed, the port may come back from the next call (a
		// router's preview address would then clash with its own).
		if !handedOut.addrs[addr] {
			handedOut.addrs[addr] = true
			return addr
		}
	}
}

// handedOut holds the addresses freeListen returned, so that it never
// returns one twice.
var handedOut = struct {
	sync.Mutex
	addrs map[string]bool
}{addrs: map[string]bool{}}

// shortTempDir returns a temporary directory with a short path: a unix
// socket path must stay under 108 bytes, and t.TempDir's include the test
// name.
func shortTempDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "sg")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

func supervisorConfig(t *testing.T, dataDir, listen string) proxy.SupervisorConfig {
	return proxy.SupervisorConfig{
		Command: []string{shipgateBinary(t), "router"}, Env: "production", Listen: listen,
		StickyHeader: "X-User", DataDir: dataDir,
		Logger: slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelInfo})),
	}
}

// ensureRouter starts (or reuses) a router process and stops it when the
// test ends, whatever happened to the client.
func ensureRouter(t *testing.T, cfg proxy.SupervisorConfig) *proxy.Client {
	t.Helper()
	c, err := proxy.EnsureProcess(context.Background(), cfg)
	if err != nil {
		t.Fatalf("ensure router: %v", err)
	}
	t.Cleanup(func() { stopRouter(t, cfg) })
	return c
}

// stopRouter stops whatever router answers on cfg's control socket.
func stopRouter(t *testing.T, cfg proxy.SupervisorConfig) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := proxy.Dial(ctx, proxy.ControlSocketPath(cfg.DataDir, cfg.Env))
	if err != nil {
		return // not running
	}
	if err := c.StopProcess(ctx); err != nil {
		t.Errorf("stop router: %v", err)
	}
}

func setClientRoutes(t *testing.T, c *proxy.Client, r rollout.Routes) {
	t.Helper()
	if err := c.SetRoutes(context.Background(), r); err != nil {
		t.Fatalf("set routes: %v", err)
	}
}

// pacedLoad sends requests from workers goroutines, each at most one per
// pace, until finish, and records when the requests that failed were
// sent (not when their failure was seen: on a busy machine a worker may
// record it long after the request went out).
type pacedLoad struct {
	ok, failed   int
	firstFailure time.Time
	lastFailure  time.Time
	mu           sync.Mutex
	stop         chan struct{}
	wg           sync.WaitGroup
}

func startPacedLoad(t *testing.T, url string, workers int, pace time.Duration) *pacedLoad {
	t.Helper()
	l := &pacedLoad{stop: make(chan struct{})}
	c := newClient(t)
	c.Timeout = 5 * time.Second
	for w := range workers {
		l.wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-l.stop:
					return
				case <-time.After(pace):
				}
				sentAt := time.Now()
				got, err := tryGet(c, url, fmt.Sprintf("user-%d-%d", w, i%50))
				l.mu.Lock()
				if err != nil || got.status != http.StatusOK {
					if l.failed == 0 || sentAt.Before(l.firstFailure) {
						l.firstFailure = sentAt
					}
					l.failed++
					if sentAt.After(l.lastFailure) {
						l.lastFailure = sentAt
					}
				} else {
					l.ok++
				}
				l.mu.Unlock()
			}
		})
	}
	return l
}

func (l *pacedLoad) finish() (ok, failed int) {
	close(l.stop)
	l.wg.Wait()
	return l.ok, l.failed
}

func (l *pacedLoad) counts() (ok, failed int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.ok, l.failed
}

// waitFor polls cond every 10ms for up to 10s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func alive(pid int) bool { return syscall.Kill(pid, 0) == nil }

func sameJSON(t *testing.T, got, want any) bool {
	t.Helper()
	a, err := json.Marshal(got)
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(want)
	if err != nil {
		t.Fatal(err)
	}
	return string(a) == string(b)
}

// TestRouterProcess_OutlivesItsServer runs the router under a stand-in
// server process, closes a client, kills the server with SIGKILL under
// load, and checks that no user request failed and that a restarted
// server reuses the router that kept serving.
func TestRouterProcess_OutlivesItsServer(t *testing.T) {
	stableA, stableB, canary := startApp(t, "v1", nil), startApp(t, "v1", nil), startApp(t, "v2", nil)
	cfg := supervisorConfig(t, shortTempDir(t), freeListen(t))
	routes := rollout.Routes{Stable: backend("v1", stableA, stableB), Canary: backend("v2", canary),
		Weight: 30, Seed: "r1"}
	helperCfg := cfg
	helperCfg.Logger = nil // the helper logs to its stderr
	spec, err := json.Marshal(helperSpec{Config: helperCfg, Routes: routes})
	if err != nil {
		t.Fatal(err)
	}
	server := exec.Command(os.Args[0], "-test.run=^$")
	server.Env = append(os.Environ(), supervisorEnv+"="+string(spec))
	stdin, err := server.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	defer stdin.Close()
	stdout, err := server.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	server.Stderr = t.Output()
	if err := server.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stopRouter(t, cfg) })
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		_ = server.Process.Kill()
		_ = server.Wait()
		t.Fatalf("the stand-in server did not get ready: %v", err)
	}
	routerPID, err := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(line, "ready ")))
	if err != nil {
		t.Fatalf("ready line %q: %v", line, err)
	}
	url := "http://" + cfg.Listen + "/"

	// (a) A client of the router goes away: nothing changes for users.
	dialed, err := proxy.Dial(context.Background(), proxy.ControlSocketPath(cfg.DataDir, cfg.Env))
	if err != nil {
		t.Fatal(err)
	}
	// A bake starts: its window is marked in the router.
	bakeStart := time.Now()
	if s, err := dialed.Window(context.Background(), "v2", bakeStart); err != nil || s.Requests != 0 {
		t.Fatalf("a window that starts now: %d requests, %v", s.Requests, err)
	}
	load := startPacedLoad(t, url, 8, time.Millisecond)
	time.Sleep(200 * time.Millisecond)
	if err := dialed.Close(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)

	// The server dies hard while users keep coming.
	if err := server.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = server.Wait()
	killedAt := time.Now()
	// A second after the kill, and enough requests in all (a busy machine
	// serves fewer per second).
	waitFor(t, "requests after the kill", func() bool {
		ok, failed := load.counts()
		return ok+failed >= 500 && time.Since(killedAt) > time.Second
	})
	ok, failed := load.finish()
	t.Logf("%d requests, %d failed; the server was killed with SIGKILL in the middle", ok+failed, failed)
	if failed != 0 {
		t.Errorf("%d of %d user requests failed while the server died; want 0", failed, ok+failed)
	}
	if ok < 500 {
		t.Errorf("only %d requests: the test exercised little", ok)
	}
	if !alive(routerPID) {
		t.Fatalf("the router (pid %d) died with its server", routerPID)
	}
	if stableA.arrivals.Load() == 0 || stableB.arrivals.Load() == 0 || canary.arrivals.Load() == 0 {
		t.Errorf("arrivals %d/%d/%d: want every backend used", stableA.arrivals.Load(), stableB.arrivals.Load(), canary.arrivals.Load())
	}

	// (c) The server restarts: it reuses the router that kept serving.
	cfg.Logger = slog.New(slog.NewTextHandler(t.Output(), nil))
	c, err := proxy.EnsureProcess(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if got := c.PID(); got != routerPID {
		t.Fatalf("EnsureProcess after a server restart: pid %d, want the running router's %d", got, routerPID)
	}
	if got := c.Addr(); got != cfg.Listen {
		t.Errorf("Addr %q, want %q", got, cfg.Listen)
	}
	got, err := c.Routes(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !sameJSON(t, got, routes) {
		t.Errorf("the reused router serves %+v, want %+v", got, routes)
	}
	// The restarted server's bake gets the evidence counted while it was
	// down: the window since the bake started.
	s, err := c.Window(context.Background(), "v2", bakeStart)
	if err != nil {
		t.Fatal(err)
	}
	if arrived := uint64(canary.arrivals.Load()); s.Requests == 0 || s.Requests > arrived {
		t.Errorf("window of v2 since the bake started: %d requests, want some and at most the %d the canary got", s.Requests, arrived)
	}
	if err := c.VerifyRoutes(context.Background(), routes); err != nil {
		t.Errorf("VerifyRoutes of the table served: %v", err)
	}
}

// TestRouterProcess_RestartedAfterKill kills the router with SIGKILL under
// load while a supervisor runs: it comes back on its own, with the same
// table, loaded from its state file.
func TestRouterProcess_RestartedAfterKill(t *testing.T) {
	stable, canary, green := startApp(t, "v1", nil), startApp(t, "v2", nil), startApp(t, "v2", nil)
	cfg := supervisorConfig(t, shortTempDir(t), freeListen(t))
	cfg.PreviewListen = freeListen(t)
	c := ensureRouter(t, cfg)
	defer c.Close()
	// Every field of the table, so the state file's round trip is checked.
	routes := rollout.Routes{Stable: backend("v1", stable), Canary: backend("v2", canary, green), Weight: 25,
		Seed: "r2", Match: &rollout.Match{Header: "X-Internal", Values: []string{"1"}, Users: []string{"user-0-1"}},
		Preview: backend("v2", canary),
		Health:  &rollout.RouteHealth{Path: "/healthz", Interval: time.Second, Timeout: time.Second, FailureThreshold: 3}}
	setClientRoutes(t, c, routes)
	oldPID := c.PID()

	load := startPacedLoad(t, "http://"+cfg.Listen+"/", 8, time.Millisecond)
	time.Sleep(300 * time.Millisecond)
	if err := syscall.Kill(oldPID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killedAt := time.Now()
	waitFor(t, "a new router process", func() bool {
		info, err := c.Info(context.Background())
		return err == nil && info.PID != oldPID
	})
	restartedIn := time.Since(killedAt)
	time.Sleep(500 * time.Millisecond)
	ok, failed := load.finish()
	t.Logf("restarted in %v; %d of %d requests failed, sent from %v to %v after the kill",
		restartedIn, failed, ok+failed, load.firstFailure.Sub(killedAt), load.lastFailure.Sub(killedAt))
	if failed > 0 && load.lastFailure.After(killedAt.Add(restartedIn)) {
		t.Errorf("a request sent %v after the kill failed, once the new router answered (%v)",
			load.lastFailure.Sub(killedAt), restartedIn)
	}
	if alive(oldPID) {
		t.Errorf("the killed router %d is still alive", oldPID)
	}
	got, err := c.Routes(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !sameJSON(t, got, routes) {
		t.Fatalf("after the restart the router serves\n %+v\nwant\n %+v", got, routes)
	}
	// The new router served the table from its state file, from its
	// start: it says so in its log.
	logText, err := os.ReadFile(proxy.LogPath(cfg.DataDir, cfg.Env))
	if err != nil {
		t.Fatal(err)
	}
	starts := regexp.MustCompile(`msg="router started" env=production pid=(\d+) .* stable=v1 canary=v2 weight=25`).FindAllStringSubmatch(string(logText), -1)
	if len(starts) != 1 || starts[0][1] != strconv.Itoa(c.PID()) {
		t.Errorf("router log shows these starts with the table: %q; want the new router's, pid %d\n%s", starts, c.PID(), logText)
	}
	if got := send(t, newClient(t), "http://"+cfg.PreviewListen+"/", ""); got.version != "v2" {
		t.Errorf("preview after the restart answered from %q, want v2", got.version)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(c.Collector())
	if v := gatherValue(t, reg, "shipgate_router_process_restarts_total", nil); v != 1 {
		t.Errorf("restarts metric %v, want 1", v)
	}
}

// TestRouterProcess_StateFileSurvivesAStop stops the router gracefully
// with a request in flight, then checks that the state file holds the
// table and that a fresh router serves it before anyone sets routes.
func TestRouterProcess_StateFileSurvivesAStop(t *testing.T) {
	arrived := make(chan struct{}, 1)
	slow := startApp(t, "v1", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			arrived <- struct{}{}
			time.Sleep(300 * time.Millisecond)
		}
		_, _ = io.WriteString(w, "v1")
	})
	cfg := supervisorConfig(t, shortTempDir(t), freeListen(t))
	c := ensureRouter(t, cfg)
	routes := rollout.Routes{Stable: backend("v1", slow), Seed: "r3"}
	setClientRoutes(t, c, routes)
	url := "http://" + cfg.Listen

	done := make(chan result, 1)
	go func() {
		got, err := tryGet(newClient(t), url+"/slow", "")
		if err != nil {
			t.Error(err)
		}
		done <- got
	}()
	<-arrived
	pid := c.PID()
	if err := c.StopProcess(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := <-done; got.status != http.StatusOK {
		t.Errorf("the request in flight at SIGTERM got %d, want 200", got.status)
	}
	if alive(pid) {
		t.Fatalf("router %d still alive after StopProcess", pid)
	}
	if _, err := os.Stat(proxy.ControlSocketPath(cfg.DataDir, cfg.Env)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("control socket left behind: %v", err)
	}

	b, err := os.ReadFile(proxy.StateFilePath(cfg.DataDir, cfg.Env))
	if err != nil {
		t.Fatal(err)
	}
	var state struct {
		Routes rollout.Routes `json:"routes"`
	}
	if err := json.Unmarshal(b, &state); err != nil {
		t.Fatal(err)
	}
	if !sameJSON(t, state.Routes, routes) {
		t.Fatalf("state file holds %+v, want %+v", state.Routes, routes)
	}
	if fi, err := os.Stat(proxy.StateFilePath(cfg.DataDir, cfg.Env)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("state file mode %v (%v), want 0600", fi.Mode().Perm(), err)
	}

	// A fresh router serves the saved table at once.
	fresh := ensureRouter(t, cfg)
	defer fresh.Close()
	if fresh.PID() == pid {
		t.Fatal("EnsureProcess reused a stopped router")
	}
	if got := send(t, newClient(t), url+"/", ""); got.status != http.StatusOK || got.version != "v1" {
		t.Fatalf("fresh router: %d from %q, want 200 from v1 before any SetRoutes", got.status, got.version)
	}
}

func TestRouterProcess_ControlAPI(t *testing.T) {
	stable := startApp(t, "v1", nil)
	canary := flagApp(t, "v2")
	cfg := supervisorConfig(t, shortTempDir(t), "127.0.0.1:0")
	c := ensureRouter(t, cfg)
	defer c.Close()

	socket := proxy.ControlSocketPath(cfg.DataDir, cfg.Env)
	if fi, err := os.Stat(socket); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("control socket mode %v (%v), want 0600", fi.Mode().Perm(), err)
	}
	info, err := c.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if info.Env != "production" || info.PID <= 0 || info.Addr == "" || info.Addr == "127.0.0.1:0" || info.Addr != c.Addr() {
		t.Fatalf("healthz %+v; want the env, a pid and the bound address", info)
	}

	// An invalid table is refused with the field, as from a Proxy.
	err = c.SetRoutes(context.Background(), rollout.Routes{Stable: backend("v1", stable), Weight: 150})
	var fe *rollout.FieldError
	if !errors.Is(err, rollout.ErrInvalid) || !errors.As(err, &fe) || fe.Field != "weight" {
		t.Fatalf("error %v, want a FieldError for weight matching rollout.ErrInvalid", err)
	}

	setClientRoutes(t, c, rollout.Routes{Stable: backend("v1", stable), Canary: backend("v2", canary), Weight: 100})
	client := newClient(t)
	for u := range 10 {
		send(t, client, "http://"+c.Addr()+"/pay", fmt.Sprintf("user-%d", u))
	}
	stats, err := c.Stats(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if s := stats["v2"]; s.Requests != 10 || s.Status5xx != 5 || s.Latency.Count() != 10 {
		t.Fatalf("v2 stats %d requests, %d 5xx, histogram of %d; want 10, 5, 10", s.Requests, s.Status5xx, s.Latency.Count())
	}
	flags, err := c.FlagStats(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if on, off := flags["checkout"]["on"], flags["checkout"]["off"]; on.Requests != 5 || on.Status5xx != 5 ||
		off.Requests != 5 || off.Status5xx != 0 || on.Latency.Count() != 5 {
		t.Fatalf("flag stats on=%+v off=%+v; want 5 requests each, the 5xx on on", on, off)
	}

	// The server re-exposes the router's metrics on its own registry.
	reg := prometheus.NewRegistry()
	reg.MustRegister(c.Collector())
	if v := gatherValue(t, reg, "shipgate_router_requests_total", map[string]string{"version": "v2", "code": "5xx"}); v != 5 {
		t.Errorf("shipgate_router_requests_total{version=v2,code=5xx} = %v, want 5", v)
	}
	if v := gatherValue(t, reg, "shipgate_router_up", nil); v != 1 {
		t.Errorf("shipgate_router_up = %v, want 1", v)
	}
	if v := gatherValue(t, reg, "shipgate_router_request_duration_seconds", map[string]string{"version": "v2"}); v != 10 {
		t.Errorf("duration histogram of v2 counts %v, want 10", v)
	}
}

func TestRouterProcess_ReplacedWhenItsConfigChanges(t *testing.T) {
	stable := startApp(t, "v1", nil)
	cfg := supervisorConfig(t, shortTempDir(t), freeListen(t))
	c := ensureRouter(t, cfg)
	setClientRoutes(t, c, rollout.Routes{Stable: backend("v1", stable)})
	c.Close()
	oldPID := c.PID()

	cfg.Listen = freeListen(t)
	moved := ensureRouter(t, cfg)
	defer moved.Close()
	if moved.PID() == oldPID || alive(oldPID) {
		t.Fatalf("router pid %d (old %d, alive %v): want the old one stopped and a new one", moved.PID(), oldPID, alive(oldPID))
	}
	if got := send(t, newClient(t), "http://"+cfg.Listen+"/", ""); got.version != "v1" {
		t.Fatalf("the new router answered from %q, want v1 from the saved table", got.version)
	}
}

func TestRouterProcess_StartFailureSaysWhy(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	cfg := supervisorConfig(t, shortTempDir(t), taken.Addr().String())
	_, err = proxy.EnsureProcess(context.Background(), cfg)
	if err == nil {
		stopRouter(t, cfg)
		t.Fatal("EnsureProcess succeeded on a taken address")
	}
	for _, want := range []string{"router process for production ended (exit status 1) before answering", "address already in use", "router-production.log"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	}
}

// gatherValue returns the value of the metric name whose labels include
// want: a counter's or gauge's value, or a histogram's count.
func gatherValue(t *testing.T, g prometheus.Gatherer, name string, want map[string]string) float64 {
	t.Helper()
	families, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	metrics:
		for _, m := range f.GetMetric() {
			for k, v := range want {
				found := false
				for _, l := range m.GetLabel() {
					found = found || l.GetName() == k && l.GetValue() == v
				}
				if !found {
					continue metrics
				}
			}
			switch {
			case m.Counter != nil:
				return m.GetCounter().GetValue()
			case m.Gauge != nil:
				return m.GetGauge().GetValue()
			case m.Histogram != nil:
				return float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	t.Fatalf("no metric %s with labels %v", name, want)
	return 0
}
