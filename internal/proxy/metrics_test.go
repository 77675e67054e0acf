package proxy_test

import (
	"io"
	"math"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/shipgate/shipgate/internal/proxy"
	"github.com/shipgate/shipgate/internal/rollout"
)

func TestProxy_Collector(t *testing.T) {
	stable := startApp(t, "v1", func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(5 * time.Millisecond)
		_, _ = io.WriteString(w, "v1")
	})
	canary := startApp(t, "v2", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/missing" {
			http.NotFound(w, r)
			return
		}
		http.Error(w, "boom", http.StatusInternalServerError)
	})
	p := startProxy(t, proxy.Config{Env: "production"})
	c := newClient(t)
	url := "http://" + p.Addr()

	setRoutes(t, p, rollout.Routes{Stable: backend("v1", stable), Canary: backend("v2", canary), Weight: 0})
	for range 3 {
		send(t, c, url+"/", "")
	}
	setRoutes(t, p, rollout.Routes{Stable: backend("v1", stable), Canary: backend("v2", canary), Weight: 100})
	send(t, c, url+"/", "")
	send(t, c, url+"/missing", "")
	setRoutes(t, p, rollout.Routes{Stable: backend("v1", stable), Canary: backend("v2", canary), Weight: 25})

	reg := prometheus.NewPedanticRegistry()
	if err := reg.Register(p.Collector()); err != nil {
		t.Fatalf("register: %v", err)
	}
	const want = `
# HELP shipgate_router_canary_weight Percentage of users the builtin router sends to the canary.
# TYPE shipgate_router_canary_weight gauge
shipgate_router_canary_weight{env="production"} 25
# HELP shipgate_router_requests_total Requests the builtin router finished, by version and status class; transport_error means the backend never answered.
# TYPE shipgate_router_requests_total counter
shipgate_router_requests_total{code="2xx",env="production",version="v1"} 3
shipgate_router_requests_total{code="3xx",env="production",version="v1"} 0
shipgate_router_requests_total{code="4xx",env="production",version="v1"} 0
shipgate_router_requests_total{code="5xx",env="production",version="v1"} 0
shipgate_router_requests_total{code="transport_error",env="production",version="v1"} 0
shipgate_router_requests_total{code="2xx",env="production",version="v2"} 0
shipgate_router_requests_total{code="3xx",env="production",version="v2"} 0
shipgate_router_requests_total{code="4xx",env="production",version="v2"} 1
shipgate_router_requests_total{code="5xx",env="production",version="v2"} 1
shipgate_router_requests_total{code="transport_error",env="production",version="v2"} 0
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want),
		"shipgate_router_canary_weight", "shipgate_router_requests_total"); err != nil {
		t.Fatal(err)
	}
	if problems, err := testutil.GatherAndLint(reg); err != nil || len(problems) != 0 {
		t.Fatalf("lint: %v %v", problems, err)
	}

	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var checked int
	for _, f := range families {
		if f.GetName() != "shipgate_router_request_duration_seconds" {
			continue
		}
		for _, m := range f.GetMetric() {
			if m.GetLabel()[1].GetValue() != "v1" { // labels sort as env, version
				continue
			}
			h := m.GetHistogram()
			if got, want := h.GetSampleCount(), uint64(3); got != want {
				t.Errorf("v1 histogram count %d, want %d", got, want)
			}
			// Upper bounds are loose: a busy machine may hold a request
			// for a while; only the 5ms floor is the app's.
			if sum := h.GetSampleSum(); sum < 0.015 || sum > 30 {
				t.Errorf("v1 histogram sum %.4fs, want about 3 × 5ms", sum)
			}
			buckets := h.GetBucket()
			if n := len(buckets); n < 15 || n > 20 {
				t.Errorf("%d histogram buckets, want 15 to 20", n)
			}
			// Every 5ms request is above 4ms and at or below 10s.
			for _, b := range buckets {
				bound, count := b.GetUpperBound(), b.GetCumulativeCount()
				switch {
				case bound < 0.004 && count != 0:
					t.Errorf("bucket le=%g holds %d requests, want 0", bound, count)
				case bound >= 10 && count != 3:
					t.Errorf("bucket le=%g holds %d requests, want 3", bound, count)
				}
			}
			if first, last := buckets[0].GetUpperBound(), buckets[len(buckets)-1].GetUpperBound(); math.Abs(first-0.0001) > 1e-9 || last < 10 {
				t.Errorf("buckets run from %gs to %gs, want 100µs to over 10s", first, last)
			}
			checked++
		}
	}
	if checked != 1 {
		t.Fatalf("found %d duration histograms for v1, want 1", checked)
	}
}

func TestProxy_NoReleaseCountedAsNone(t *testing.T) {
	p := startProxy(t, proxy.Config{Env: "production"})
	c := newClient(t)
	for range 3 {
		if got := send(t, c, "http://"+p.Addr()+"/", ""); got.status != http.StatusServiceUnavailable {
			t.Fatalf("status %d, want 503", got.status)
		}
	}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(p.Collector())
	const want = `
# HELP shipgate_router_requests_total Requests the builtin router finished, by version and status class; transport_error means the backend never answered.
# TYPE shipgate_router_requests_total counter
shipgate_router_requests_total{code="2xx",env="production",version="none"} 0
shipgate_router_requests_total{code="3xx",env="production",version="none"} 0
shipgate_router_requests_total{code="4xx",env="production",version="none"} 0
shipgate_router_requests_total{code="5xx",env="production",version="none"} 3
shipgate_router_requests_total{code="transport_error",env="production",version="none"} 0
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "shipgate_router_requests_total"); err != nil {
		t.Fatal(err)
	}
	// The engine judges versions from Stats: "none" is not one.
	stats, err := p.Stats(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(stats) != 0 {
		t.Fatalf("stats %v, want none for requests no version answered", stats)
	}
}
