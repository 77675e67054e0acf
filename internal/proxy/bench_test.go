package proxy_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/shipgate/shipgate/internal/proxy"
	"github.com/shipgate/shipgate/internal/rollout"
)

// The benchmarks compare a client calling the app directly with the same
// client calling it through the proxy, in the same run. BenchmarkProxy and
// BenchmarkProxyParallel also time the direct path right after their own
// loop and report the difference as added-ns/op, so the overhead is a
// ratio of two figures taken seconds apart on the same machine.

// benchParallelism is goroutines per GOMAXPROCS in the parallel variants:
// enough concurrent requests to keep both the proxy and the app busy.
const benchParallelism = 8

func benchApp(b *testing.B) *httptest.Server {
	b.Helper()
	body := []byte("hello from stable\n")
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write(body)
	}))
	b.Cleanup(app.Close)
	return app
}

func benchProxy(b *testing.B, app *httptest.Server) string {
	b.Helper()
	p := startProxy(b, proxy.Config{Logger: slog.New(slog.DiscardHandler)})
	setRoutes(b, p, rollout.Routes{Stable: rollout.Backend{Version: "v1",
		Addrs: []string{app.Listener.Addr().String()}}})
	return "http://" + p.Addr() + "/"
}

func benchClient(b *testing.B) *http.Client {
	tr := &http.Transport{MaxIdleConns: 256, MaxIdleConnsPerHost: 256}
	b.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

func get(c *http.Client, url string) error {
	req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return err
}

// timeRequests makes n requests over workers goroutines and returns how
// long they took.
func timeRequests(b *testing.B, c *http.Client, url string, n, workers int) time.Duration {
	b.Helper()
	start := time.Now()
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := w; i < n; i += workers {
				if err := get(c, url); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	return time.Since(start)
}

func reportRate(b *testing.B, elapsed time.Duration) {
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "req/s")
}

func BenchmarkDirect(b *testing.B) {
	app, c := benchApp(b), benchClient(b)
	b.ReportAllocs()
	for b.Loop() {
		if err := get(c, app.URL); err != nil {
			b.Fatal(err)
		}
	}
	reportRate(b, b.Elapsed())
}

func BenchmarkProxy(b *testing.B) {
	app := benchApp(b)
	url := benchProxy(b, app)
	c := benchClient(b) // after the proxy, so its connections close before the proxy shuts down
	b.ReportAllocs()
	for b.Loop() {
		if err := get(c, url); err != nil {
			b.Fatal(err)
		}
	}
	elapsed := b.Elapsed()
	reportRate(b, elapsed)
	direct := timeRequests(b, c, app.URL, b.N, 1)
	b.ReportMetric(float64(elapsed-direct)/float64(b.N), "added-ns/op")
}

func BenchmarkDirectParallel(b *testing.B) {
	app, c := benchApp(b), benchClient(b)
	b.ReportAllocs()
	b.SetParallelism(benchParallelism)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := get(c, app.URL); err != nil {
				b.Error(err)
				return
			}
		}
	})
	reportRate(b, b.Elapsed())
}

func BenchmarkProxyParallel(b *testing.B) {
	app := benchApp(b)
	url := benchProxy(b, app)
	// After the proxy, so that its connections close before the proxy
	// shuts down: a connection dialed but never used holds
	// http.Server.Shutdown for 5 seconds.
	c := benchClient(b)
	b.ReportAllocs()
	b.SetParallelism(benchParallelism)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := get(c, url); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	elapsed := b.Elapsed()
	reportRate(b, elapsed)
	direct := timeRequests(b, c, app.URL, b.N, benchParallelism*runtimeProcs())
	b.ReportMetric(float64(elapsed-direct)/float64(b.N), "added-ns/op")
}

func runtimeProcs() int { return runtime.GOMAXPROCS(0) }
