package proxy_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shipgate/shipgate/internal/proxy"
	"github.com/shipgate/shipgate/internal/rollout"
)

// sentAtHeader carries the moment a client sent a request, in Unix
// nanoseconds: a request sent after an ejection reached the proxy after
// it, so it must not reach the ejected address.
const sentAtHeader = "X-Sent-At"

// arrival is one user request that reached a healthApp.
type arrival struct {
	sentAt, arrivedAt time.Time
}

// healthApp is a backend whose /healthz can be made to fail while it keeps
// serving users, and that records when each user request arrived.
type healthApp struct {
	*app
	failing  atomic.Bool
	mu       sync.Mutex
	arrivals []arrival
}

func startHealthApp(t *testing.T, name string) *healthApp {
	t.Helper()
	h := &healthApp{}
	h.app = startApp(t, name, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" {
			if h.failing.Load() {
				http.Error(w, "not ready", http.StatusServiceUnavailable)
			}
			return
		}
		now := time.Now()
		ns, _ := strconv.ParseInt(r.Header.Get(sentAtHeader), 10, 64)
		h.mu.Lock()
		h.arrivals = append(h.arrivals, arrival{sentAt: time.Unix(0, ns), arrivedAt: now})
		h.mu.Unlock()
		_, _ = io.WriteString(w, name)
	})
	return h
}

// sentAfterArrivedBefore returns how many requests sent after from
// arrived before to, and how many arrived in (from, to) at all.
func (h *healthApp) sentAfterArrivedBefore(from, to time.Time) (sent, arrived int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, a := range h.arrivals {
		if a.arrivedAt.After(from) && a.arrivedAt.Before(to) {
			arrived++
			if a.sentAt.After(from) {
				sent++
			}
		}
	}
	return sent, arrived
}

// between returns how many requests arrived in (from, to).
func (h *healthApp) between(from, to time.Time) int {
	_, n := h.sentAfterArrivedBefore(from, to)
	return n
}

// load sends requests from workers goroutines until stop is closed, and
// counts those that did not end in 200.
type load struct {
	ok, failed atomic.Int64
	stop       chan struct{}
	wg         sync.WaitGroup
}

func startLoad(t *testing.T, url string, workers int) *load {
	t.Helper()
	l := &load{stop: make(chan struct{})}
	c := newClient(t)
	for range workers {
		l.wg.Go(func() {
			for {
				select {
				case <-l.stop:
					return
				default:
				}
				req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, url, nil)
				if err != nil {
					t.Error(err)
					return
				}
				req.Header.Set(sentAtHeader, strconv.FormatInt(time.Now().UnixNano(), 10))
				got, err := try(c, req)
				if err != nil || got.status != http.StatusOK {
					l.failed.Add(1)
					continue
				}
				l.ok.Add(1)
			}
		})
	}
	return l
}

func (l *load) finish() (ok, failed int64) {
	close(l.stop)
	l.wg.Wait()
	return l.ok.Load(), l.failed.Load()
}

// waitHealth polls the proxy until cond holds for addr's health.
func waitHealth(t *testing.T, p *proxy.Proxy, addr string, what string, cond func(proxy.AddrHealth) bool) proxy.AddrHealth {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		for _, h := range p.Health() {
			if h.Addr == addr && cond(h) {
				return h
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not %s after 10s: %+v", addr, what, p.Health())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// testHealth checks often; its timeout is wide (a healthy address answers
// at once, but a probe may wait for a core on a busy machine: two slow
// probes must not eject it).
var testHealth = &rollout.RouteHealth{Path: "/healthz", Interval: 20 * time.Millisecond,
	Timeout: 5 * time.Second, FailureThreshold: 2}

func TestProxy_HealthEjectsFailingAddressUnderLoad(t *testing.T) {
	a, b, c := startHealthApp(t, "v1"), startHealthApp(t, "v1"), startHealthApp(t, "v1")
	p := startProxy(t, proxy.Config{})
	setRoutes(t, p, rollout.Routes{Stable: backend("v1", a.app, b.app, c.app), Health: testHealth})
	l := startLoad(t, "http://"+p.Addr()+"/", 4)

	time.Sleep(200 * time.Millisecond)
	c.failing.Store(true)
	ejected := waitHealth(t, p, c.addr(), "ejected", func(h proxy.AddrHealth) bool { return h.Ejected })
	if ejected.EjectedAt.IsZero() || ejected.Failures < 2 || ejected.LastError == "" {
		t.Fatalf("ejected address health %+v, want a time, 2 failures or more and the error", ejected)
	}
	time.Sleep(500 * time.Millisecond)
	c.failing.Store(false)
	back := waitHealth(t, p, c.addr(), "readmitted", func(h proxy.AddrHealth) bool { return !h.Ejected })
	time.Sleep(300 * time.Millisecond)
	ok, failed := l.finish()

	if failed != 0 {
		t.Errorf("%d of %d requests failed; ejecting an address must fail none", failed, ok+failed)
	}
	from, to := back.EjectedAt, back.ReadmittedAt
	if !from.Equal(ejected.EjectedAt) || !to.After(from) {
		t.Fatalf("ejected at %v, readmitted at %v: want one ejection, then readmission", ejected.EjectedAt, to)
	}
	// A request sent after the ejection reached the proxy after it, and
	// must not reach the address until it is readmitted. Requests already
	// routed when the ejection happened may still land just after it.
	sent, arrived := c.sentAfterArrivedBefore(from, to)
	if sent != 0 {
		t.Errorf("%d requests sent after the ejection reached the ejected address before its readmission", sent)
	}
	t.Logf("ejected for %v; %d requests in flight at the ejection arrived after it", to.Sub(from), arrived-sent)
	for _, other := range []*healthApp{a, b} {
		if n := other.between(from, to); n == 0 {
			t.Errorf("%s got no request while %s was ejected", other.addr(), c.addr())
		}
	}
	if n := c.between(to, time.Now()); n == 0 {
		t.Errorf("the readmitted address got no request after %v", to)
	}
	t.Logf("%d requests, %d failed", ok+failed, failed)
}

func TestProxy_HealthNeverEjectsAWholeVersion(t *testing.T) {
	a, b, c := startHealthApp(t, "v1"), startHealthApp(t, "v1"), startHealthApp(t, "v1")
	p := startProxy(t, proxy.Config{})
	setRoutes(t, p, rollout.Routes{Stable: backend("v1", a.app, b.app, c.app), Health: testHealth})
	url := "http://" + p.Addr() + "/"
	client := newClient(t)

	a.failing.Store(true)
	waitHealth(t, p, a.addr(), "ejected", func(h proxy.AddrHealth) bool { return h.Ejected })
	b.failing.Store(true)
	c.failing.Store(true)
	// Every address fails now: all of them stay, or come back, in rotation.
	for _, x := range []*healthApp{a, b, c} {
		waitHealth(t, p, x.addr(), "failing and in rotation", func(h proxy.AddrHealth) bool {
			return h.Failures >= 4 && !h.Ejected
		})
	}
	for range 30 {
		if got := send(t, client, url, ""); got.status != http.StatusOK {
			t.Fatalf("status %d with every address failing its checks, want 200", got.status)
		}
	}
	for _, x := range []*healthApp{a, b, c} {
		if n := x.between(time.Time{}, time.Now().Add(time.Hour)); n != 10 {
			t.Errorf("%s got %d of 30 requests, want 10: all stay in rotation", x.addr(), n)
		}
	}
	// One recovers: the two others leave.
	b.failing.Store(false)
	for _, x := range []*healthApp{a, c} {
		waitHealth(t, p, x.addr(), "ejected", func(h proxy.AddrHealth) bool { return h.Ejected })
	}
	waitHealth(t, p, b.addr(), "in rotation", func(h proxy.AddrHealth) bool { return !h.Ejected && h.Failures == 0 })
	for range 10 {
		if got := send(t, client, url, ""); got.status != http.StatusOK {
			t.Fatalf("status %d, want 200", got.status)
		}
	}
	if n := b.between(time.Time{}, time.Now().Add(time.Hour)); n != 20 {
		t.Errorf("the healthy address got %d requests, want 10 + all 10 after the others left", n)
	}
}

func TestProxy_HealthNewAddressStartsInRotation(t *testing.T) {
	a, b := startHealthApp(t, "v1"), startHealthApp(t, "v1")
	p := startProxy(t, proxy.Config{})
	health := *testHealth
	health.FailureThreshold = 50 // so that no round ejects b again before we look, even if the test waits for a core
	setRoutes(t, p, rollout.Routes{Stable: backend("v1", a.app, b.app), Health: &health})
	b.failing.Store(true)
	waitHealth(t, p, b.addr(), "ejected", func(h proxy.AddrHealth) bool { return h.Ejected })

	// b leaves the table and comes back: it starts afresh, in rotation.
	setRoutes(t, p, rollout.Routes{Stable: backend("v1", a.app), Health: &health})
	setRoutes(t, p, rollout.Routes{Stable: backend("v1", a.app, b.app), Health: &health})
	for _, h := range p.Health() {
		if h.Addr == b.addr() && (h.Ejected || h.Failures != 0) {
			t.Fatalf("re-added address: %+v, want in rotation with no failure", h)
		}
	}
	waitHealth(t, p, b.addr(), "ejected again", func(h proxy.AddrHealth) bool { return h.Ejected })

	// Without health checks, every address is in rotation.
	setRoutes(t, p, rollout.Routes{Stable: backend("v1", a.app, b.app)})
	for _, h := range p.Health() {
		if h.Ejected {
			t.Fatalf("%s ejected without health checks", h.Addr)
		}
	}
	c := newClient(t)
	for range 4 {
		send(t, c, "http://"+p.Addr()+"/", "")
	}
	if n := b.between(time.Time{}, time.Now().Add(time.Hour)); n != 2 {
		t.Fatalf("b got %d of 4 requests with health checks off, want 2", n)
	}
}

func TestProxy_HealthRejectsBadChecks(t *testing.T) {
	stable := startApp(t, "v1", nil)
	p := startProxy(t, proxy.Config{})
	for _, tt := range []struct {
		health rollout.RouteHealth
		want   string
	}{
		{rollout.RouteHealth{Path: "healthz"}, `health.path: must start with /, got "healthz"`},
		{rollout.RouteHealth{Interval: -time.Second}, "health.interval: -1s is negative"},
		{rollout.RouteHealth{Timeout: -time.Second}, "health.timeout: -1s is negative"},
		{rollout.RouteHealth{FailureThreshold: -1}, "health.failure_threshold: -1 is negative"},
	} {
		t.Run(tt.want, func(t *testing.T) {
			err := p.SetRoutes(context.Background(), rollout.Routes{Stable: backend("v1", stable), Health: &tt.health})
			if err == nil || err.Error() != fmt.Sprintf("set routes: %s", tt.want) {
				t.Fatalf("error %v, want %q", err, tt.want)
			}
		})
	}
}
