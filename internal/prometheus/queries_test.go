package prometheus

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shipgate/shipgate/internal/analysis"
)

func TestNew_validatesTemplates(t *testing.T) {
	tests := []struct {
		name    string
		opts    Options
		wantErr string
	}{
		{"defaults", Options{URL: "http://p:9090", Namespace: "shop"}, ""},
		{"not a url", Options{URL: "p:9090", Namespace: "shop"}, `url: "p:9090" is not an http(s) URL`},
		{"namespace missing", Options{URL: "http://p:9090"}, "queries.requests: uses {{namespace}} but no namespace is set"},
		{"bad namespace", Options{URL: "http://p:9090", Namespace: `shop"}`}, `namespace "shop\"}" cannot go into a PromQL query`},
		{"version outside a string", Options{URL: "http://p:9090", Queries: Queries{
			Requests: `sum(x{version={{version}}})`, Errors: `e{version="{{version}}"}`, LatencyBuckets: `l{version="{{version}}"}`}},
			"queries.requests: {{version}} must be inside a double-quoted label value"},
		{"version in a raw string", Options{URL: "http://p:9090", Queries: Queries{
			Requests: "x{version=`{{version}}`}", Errors: `e{version="{{version}}"}`, LatencyBuckets: `l{version="{{version}}"}`}},
			"queries.requests: {{version}} must be inside a double-quoted label value"},
		{"window inside a string", Options{URL: "http://p:9090", Queries: Queries{
			Requests: `x{version="{{version}}"}`, Errors: `e{version="{{version}}",w="{{window}}"}`, LatencyBuckets: `l{version="{{version}}"}`}},
			"queries.errors: {{window}} must be outside strings"},
		{"no version", Options{URL: "http://p:9090", Queries: Queries{
			Requests: `x{version="{{version}}"}`, Errors: `e{version="{{version}}"}`, LatencyBuckets: `sum by (le) (l)`}},
			"queries.latency_buckets: must select the version with {{version}}"},
		{"unknown placeholder", Options{URL: "http://p:9090", Queries: Queries{
			Requests: `x{version="{{version}}",pod="{{pod}}"}`, Errors: `e{version="{{version}}"}`, LatencyBuckets: `l{version="{{version}}"}`}},
			"queries.requests: unknown placeholder {{pod}}"},
		{"missing query", Options{URL: "http://p:9090", Queries: Queries{Requests: `x{version="{{version}}"}`}},
			"queries.errors: a query is required"},
		{"escaped quote keeps the string open", Options{URL: "http://p:9090", Queries: Queries{
			Requests: `x{a="\"",version="{{version}}"}`, Errors: `e{version="{{version}}"}`, LatencyBuckets: `l{version="{{version}}"}`}}, ""},
		{"bad unit", Options{URL: "http://p:9090", Namespace: "shop", Queries: func() Queries { q := DefaultQueries; q.LatencyUnit = "us"; return q }()},
			`queries.latency_unit: "us" is not seconds or milliseconds`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.opts)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("New: %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("New: %v, want an error containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestPresets_areValid(t *testing.T) {
	for name, q := range Presets {
		if _, err := New(Options{URL: "http://p:9090", Namespace: "shop", App: "shop", Queries: q}); err != nil {
			t.Errorf("preset %s: %v", name, err)
		}
	}
}

// TestSource_Window_refusesInjection checks that a version which would
// end the label value is refused before any query is sent.
func TestSource_Window_refusesInjection(t *testing.T) {
	var sent atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { sent.Add(1) }))
	defer srv.Close()
	src, err := New(Options{URL: srv.URL, Namespace: "shop"})
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []string{`v1"} or vector(1000) #`, `v1\`, "v1\n", "", `.*`, "v 1"} {
		if _, err := src.Window(context.Background(), v, time.Now().Add(-time.Minute)); err == nil || !strings.Contains(err.Error(), "cannot go into a PromQL query") {
			t.Errorf("version %q: err = %v, want a refusal", v, err)
		}
	}
	if n := sent.Load(); n != 0 {
		t.Fatalf("%d queries sent for refused versions", n)
	}
}

func TestRender(t *testing.T) {
	got := render(DefaultQueries.Errors, map[string]string{"version": "1.2.3+b4", "namespace": "shop", "window": "90s"})
	want := `sum(increase(http_requests_total{namespace="shop",version="1.2.3+b4",code=~"5.."}[90s]))`
	if got != want {
		t.Fatalf("render:\n got %s\nwant %s", got, want)
	}
}

func TestSource_histogram(t *testing.T) {
	at := analysis.BucketFor
	vec := func(pairs ...string) []sample {
		var out []sample
		for i := 0; i < len(pairs); i += 2 {
			out = append(out, sample{Metric: map[string]string{"le": pairs[i]}, Value: [2]any{1.0, pairs[i+1]}})
		}
		return out
	}
	tests := []struct {
		name  string
		scale float64
		in    []sample
		want  map[int]uint64
	}{
		{"each bucket at its upper bound, in any order", 1,
			vec("+Inf", "10", "0.1", "7", "0.025", "4", "1", "9"),
			map[int]uint64{at(25 * time.Millisecond): 4, at(100 * time.Millisecond): 3, at(time.Second): 2, analysis.NumBuckets - 1: 1}},
		{"milliseconds", 1e-3,
			vec("5", "2", "250", "5", "+Inf", "5"),
			map[int]uint64{at(5 * time.Millisecond): 2, at(250 * time.Millisecond): 3}},
		{"extrapolated fractions rounded, never negative", 1,
			vec("0.05", "3.6", "0.1", "3.4", "+Inf", "4.2"),
			map[int]uint64{at(50 * time.Millisecond): 4}},
		{"a bound beyond the analysis range overflows", 1,
			vec("100", "2", "+Inf", "2"),
			map[int]uint64{analysis.NumBuckets - 1: 2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &Source{scale: tt.scale}
			h, err := s.histogram(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			var want analysis.Histogram
			for i, n := range tt.want {
				want[i] = n
			}
			if h != want {
				for i := range h {
					if h[i] != want[i] {
						t.Errorf("bucket %d: got %d, want %d", i, h[i], want[i])
					}
				}
			}
		})
	}
}

// TestSource_Window_timesOut checks that a Prometheus that never answers
// costs at most the timeout, and that the error names the query.
func TestSource_Window_timesOut(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	defer srv.Close()
	defer close(release)
	src, err := New(Options{URL: srv.URL, Namespace: "shop", Timeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	_, err = src.Window(context.Background(), "v2", time.Now().Add(-time.Minute))
	var qe *QueryError
	if !errors.As(err, &qe) || qe.Type != "transport" || qe.Name != "requests" || !strings.Contains(err.Error(), `version="v2"`) {
		t.Fatalf("err = %v, want a transport error naming the requests query", err)
	}
}

// TestSource_Window_notPrometheus checks that an answer that is not the
// Prometheus API (a proxy's HTML error page) is reported as such.
func TestSource_Window_notPrometheus(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "<html>502 Bad Gateway</html>", http.StatusBadGateway)
	}))
	defer srv.Close()
	src, err := New(Options{URL: srv.URL, Namespace: "shop"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = src.Window(context.Background(), "v2", time.Now().Add(-time.Minute))
	var qe *QueryError
	if !errors.As(err, &qe) || qe.Status != http.StatusBadGateway || !strings.Contains(qe.Message, "502 Bad Gateway") {
		t.Fatalf("err = %v, want a bad_response naming HTTP 502", err)
	}
}

func TestQueriesFor(t *testing.T) {
	q, err := QueriesFor("", Queries{Errors: `sum(increase(http_requests_total{version="{{version}}",code=~"5..|429"}[{{window}}]))`})
	if err != nil {
		t.Fatal(err)
	}
	if q.Requests != DefaultQueries.Requests || q.LatencyBuckets != DefaultQueries.LatencyBuckets || !strings.Contains(q.Errors, "429") {
		t.Fatalf("QueriesFor(app, errors override) = %+v", q)
	}
	q, err = QueriesFor("istio", Queries{})
	if err != nil || q != Presets["istio"] {
		t.Fatalf("QueriesFor(istio) = %+v, %v", q, err)
	}
	if _, err := QueriesFor("linkerd", Queries{}); err == nil || err.Error() != `preset: "linkerd" is not one of app, ingress-nginx, istio` {
		t.Fatalf("QueriesFor(linkerd): %v", err)
	}
}
