package proxy_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/shipgate/shipgate/internal/proxy"
	"github.com/shipgate/shipgate/internal/rollout"
)

// flagApp serves variant "on" of the checkout flag to even users and "off"
// to odd ones, as an app evaluating a flag would, and fails /pay for the
// users on "on".
func flagApp(t *testing.T, version string) *app {
	return startApp(t, version, func(w http.ResponseWriter, r *http.Request) {
		var n int
		_, _ = fmt.Sscanf(r.Header.Get("X-User"), "user-%d", &n)
		variant := "off"
		if n%2 == 0 {
			variant = "on"
		}
		w.Header().Set("X-Flag-Checkout", variant)
		// A second flag, spelled the way some apps spell headers.
		w.Header()["x-flag-theme"] = []string{"dark"}
		if r.URL.Path == "/pay" && variant == "on" {
			http.Error(w, "payment failed", http.StatusInternalServerError)
			return
		}
		_, _ = io.WriteString(w, version)
	})
}

func TestProxy_FlagStats(t *testing.T) {
	stable, canary := flagApp(t, "v1"), flagApp(t, "v2")
	plain := startApp(t, "v1", nil)
	p := startProxy(t, proxy.Config{Env: "production", StickyHeader: "X-User"})
	setRoutes(t, p, rollout.Routes{Stable: backend("v1", stable), Canary: backend("v2", canary), Weight: 50, Seed: "f"})
	url := "http://" + p.Addr()
	c := newClient(t)
	// 40 users browse (200) and pay (500 on "on"): 20 users on each
	// variant, whichever version serves them.
	for u := range 40 {
		key := fmt.Sprintf("user-%d", u)
		if got := send(t, c, url+"/", key); got.status != http.StatusOK {
			t.Fatalf("GET / for %s: %d", key, got.status)
		}
		send(t, c, url+"/pay", key)
	}
	// Responses without a flag header count under no flag.
	setRoutes(t, p, rollout.Routes{Stable: backend("v1", plain)})
	for range 5 {
		send(t, c, url+"/", "user-0")
	}

	stats, err := p.FlagStats(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		key, variant        string
		requests, status5xx uint64
	}{
		{"checkout", "on", 40, 20},
		{"checkout", "off", 40, 0},
		{"theme", "dark", 80, 20},
	}
	for _, tt := range tests {
		s := stats[tt.key][tt.variant]
		if s.Requests != tt.requests || s.Status5xx != tt.status5xx || s.TransportErrors != 0 {
			t.Errorf("%s=%s: requests/5xx/transport %d/%d/%d, want %d/%d/0", tt.key, tt.variant,
				s.Requests, s.Status5xx, s.TransportErrors, tt.requests, tt.status5xx)
		}
		if got := s.Latency.Count(); got != tt.requests {
			t.Errorf("%s=%s: latency histogram holds %d requests, want %d", tt.key, tt.variant, got, tt.requests)
		}
	}
	if len(stats) != 2 || len(stats["checkout"]) != 2 || len(stats["theme"]) != 1 {
		t.Errorf("flag stats %v, want exactly checkout=on|off and theme=dark", stats)
	}

	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(p.Collector())
	const want = `
# HELP shipgate_router_flag_requests_total Requests whose response reported a feature flag variant in an X-Flag-<key> header, by flag, variant and status class.
# TYPE shipgate_router_flag_requests_total counter
shipgate_router_flag_requests_total{code="2xx",env="production",flag="checkout",variant="off"} 40
shipgate_router_flag_requests_total{code="3xx",env="production",flag="checkout",variant="off"} 0
shipgate_router_flag_requests_total{code="4xx",env="production",flag="checkout",variant="off"} 0
shipgate_router_flag_requests_total{code="5xx",env="production",flag="checkout",variant="off"} 0
shipgate_router_flag_requests_total{code="transport_error",env="production",flag="checkout",variant="off"} 0
shipgate_router_flag_requests_total{code="2xx",env="production",flag="checkout",variant="on"} 20
shipgate_router_flag_requests_total{code="3xx",env="production",flag="checkout",variant="on"} 0
shipgate_router_flag_requests_total{code="4xx",env="production",flag="checkout",variant="on"} 0
shipgate_router_flag_requests_total{code="5xx",env="production",flag="checkout",variant="on"} 20
shipgate_router_flag_requests_total{code="transport_error",env="production",flag="checkout",variant="on"} 0
shipgate_router_flag_requests_total{code="2xx",env="production",flag="theme",variant="dark"} 60
shipgate_router_flag_requests_total{code="3xx",env="production",flag="theme",variant="dark"} 0
shipgate_router_flag_requests_total{code="4xx",env="production",flag="theme",variant="dark"} 0
shipgate_router_flag_requests_total{code="5xx",env="production",flag="theme",variant="dark"} 20
shipgate_router_flag_requests_total{code="transport_error",env="production",flag="theme",variant="dark"} 0
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "shipgate_router_flag_requests_total"); err != nil {
		t.Fatal(err)
	}
}

func TestProxy_FlagStatsAreBounded(t *testing.T) {
	// Every response reports a new key, and the key "many" a new variant.
	var count atomic.Int64
	noisy := startApp(t, "v1", func(w http.ResponseWriter, _ *http.Request) {
		n := count.Add(1)
		w.Header().Set(fmt.Sprintf("X-Flag-K%d", n), "on")
		w.Header().Set("X-Flag-Many", fmt.Sprintf("variant-%d", n))
		w.Header().Set("X-Flag-Long", strings.Repeat("x", 65))
	})
	p := startProxy(t, proxy.Config{Env: "production"})
	setRoutes(t, p, rollout.Routes{Stable: backend("v1", noisy)})
	c := newClient(t)
	const requests = 100
	for range requests {
		send(t, c, "http://"+p.Addr()+"/", "")
	}
	stats, err := p.FlagStats(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	// 64 keys are kept; "long" is one of them but has no variant short
	// enough to count.
	if got, want := len(stats), 63; got != want {
		t.Errorf("%d flag keys with counts, want %d (the limit of 64, less long)", got, want)
	}
	if got, want := len(stats["many"]), 8; got != want {
		t.Errorf("%d variants of flag many kept, want the limit of %d", got, want)
	}
	if _, ok := stats["long"]; ok {
		t.Errorf("a variant over 64 bytes was kept")
	}
	// Kept: "many" and "long" are among the first keys, then 62 kN keys
	// (k1..k62); 8 variants of many. Everything else is dropped.
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(p.Collector())
	wantDropped := (requests - 62) + (requests - 8) + requests
	want := fmt.Sprintf(`
# HELP shipgate_router_flag_dropped_total Flag variants reported by responses that the router did not count: beyond 64 keys, 8 variants per key, or 64 bytes.
# TYPE shipgate_router_flag_dropped_total counter
shipgate_router_flag_dropped_total{env="production"} %d
`, wantDropped)
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "shipgate_router_flag_dropped_total"); err != nil {
		t.Fatal(err)
	}
}
