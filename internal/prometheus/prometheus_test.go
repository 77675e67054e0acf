package prometheus

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	promclient "github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/shipgate/shipgate/internal/analysis"
)

// metricSource is the port the rollout engine is to declare; the guard
// keeps Source fitting it.
type metricSource interface {
	Window(ctx context.Context, version string, since time.Time) (analysis.Sample, error)
}

var _ metricSource = (*Source)(nil)

var (
	gates = []analysis.Gate{
		{Metric: "error_rate", Max: 0.05, HasMax: true},
		{Metric: "latency_p95", Max: 1, HasMax: true},
	}
	judgeOpts = analysis.Options{MinRequests: 50, FailConfidence: 0.95, PassConfidence: 0.95}
)

// TestSource_Window_realPrometheus runs the adapter against Debian's
// Prometheus scraping a real HTTP endpoint whose counters the test drives,
// and judges what it returns with the real analysis judge.
func TestSource_Window_realPrometheus(t *testing.T) {
	bin := prometheusBinary(t)
	app := newShop(t)
	promURL := startPrometheus(t, bin, app.addr)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	src, err := New(Options{URL: promURL, Namespace: "shop", App: "shop", Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	since := time.Now()

	// Until Prometheus has scraped twice inside the window, there is no
	// data; then the versions exist with no traffic yet: inconclusive.
	idle := waitWindow(ctx, t, src, "v1", since, func(s analysis.Sample) bool { return true })
	if idle.Requests != 0 {
		t.Fatalf("v1 before any traffic: %d requests, want 0", idle.Requests)
	}
	if v, _ := analysis.Judge(gates, idle, idle, judgeOpts); v != analysis.Inconclusive {
		t.Fatalf("judge of a window with no traffic = %s, want inconclusive", v)
	}

	// v1 healthy: 200 requests at 20ms. v3: 40% of 100 requests fail, at 300ms.
	app.serve("v1", 200, 0, 20*time.Millisecond)
	app.serve("v3", 60, 40, 300*time.Millisecond)

	stable := waitWindow(ctx, t, src, "v1", since, func(s analysis.Sample) bool { return s.Requests >= 200 && s.Latency.Count() >= 200 })
	canary := waitWindow(ctx, t, src, "v3", since, func(s analysis.Sample) bool { return s.Requests >= 100 && s.Latency.Count() >= 100 })
	t.Logf("v1 window: %d requests, %d 5xx; v3 window: %d requests, %d 5xx", stable.Requests, stable.Status5xx, canary.Requests, canary.Status5xx)

	t.Run("healthy version passes", func(t *testing.T) {
		v, results := analysis.Judge(gates, stable, stable, judgeOpts)
		if v != analysis.Pass {
			t.Fatalf("verdict %s, want pass: %+v", v, results)
		}
		if stable.Status5xx != 0 {
			t.Fatalf("v1 5xx = %d, want 0", stable.Status5xx)
		}
	})
	t.Run("40% errors fails", func(t *testing.T) {
		v, results := analysis.Judge(gates, canary, stable, judgeOpts)
		if v != analysis.Fail || results[0].Verdict != analysis.Fail {
			t.Fatalf("verdict %s, want fail on error_rate: %+v", v, results)
		}
		if rate := canary.ErrorRate(); rate < 0.37 || rate > 0.43 {
			t.Fatalf("v3 error rate %.3f, want 0.40", rate)
		}
	})
	t.Run("latency is reported at the upper le bound", func(t *testing.T) {
		// v3's 300ms requests fall in Prometheus' (0.25, 0.5] bucket, so
		// they count as 500ms; v1's 20ms ones as 25ms.
		if got, want := canary.Latency.Quantile(0.5), analysis.Bounds[analysis.BucketFor(500*time.Millisecond)]; got != want {
			t.Fatalf("v3 p50 = %s, want %s", got, want)
		}
		if got, want := stable.Latency.Quantile(0.99), analysis.Bounds[analysis.BucketFor(25*time.Millisecond)]; got != want {
			t.Fatalf("v1 p99 = %s, want %s", got, want)
		}
		// So a 400ms limit fails requests that took 300ms: the bucket
		// cannot say they were faster than 500ms.
		v, results := analysis.Judge([]analysis.Gate{{Metric: "latency_p95", Max: 0.4, HasMax: true}}, canary, stable, judgeOpts)
		if v != analysis.Fail {
			t.Fatalf("latency_p95 <= 400ms on v3: %s, want fail: %+v", v, results)
		}
	})
	t.Run("no data is ErrNoData, never a sample", func(t *testing.T) {
		s, err := src.Window(ctx, "v9", since)
		if !errors.Is(err, ErrNoData) {
			t.Fatalf("err = %v, want ErrNoData", err)
		}
		var qe *QueryError
		if errors.As(err, &qe) || s.Requests != 0 {
			t.Fatalf("no data must not be a query error nor a sample: %v, %+v", err, s)
		}
		if !strings.Contains(err.Error(), `version="v9"`) {
			t.Fatalf("error %q does not show the query", err)
		}
	})
	t.Run("a bad query names the query and Prometheus' error", func(t *testing.T) {
		q := DefaultQueries
		q.Requests = `sum(increase(http_requests_total{version="{{version}}"}[{{window}}])` // one ) short
		bad, err := New(Options{URL: promURL, Namespace: "shop", Queries: q})
		if err != nil {
			t.Fatal(err)
		}
		_, err = bad.Window(ctx, "v1", since)
		var qe *QueryError
		if !errors.As(err, &qe) {
			t.Fatalf("err = %v, want a *QueryError", err)
		}
		if qe.Name != "requests" || qe.Type != "bad_data" || !strings.Contains(qe.Message, "parse error") {
			t.Fatalf("query error %+v, want requests, bad_data, parse error", qe)
		}
		if !strings.Contains(err.Error(), `http_requests_total{version="v1"}`) {
			t.Fatalf("error %q does not show the query sent", err)
		}
	})
	t.Run("a scalar result counts like a one-series vector", func(t *testing.T) {
		q := DefaultQueries
		q.Requests = `scalar(` + q.Requests + `)`
		sc, err := New(Options{URL: promURL, Namespace: "shop", Queries: q})
		if err != nil {
			t.Fatal(err)
		}
		got, err := sc.Window(ctx, "v3", since)
		if err != nil {
			t.Fatal(err)
		}
		if got.Requests < 100 {
			t.Fatalf("scalar requests = %d, want at least 100", got.Requests)
		}
		// scalar() of nothing is NaN: still no data.
		if _, err := sc.Window(ctx, "v9", since); !errors.Is(err, ErrNoData) {
			t.Fatalf("scalar of no series: err = %v, want ErrNoData", err)
		}
	})
	t.Run("buckets without le are refused", func(t *testing.T) {
		q := DefaultQueries
		q.LatencyBuckets = `sum(increase(http_request_duration_seconds_bucket{version="{{version}}"}[{{window}}]))`
		bad, err := New(Options{URL: promURL, Namespace: "shop", Queries: q})
		if err != nil {
			t.Fatal(err)
		}
		_, err = bad.Window(ctx, "v1", since)
		var qe *QueryError
		if !errors.As(err, &qe) || qe.Name != "latency_buckets" || !strings.Contains(qe.Message, `"le"`) {
			t.Fatalf("err = %v, want a latency_buckets error about le", err)
		}
	})
	t.Run("presets run on Prometheus", func(t *testing.T) {
		for name, q := range Presets {
			p, err := New(Options{URL: promURL, Namespace: "shop", App: "shop", Queries: q})
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			_, err = p.Window(ctx, "v1", since)
			var qe *QueryError
			if errors.As(err, &qe) {
				t.Fatalf("%s: Prometheus refused a preset query: %v", name, err)
			}
			if name == "app" && err != nil {
				t.Fatalf("app: %v", err)
			}
			if name != "app" && !errors.Is(err, ErrNoData) {
				t.Fatalf("%s: err = %v, want ErrNoData (no such metrics here)", name, err)
			}
		}
	})
}

// waitWindow polls src until the window of version has data and meets ok.
func waitWindow(ctx context.Context, t *testing.T, src *Source, version string, since time.Time, ok func(analysis.Sample) bool) analysis.Sample {
	t.Helper()
	var last error
	for {
		s, err := src.Window(ctx, version, since)
		switch {
		case err == nil && ok(s):
			return s
		case err == nil:
			last = fmt.Errorf("window so far: %d requests, %d 5xx, %d latencies", s.Requests, s.Status5xx, s.Latency.Count())
		case errors.Is(err, ErrNoData):
			last = err
		default:
			t.Fatalf("window of %s: %v", version, err)
		}
		select {
		case <-ctx.Done():
			t.Fatalf("window of %s never came: %v", version, last)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// shop is an HTTP endpoint exporting the metrics DefaultQueries read, as
// an instrumented app would; serve drives its counters.
type shop struct {
	addr     string
	requests *promclient.CounterVec
	duration *promclient.HistogramVec
}

func newShop(t *testing.T) *shop {
	reg := promclient.NewRegistry()
	s := &shop{
		requests: promclient.NewCounterVec(promclient.CounterOpts{Name: "http_requests_total", Help: "Requests served."}, []string{"code", "version"}),
		duration: promclient.NewHistogramVec(promclient.HistogramOpts{Name: "http_request_duration_seconds", Help: "Request latency.",
			Buckets: []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5}}, []string{"version"}),
	}
	reg.MustRegister(s.requests, s.duration)
	// Series exist from the start, at 0, as an app that initialises its
	// counters exports them: increase() then sees the first requests.
	for _, v := range []string{"v1", "v3"} {
		s.requests.WithLabelValues("200", v)
		s.requests.WithLabelValues("500", v)
		s.duration.WithLabelValues(v)
	}
	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	t.Cleanup(srv.Close)
	s.addr = srv.Listener.Addr().String()
	return s
}

func (s *shop) serve(version string, ok, failed int, latency time.Duration) {
	s.requests.WithLabelValues("200", version).Add(float64(ok))
	s.requests.WithLabelValues("500", version).Add(float64(failed))
	for range ok + failed {
		s.duration.WithLabelValues(version).Observe(latency.Seconds())
	}
}

// prometheusBinary returns Debian's Prometheus, or skips loudly outside CI
// when it is missing (scripts/deps.sh test installs it in CI).
func prometheusBinary(t *testing.T) string {
	const bin = "/usr/bin/prometheus"
	if _, err := os.Stat(bin); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s: %v (CI=true: tests that need Prometheus must run; scripts/deps.sh test installs it)", bin, err)
		}
		t.Skipf("SKIPPED: %s not found (apt-get install prometheus, or run scripts/deps.sh test as root with SHIPGATE_INSTALL_DEPS=1)", bin)
	}
	return bin
}

// startPrometheus runs Prometheus on a free loopback port with its own
// config and storage, scraping target every 250ms, and returns its URL
// once it is ready and has scraped the target.
func startPrometheus(t *testing.T, bin, target string) string {
	dir := t.TempDir()
	config := fmt.Sprintf(`global:
  scrape_interval: 250ms
  scrape_timeout: 200ms
scrape_configs:
  - job_name: shop
    static_configs:
      - targets: [%q]
        labels: {namespace: shop}
`, target)
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()

	var logs syncBuffer
	cmd := exec.Command(bin,
		"--config.file="+filepath.Join(dir, "prometheus.yml"),
		"--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr,
		"--log.level=warn")
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
		if t.Failed() {
			t.Logf("prometheus output:\n%s", logs.String())
		}
	})

	url := "http://" + addr
	deadline := time.After(30 * time.Second)
	client := &http.Client{Timeout: time.Second}
	for {
		if resp, err := client.Get(url + "/-/ready"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return url
			}
		}
		select {
		case err := <-exited:
			exited <- err
			t.Fatalf("prometheus exited: %v\n%s", err, logs.String())
		case <-deadline:
			t.Fatalf("prometheus not ready after 30s\n%s", logs.String())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
