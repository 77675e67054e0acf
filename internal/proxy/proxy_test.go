package proxy_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shipgate/shipgate/internal/proxy"
	"github.com/shipgate/shipgate/internal/rollout"
)

// startProxy starts a proxy on a free loopback port and shuts it down when
// the test ends.
func startProxy(t testing.TB, cfg proxy.Config) *proxy.Proxy {
	t.Helper()
	cfg.Listen = "127.0.0.1:0"
	if cfg.Env == "" {
		cfg.Env = "test"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	p := proxy.New(cfg)
	if err := p.Start(context.Background()); err != nil {
		t.Fatalf("start: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := p.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	return p
}

// app is a backend that counts the requests that reach it.
type app struct {
	*httptest.Server
	arrivals atomic.Int64
}

// addr returns the app's host:port.
func (a *app) addr() string { return a.Listener.Addr().String() }

// startApp starts a backend that answers its name, or runs h when given.
func startApp(t testing.TB, name string, h http.HandlerFunc) *app {
	t.Helper()
	a := &app{}
	a.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.arrivals.Add(1)
		if h != nil {
			h(w, r)
			return
		}
		_, _ = io.Copy(io.Discard, r.Body)
		_, _ = io.WriteString(w, name)
	}))
	t.Cleanup(a.Close)
	return a
}

func setRoutes(t testing.TB, p *proxy.Proxy, r rollout.Routes) {
	t.Helper()
	if err := p.SetRoutes(context.Background(), r); err != nil {
		t.Fatalf("set routes: %v", err)
	}
}

func backend(version string, apps ...*app) rollout.Backend {
	b := rollout.Backend{Version: version}
	for _, a := range apps {
		b.Addrs = append(b.Addrs, a.addr())
	}
	return b
}

// result is what a client saw of one request.
type result struct {
	status  int
	version string
	body    string
}

// send makes one GET through the proxy, with a user key in the header
// X-User when key is not empty.
func send(t testing.TB, c *http.Client, url, key string) result {
	t.Helper()
	got, err := tryGet(c, url, key)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func do(t testing.TB, c *http.Client, req *http.Request) result {
	t.Helper()
	got, err := try(c, req)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// try makes one request and reads the whole answer. Goroutines other than
// the test's own use it, since they must not call t.Fatal.
func try(c *http.Client, req *http.Request) (result, error) {
	resp, err := c.Do(req)
	if err != nil {
		return result{}, fmt.Errorf("%s %s: %w", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return result{}, fmt.Errorf("read body: %w", err)
	}
	return result{status: resp.StatusCode, version: resp.Header.Get("X-Shipgate-Version"), body: string(body)}, nil
}

// tryGet is try for a GET with a user key in X-User when key is not empty.
func tryGet(c *http.Client, url, key string) (result, error) {
	req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, url, nil)
	if err != nil {
		return result{}, err
	}
	if key != "" {
		req.Header.Set("X-User", key)
	}
	return try(c, req)
}

// newClient returns a keep-alive client whose idle connections close when
// the test ends, before the proxy shuts down: http.Server.Shutdown waits up
// to 5 seconds for a connection that was opened but never used.
func newClient(t testing.TB) *http.Client {
	tr := &http.Transport{MaxIdleConnsPerHost: 16}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

func TestProxy_SplitFollowsWeight(t *testing.T) {
	stable, canary := startApp(t, "v1", nil), startApp(t, "v2", nil)
	p := startProxy(t, proxy.Config{StickyHeader: "X-User"})
	url := "http://" + p.Addr() + "/"
	c := newClient(t)
	const n = 3000
	tests := []struct {
		name   string
		weight int
		keyed  bool
		// tolerance is in percentage points. Keyed splits are
		// deterministic, so theirs only allows for the hash's spread;
		// random ones get more than four standard deviations.
		tolerance float64
	}{
		{name: "keyed 10%", weight: 10, keyed: true, tolerance: 2},
		{name: "keyed 50%", weight: 50, keyed: true, tolerance: 3},
		{name: "random 10%", weight: 10, tolerance: 3},
		{name: "random 50%", weight: 50, tolerance: 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			setRoutes(t, p, rollout.Routes{Stable: backend("v1", stable), Canary: backend("v2", canary),
				Weight: tt.weight, Seed: "rollout-7"})
			var toCanary atomic.Int64
			var wg sync.WaitGroup
			for w := range 4 {
				wg.Go(func() {
					for i := w; i < n; i += 4 {
						key := ""
						if tt.keyed {
							key = fmt.Sprintf("user-%d", i)
						}
						got, err := tryGet(c, url, key)
						if err != nil {
							t.Error(err)
							return
						}
						if got.status != http.StatusOK {
							t.Errorf("status %d, want 200", got.status)
						}
						if got.version != got.body {
							t.Errorf("header says %q but %q answered", got.version, got.body)
						}
						if got.version == "v2" {
							toCanary.Add(1)
						}
					}
				})
			}
			wg.Wait()
			share := 100 * float64(toCanary.Load()) / n
			if diff := share - float64(tt.weight); diff > tt.tolerance || diff < -tt.tolerance {
				t.Fatalf("canary got %.1f%% of %d requests, want %d%% ± %.0f", share, n, tt.weight, tt.tolerance)
			}
		})
	}
}

func TestProxy_StickyUsersOnlyJoinTheCanary(t *testing.T) {
	stable, canary := startApp(t, "v1", nil), startApp(t, "v2", nil)
	p := startProxy(t, proxy.Config{StickyHeader: "X-User", StickyCookie: "uid"})
	url := "http://" + p.Addr() + "/"
	c := newClient(t)
	const users = 1000

	// canaryUsers returns the users that reach the canary at a weight and
	// seed, sending each user's key in the cookie for odd users, so both
	// sources of the key are exercised.
	canaryUsers := func(weight int, seed string) map[int]bool {
		setRoutes(t, p, rollout.Routes{Stable: backend("v1", stable), Canary: backend("v2", canary),
			Weight: weight, Seed: seed})
		set := map[int]bool{}
		for u := range users {
			key := fmt.Sprintf("user-%d", u)
			req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, url, nil)
			if err != nil {
				t.Fatal(err)
			}
			if u%2 == 0 {
				req.Header.Set("X-User", key)
			} else {
				req.Header.Set("Cookie", "theme=dark; uid="+key+"; lang=en")
			}
			if do(t, c, req).version == "v2" {
				set[u] = true
			}
		}
		return set
	}

	at5, at25, at50 := canaryUsers(5, "s1"), canaryUsers(25, "s1"), canaryUsers(50, "s1")
	if len(at5) == 0 || len(at5) >= len(at25) || len(at25) >= len(at50) {
		t.Fatalf("canary users at 5/25/50%%: %d/%d/%d, want growing and non-empty", len(at5), len(at25), len(at50))
	}
	for _, pair := range []struct {
		name          string
		small, larger map[int]bool
	}{{"5% ⊆ 25%", at5, at25}, {"25% ⊆ 50%", at25, at50}} {
		for u := range pair.small {
			if !pair.larger[u] {
				t.Errorf("%s: user-%d left the canary when the weight grew", pair.name, u)
			}
		}
	}

	// The same key never flips between two rounds at the same weight.
	if again := canaryUsers(25, "s1"); !sameSet(again, at25) {
		t.Errorf("at 25%% the canary users changed between two rounds: %d then %d", len(at25), len(again))
	}
	// Another rollout (seed) picks other users.
	if other := canaryUsers(25, "s2"); sameSet(other, at25) {
		t.Errorf("seeds s1 and s2 picked the same %d canary users", len(other))
	}
}

func sameSet(a, b map[int]bool) bool {
	if len(a) != len(b) {
		return false
	}
	for k := range a {
		if !b[k] {
			return false
		}
	}
	return true
}

func TestProxy_StickyHeaderWinsOverCookie(t *testing.T) {
	stable, canary := startApp(t, "v1", nil), startApp(t, "v2", nil)
	p := startProxy(t, proxy.Config{StickyHeader: "X-User", StickyCookie: "uid"})
	setRoutes(t, p, rollout.Routes{Stable: backend("v1", stable), Canary: backend("v2", canary), Weight: 50, Seed: "s"})
	url := "http://" + p.Addr() + "/"
	c := newClient(t)
	// Find a header key and a cookie key that land on different versions.
	var onCanary, onStable string
	for i := 0; onCanary == "" || onStable == ""; i++ {
		key := fmt.Sprintf("k%d", i)
		if send(t, c, url, key).version == "v2" {
			onCanary = key
		} else {
			onStable = key
		}
	}
	for range 20 {
		req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, url, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("X-User", onCanary)
		req.Header.Set("Cookie", "uid="+onStable)
		if got, want := do(t, c, req).version, "v2"; got != want {
			t.Fatalf("version %q, want %q from the header's key", got, want)
		}
	}
}

func TestProxy_WeightZeroAndHundred(t *testing.T) {
	stable, canary := startApp(t, "v1", nil), startApp(t, "v2", nil)
	p := startProxy(t, proxy.Config{StickyHeader: "X-User"})
	url := "http://" + p.Addr() + "/"
	c := newClient(t)
	tests := []struct {
		name   string
		routes rollout.Routes
		want   string
	}{
		{"weight 0", rollout.Routes{Stable: backend("v1", stable), Canary: backend("v2", canary), Weight: 0}, "v1"},
		{"weight 100", rollout.Routes{Stable: backend("v1", stable), Canary: backend("v2", canary), Weight: 100}, "v2"},
		{"no canary", rollout.Routes{Stable: backend("v1", stable), Weight: 50}, "v1"},
		{"no stable", rollout.Routes{Canary: backend("v2", canary), Weight: 10}, "v2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			setRoutes(t, p, tt.routes)
			for i := range 200 {
				key := ""
				if i%2 == 0 {
					key = fmt.Sprintf("user-%d", i)
				}
				if got := send(t, c, url, key).version; got != tt.want {
					t.Fatalf("request %d went to %q, want %q", i, got, tt.want)
				}
			}
		})
	}
}

func TestProxy_RoundRobinWithinVersion(t *testing.T) {
	a, b, c := startApp(t, "v1", nil), startApp(t, "v1", nil), startApp(t, "v1", nil)
	p := startProxy(t, proxy.Config{})
	setRoutes(t, p, rollout.Routes{Stable: backend("v1", a, b, c)})
	client := newClient(t)
	for range 300 {
		send(t, client, "http://"+p.Addr()+"/", "")
	}
	for i, x := range []*app{a, b, c} {
		if got, want := x.arrivals.Load(), int64(100); got != want {
			t.Errorf("instance %d got %d requests, want %d", i, got, want)
		}
	}
}

func TestProxy_NoLiveReleaseAnswers503(t *testing.T) {
	stable := startApp(t, "v1", nil)
	p := startProxy(t, proxy.Config{})
	url := "http://" + p.Addr() + "/"
	c := newClient(t)
	check := func(t *testing.T) {
		t.Helper()
		got := send(t, c, url, "")
		if got.status != http.StatusServiceUnavailable || got.body != "no release is live\n" {
			t.Fatalf("got %d %q, want 503 %q", got.status, got.body, "no release is live\n")
		}
	}
	t.Run("before any routes", check)
	t.Run("after empty routes", func(t *testing.T) {
		setRoutes(t, p, rollout.Routes{Stable: backend("v1", stable)})
		if got := send(t, c, url, ""); got.status != http.StatusOK {
			t.Fatalf("with a stable: status %d, want 200", got.status)
		}
		setRoutes(t, p, rollout.Routes{})
		check(t)
	})
}

func TestProxy_SetRoutesRejectsInvalidTables(t *testing.T) {
	stable := startApp(t, "v1", nil)
	p := startProxy(t, proxy.Config{})
	good := rollout.Routes{Stable: backend("v1", stable)}
	setRoutes(t, p, good)
	tests := []struct {
		name   string
		routes rollout.Routes
		want   string
	}{
		{"negative weight", rollout.Routes{Stable: good.Stable, Weight: -1}, "weight: -1 is not a percentage"},
		{"weight over 100", rollout.Routes{Stable: good.Stable, Weight: 101}, "weight: 101 is not a percentage"},
		{"version without addrs", rollout.Routes{Stable: rollout.Backend{Version: "v1"}}, `stable.addrs: version "v1" has no address`},
		{"addrs without version", rollout.Routes{Stable: good.Stable, Canary: rollout.Backend{Addrs: []string{"127.0.0.1:1"}}}, "canary.version: addresses given without a version"},
		{"bad address", rollout.Routes{Stable: rollout.Backend{Version: "v1", Addrs: []string{stable.addr(), "localhost"}}}, `stable.addrs[1]: "localhost" is not a host:port`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := p.SetRoutes(context.Background(), tt.routes)
			if !errors.Is(err, rollout.ErrInvalid) {
				t.Fatalf("error %v, want one matching rollout.ErrInvalid", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %q, want it to contain %q", err, tt.want)
			}
			if got := send(t, newClient(t), "http://"+p.Addr()+"/", ""); got.status != http.StatusOK || got.version != "v1" {
				t.Fatalf("after a rejected table: %d from %q, want 200 from v1", got.status, got.version)
			}
		})
	}
}

func TestProxy_WeightChangesUnderLoadFailNothing(t *testing.T) {
	// Backends take up to a millisecond so that many requests are in
	// flight whenever the table changes.
	slowish := func(name string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			time.Sleep(time.Duration(len(r.URL.Path)%4) * 300 * time.Microsecond)
			_, _ = io.WriteString(w, name)
		}
	}
	stable := startApp(t, "v1", slowish("v1"))
	canaryA, canaryB := startApp(t, "v2", slowish("v2")), startApp(t, "v2", slowish("v2"))
	p := startProxy(t, proxy.Config{StickyHeader: "X-User"})
	url := "http://" + p.Addr()
	// A table before the load starts: a router without one answers 503,
	// which is not what this test is about.
	setRoutes(t, p, rollout.Routes{Stable: backend("v1", stable), Canary: backend("v2", canaryA), Seed: "load"})

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var (
		wg       sync.WaitGroup
		ok       atomic.Int64
		failures atomic.Int64
	)
	c := newClient(t)
	for g := range 8 {
		wg.Go(func() {
			for i := 0; ctx.Err() == nil; i++ {
				key := ""
				if i%2 == 0 {
					key = fmt.Sprintf("user-%d-%d", g, i)
				}
				req, err := http.NewRequestWithContext(context.Background(), http.MethodGet,
					url+strings.Repeat("/x", i%4), nil)
				if err != nil {
					t.Error(err)
					return
				}
				req.Header.Set("X-User", key)
				resp, err := c.Do(req)
				if err != nil {
					failures.Add(1)
					t.Errorf("request: %v", err)
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					failures.Add(1)
					t.Errorf("status %d from %q", resp.StatusCode, resp.Header.Get("X-Shipgate-Version"))
					continue
				}
				ok.Add(1)
			}
		})
	}
	// Change the weight every 2ms, and move the canary between two sets of
	// instances, while the load runs: for a second, and until enough has
	// happened (a busy machine does less in a second).
	changes := 0
	start := time.Now()
	for time.Since(start) < 20*time.Second && (time.Since(start) < time.Second || ok.Load() < 100 || changes < 50) {
		canary := backend("v2", canaryA)
		if changes%3 == 0 {
			canary = backend("v2", canaryA, canaryB)
		}
		setRoutes(t, p, rollout.Routes{Stable: backend("v1", stable), Canary: canary,
			Weight: (changes * 7) % 101, Seed: "load"})
		changes++
		time.Sleep(2 * time.Millisecond)
	}
	cancel()
	wg.Wait()

	if got := failures.Load(); got != 0 {
		t.Fatalf("%d requests failed out of %d during %d weight changes", got, got+ok.Load(), changes)
	}
	if ok.Load() < 100 || changes < 50 {
		t.Fatalf("only %d requests and %d weight changes: the test did not exercise anything", ok.Load(), changes)
	}
	stats, err := p.Stats(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var total uint64
	for v, s := range stats {
		if s.Errors() != 0 {
			t.Errorf("%s counted %d errors, want 0", v, s.Errors())
		}
		total += s.Requests
	}
	if got, want := total, uint64(ok.Load()); got != want {
		t.Errorf("stats count %d requests, clients saw %d", got, want)
	}
	t.Logf("%d requests, %d weight changes", ok.Load(), changes)
}

// closingListener accepts connections, counts them and closes them at once:
// a backend that crashes on every request.
func closingListener(t *testing.T) (addr string, accepts *atomic.Int64) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	accepts = &atomic.Int64{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			accepts.Add(1)
			// Read the request so the proxy has sent it, then hang up.
			_ = conn.SetReadDeadline(time.Now().Add(time.Second))
			_, _ = conn.Read(make([]byte, 4096))
			conn.Close()
		}
	}()
	t.Cleanup(func() { ln.Close(); <-done })
	return ln.Addr().String(), accepts
}

// refusedAddr returns a loopback address that nothing listens on.
func refusedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func TestProxy_BackendDownIsTriedOnceAndCounted(t *testing.T) {
	hangUpAddr, hangUps := closingListener(t)
	slow := startApp(t, "slow", func(w http.ResponseWriter, r *http.Request) {
		// Reading the body lets the server notice when the proxy hangs up.
		_, _ = io.Copy(io.Discard, r.Body)
		select {
		case <-time.After(time.Minute):
		case <-r.Context().Done():
		}
	})
	// The response timeout is short only where the test wants it to fire:
	// elsewhere a busy machine may take longer than that to hang up.
	const wide, short = 10 * time.Second, 300 * time.Millisecond
	tests := []struct {
		name    string
		addr    string
		method  string
		timeout time.Duration
		status  int
		arrived func() int64 // requests that reached the broken backend, when it can tell
	}{
		{name: "connection refused", addr: refusedAddr(t), method: http.MethodGet, timeout: wide, status: http.StatusBadGateway},
		{name: "hangs up", addr: hangUpAddr, method: http.MethodGet, timeout: wide, status: http.StatusBadGateway, arrived: hangUps.Load},
		{name: "hangs up on POST", addr: hangUpAddr, method: http.MethodPost, timeout: wide, status: http.StatusBadGateway, arrived: hangUps.Load},
		{name: "too slow", addr: slow.addr(), method: http.MethodGet, timeout: short, status: http.StatusGatewayTimeout, arrived: slow.arrivals.Load},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stable := startApp(t, "v1", nil)
			// A proxy per case, so its connection to the broken backend
			// is a fresh one.
			p := startProxy(t, proxy.Config{ResponseTimeout: tt.timeout})
			setRoutes(t, p, rollout.Routes{Stable: backend("v1", stable),
				Canary: rollout.Backend{Version: "v2", Addrs: []string{tt.addr}}, Weight: 100})
			var before int64
			if tt.arrived != nil {
				before = tt.arrived()
			}
			req, err := http.NewRequestWithContext(context.Background(), tt.method,
				"http://"+p.Addr()+"/pay", strings.NewReader("amount=10"))
			if err != nil {
				t.Fatal(err)
			}
			got := do(t, newClient(t), req)
			if got.status != tt.status || got.version != "v2" {
				t.Fatalf("got %d from %q, want %d from v2", got.status, got.version, tt.status)
			}
			if tt.arrived != nil {
				// The proxy may give up on a slow backend before its
				// handler has run: wait for the attempt to arrive.
				for deadline := time.Now().Add(10 * time.Second); tt.arrived()-before == 0 && time.Now().Before(deadline); {
					time.Sleep(5 * time.Millisecond)
				}
				if n := tt.arrived() - before; n != 1 {
					t.Errorf("the broken backend saw %d attempts, want exactly 1", n)
				}
			}
			if n := stable.arrivals.Load(); n != 0 {
				t.Errorf("stable got %d requests: the proxy retried on another backend", n)
			}
			stats, err := p.Stats(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if got, want := stats["v2"].TransportErrors, uint64(1); got != want {
				t.Errorf("v2 transport errors %d, want %d", got, want)
			}
			if got, want := stats["v2"].Status5xx, uint64(0); got != want {
				t.Errorf("v2 5xx %d, want %d: a transport error is not the app's 5xx", got, want)
			}
			if got, want := stats["v2"].Requests, uint64(1); got != want {
				t.Errorf("v2 requests %d, want %d", got, want)
			}
		})
	}
}

func TestProxy_BodyCutShortCountsAsTransportError(t *testing.T) {
	broken := startApp(t, "v2", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "1000")
		_, _ = io.WriteString(w, "partial")
		w.(http.Flusher).Flush()
		panic(http.ErrAbortHandler) // drops the connection mid-body
	})
	broken.Config.ErrorLog = slog.NewLogLogger(slog.DiscardHandler, slog.LevelError)
	p := startProxy(t, proxy.Config{})
	setRoutes(t, p, rollout.Routes{Stable: backend("v2", broken)})
	req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, "http://"+p.Addr()+"/", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := newClient(t).Do(req)
	if err == nil {
		_, err = io.ReadAll(resp.Body)
		resp.Body.Close()
	}
	if err == nil {
		t.Fatal("the client read a whole body, want it cut short")
	}
	stats, err := p.Stats(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if got, want := stats["v2"].TransportErrors, uint64(1); got != want {
		t.Fatalf("transport errors %d, want %d", got, want)
	}
}

func TestProxy_StatsPerVersion(t *testing.T) {
	stable := startApp(t, "v1", nil)
	canary := startApp(t, "v2", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/fail" {
			http.Error(w, "boom", http.StatusInternalServerError)
			return
		}
		_, _ = io.WriteString(w, "v2")
	})
	p := startProxy(t, proxy.Config{})
	url := "http://" + p.Addr()
	c := newClient(t)

	setRoutes(t, p, rollout.Routes{Stable: backend("v1", stable), Canary: backend("v2", canary), Weight: 0})
	for range 7 {
		send(t, c, url+"/", "")
	}
	setRoutes(t, p, rollout.Routes{Stable: backend("v1", stable), Canary: backend("v2", canary), Weight: 100})
	for range 3 {
		send(t, c, url+"/", "")
	}
	for range 2 {
		if got := send(t, c, url+"/fail", ""); got.status != http.StatusInternalServerError {
			t.Fatalf("status %d, want the app's 500", got.status)
		}
	}
	// The canary leaves the table; its counters stay.
	setRoutes(t, p, rollout.Routes{Stable: backend("v1", stable)})
	send(t, c, url+"/", "")

	stats, err := p.Stats(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		version                 string
		requests, s5xx, transpt uint64
	}{
		{"v1", 8, 0, 0},
		{"v2", 5, 2, 0},
	}
	for _, tt := range tests {
		s := stats[tt.version]
		if s.Requests != tt.requests || s.Status5xx != tt.s5xx || s.TransportErrors != tt.transpt {
			t.Errorf("%s: requests/5xx/transport = %d/%d/%d, want %d/%d/%d", tt.version,
				s.Requests, s.Status5xx, s.TransportErrors, tt.requests, tt.s5xx, tt.transpt)
		}
		if got := s.Latency.Count(); got != tt.requests {
			t.Errorf("%s: latency histogram holds %d requests, want %d", tt.version, got, tt.requests)
		}
	}
	if len(stats) != 2 {
		t.Errorf("stats for %d versions, want 2: %v", len(stats), stats)
	}
}

func TestProxy_InFlightRequestFinishesOnItsVersion(t *testing.T) {
	release := make(chan struct{})
	arrived := make(chan struct{}, 1)
	stable := startApp(t, "v1", nil)
	canary := startApp(t, "v2", func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		<-release
		_, _ = io.WriteString(w, "v2")
	})
	p := startProxy(t, proxy.Config{})
	setRoutes(t, p, rollout.Routes{Stable: backend("v1", stable), Canary: backend("v2", canary), Weight: 100})

	done := make(chan result, 1)
	c := newClient(t)
	go func() {
		got, err := tryGet(c, "http://"+p.Addr()+"/", "")
		if err != nil {
			t.Error(err)
		}
		done <- got
	}()
	<-arrived
	// Roll back while the request is on the canary.
	setRoutes(t, p, rollout.Routes{Stable: backend("v1", stable)})
	close(release)
	got := <-done
	if got.status != http.StatusOK || got.body != "v2" {
		t.Fatalf("in-flight request: %d %q, want 200 from v2", got.status, got.body)
	}
	stats, err := p.Stats(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if got, want := stats["v2"].Requests, uint64(1); got != want {
		t.Fatalf("v2 counted %d requests after leaving the table, want %d", got, want)
	}
}

func TestProxy_LatencyCoversTheWholeBody(t *testing.T) {
	// The app sends its headers at once and the body 20ms later, so a
	// latency taken at the first byte would be near zero.
	slow := startApp(t, "v1", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		time.Sleep(20 * time.Millisecond)
		_, _ = io.WriteString(w, "done")
	})
	p := startProxy(t, proxy.Config{})
	setRoutes(t, p, rollout.Routes{Stable: backend("v1", slow)})
	c := newClient(t)
	for range 25 {
		if got := send(t, c, "http://"+p.Addr()+"/", ""); got.body != "done" {
			t.Fatalf("body %q, want %q", got.body, "done")
		}
	}
	stats, err := p.Stats(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	h := stats["v1"].Latency
	// Only a lower bound: a latency taken at the first byte would be near
	// zero, and an upper bound would judge the machine's load, not the
	// proxy (it failed on a busy 2-core machine).
	if p50, p99 := h.Quantile(0.5), h.Quantile(0.99); p50 < 20*time.Millisecond || p99 < 20*time.Millisecond {
		t.Fatalf("p50 %v, p99 %v; want both at least the body's 20ms", p50, p99)
	}
}

func TestProxy_ForwardsRequestAndHeaders(t *testing.T) {
	echo := startApp(t, "v1", func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "%s %s host=%s xff=%s xfh=%s xfp=%s body=%s", r.Method, r.URL.RequestURI(), r.Host,
			r.Header.Get("X-Forwarded-For"), r.Header.Get("X-Forwarded-Host"), r.Header.Get("X-Forwarded-Proto"), body)
	})
	p := startProxy(t, proxy.Config{})
	setRoutes(t, p, rollout.Routes{Stable: backend("v1", echo)})
	req, err := http.NewRequestWithContext(context.Background(), http.MethodPost,
		"http://"+p.Addr()+"/orders?id=7", strings.NewReader("qty=2"))
	if err != nil {
		t.Fatal(err)
	}
	req.Host = "shop.example"
	got := do(t, newClient(t), req)
	want := "POST /orders?id=7 host=shop.example xff=127.0.0.1 xfh=shop.example xfp=http body=qty=2"
	if got.body != want {
		t.Fatalf("app saw\n %s\nwant\n %s", got.body, want)
	}
}

func TestProxy_ShutdownFinishesInFlightRequests(t *testing.T) {
	arrived := make(chan struct{}, 1)
	var appFinished atomic.Bool
	slow := startApp(t, "v1", func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		time.Sleep(300 * time.Millisecond)
		appFinished.Store(true)
		_, _ = io.WriteString(w, "finished")
	})
	p := proxy.New(proxy.Config{Env: "test", Listen: "127.0.0.1:0",
		Logger: slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))})
	if err := p.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	setRoutes(t, p, rollout.Routes{Stable: backend("v1", slow)})
	url := "http://" + p.Addr() + "/"

	done := make(chan result, 1)
	c := newClient(t)
	go func() {
		got, err := tryGet(c, url, "")
		if err != nil {
			t.Error(err)
		}
		done <- got
	}()
	<-arrived
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := p.Shutdown(ctx); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	if !appFinished.Load() {
		t.Fatal("Shutdown returned before the in-flight request finished")
	}
	if got := <-done; got.status != http.StatusOK || got.body != "finished" {
		t.Fatalf("in-flight request: %d %q, want 200 %q", got.status, got.body, "finished")
	}
	if _, err := tryGet(newClient(t), url, ""); err == nil {
		t.Fatal("the proxy still accepts requests after Shutdown")
	}
}

func TestProxy_VersionHeaderIsTheRouters(t *testing.T) {
	app := startApp(t, "v1", func(w http.ResponseWriter, r *http.Request) {
		// An early hint first: ReverseProxy clears the response headers
		// after passing a 1xx on.
		w.Header().Set("Link", "</style.css>; rel=preload")
		w.WriteHeader(http.StatusEarlyHints)
		// An app cannot claim to be another version.
		w.Header().Set("X-Shipgate-Version", "spoofed")
		_, _ = io.WriteString(w, "v1")
	})
	p := startProxy(t, proxy.Config{})
	setRoutes(t, p, rollout.Routes{Stable: backend("v1", app)})
	req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, "http://"+p.Addr()+"/", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := newClient(t).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got, want := resp.Header.Values("X-Shipgate-Version"), []string{"v1"}; !slices.Equal(got, want) {
		t.Fatalf("X-Shipgate-Version %q, want %q", got, want)
	}
}
