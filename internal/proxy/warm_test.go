package proxy_test

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shipgate/shipgate/internal/proxy"
	"github.com/shipgate/shipgate/internal/rollout"
)

// A new canary gets its connections before its first user: the users of
// a canary must not pay for the dials, or it looks slower than its stable.
func TestProxy_WarmsConnectionsToNewAddresses(t *testing.T) {
	// The warm-up gives up after 300ms so as not to hold up a routing
	// change: on a busy machine it may, and then the test says nothing.
	// It tries again; three slow warm-ups in a row fail it.
	for attempt := 1; warmOnce(t); attempt++ {
		if attempt == 3 {
			t.Fatal("the warm-up hit its time bound three times in a row")
		}
		t.Logf("attempt %d: the warm-up hit its time bound; again", attempt)
	}
}

// warmOnce runs the test once and reports whether the routing change took
// as long as the warm-up's bound, in which case it checked nothing.
func warmOnce(t *testing.T) (tooSlow bool) {
	var conns atomic.Int64
	canary := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "v2")
	}))
	canary.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	canary.Start()
	t.Cleanup(canary.Close)
	stable := startApp(t, "v1", nil)
	p := startProxy(t, proxy.Config{StickyHeader: "X-User"})
	health := &rollout.RouteHealth{Path: "/healthz", Interval: time.Hour, Timeout: time.Second, FailureThreshold: 3}
	setRoutes(t, p, rollout.Routes{Stable: backend("v1", stable), Health: health})
	if got := conns.Load(); got != 0 {
		t.Fatalf("%d connections to an address not in the table", got)
	}
	began := time.Now()
	setRoutes(t, p, rollout.Routes{Stable: backend("v1", stable), Health: health,
		Canary: rollout.Backend{Version: "v2", Addrs: []string{canary.Listener.Addr().String()}}, Weight: 100})
	if time.Since(began) >= 300*time.Millisecond {
		return true
	}
	warmed := conns.Load()
	if warmed == 0 {
		t.Fatal("no connection was opened to the new canary before it got users")
	}
	// Sequential user requests reuse the warm connections: no new dial.
	c := &http.Client{}
	url := "http://" + p.Addr() + "/"
	for range 10 {
		if got := send(t, c, url, ""); got.version != "v2" {
			t.Fatalf("answered by %q, want v2", got.version)
		}
	}
	if got := conns.Load(); got != warmed {
		t.Fatalf("users opened %d new connections to the canary after the warm-up", got-warmed)
	}
	return false
}
