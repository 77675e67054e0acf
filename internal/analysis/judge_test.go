package analysis

import (
	"testing"
	"time"
)

var defaultOpts = Options{MinRequests: 50, FailConfidence: 0.99, PassConfidence: 0.95}

func sample(requests, errors uint64, latency time.Duration) Sample {
	s := Sample{Requests: requests, Status5xx: errors}
	s.Latency[BucketFor(latency)] = requests
	return s
}

func TestJudge_ErrorRate(t *testing.T) {
	gate := []Gate{{Metric: "error_rate", Max: 0.01, HasMax: true}}
	stable := sample(10000, 0, 5*time.Millisecond)
	tests := []struct {
		name             string
		requests, errors uint64
		want             Verdict
	}{
		// A canary failing 40% of payments, payments being 30% of traffic,
		// fails about 12% of requests: a few dozen requests convict it.
		{"40pct payments failing after 50 requests", 50, 6, Fail},
		{"four of ten", 10, 4, Fail},
		// Two errors in ten is what a 1% release shows 0.4% of the time:
		// a test that stays valid over every look waits for more.
		{"two of ten", 10, 2, Inconclusive},
		{"clean but too few", 40, 0, Inconclusive},
		{"clean but not yet sure", 100, 0, Inconclusive},
		{"clean and enough", 400, 0, Pass},
		// At the limit the release passes: only twice the limit is held back.
		{"at the limit", 5000, 50, Pass},
		{"well within", 5000, 20, Pass},
		{"twice the limit", 5000, 100, Fail},
		{"slightly above with much data", 100000, 1300, Fail},
		{"no traffic", 0, 0, Inconclusive},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, results := Judge(gate, sample(tt.requests, tt.errors, 5*time.Millisecond), stable, defaultOpts)
			if got != tt.want {
				t.Fatalf("Judge = %s, want %s (%s)", got, tt.want, results[0].Detail)
			}
			if results[0].Detail == "" {
				t.Fatal("result has no detail")
			}
		})
	}
}

func TestJudge_LatencyRatio(t *testing.T) {
	gate := []Gate{{Metric: "latency_p99", MaxRatio: 2}}
	stable := sample(5000, 0, 5*time.Millisecond)
	tests := []struct {
		name     string
		canary   Sample
		stable   Sample
		want     Verdict
		minRatio float64
	}{
		{"6x slower convicts quickly", sample(30, 0, 30*time.Millisecond), stable, Fail, 5},
		{"as fast, enough requests", sample(500, 0, 5*time.Millisecond), stable, Pass, 0},
		{"as fast, too few requests", sample(60, 0, 5*time.Millisecond), stable, Inconclusive, 0},
		{"stable too quiet to compare", sample(500, 0, 5*time.Millisecond), sample(10, 0, 5*time.Millisecond), Inconclusive, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, results := Judge(gate, tt.canary, tt.stable, defaultOpts)
			if got != tt.want {
				t.Fatalf("Judge = %s, want %s (%s)", got, tt.want, results[0].Detail)
			}
			if tt.minRatio > 0 && results[0].Value < tt.minRatio {
				t.Fatalf("value = %g, want the measured ratio >= %g", results[0].Value, tt.minRatio)
			}
		})
	}
}

func TestJudge_LatencyTail(t *testing.T) {
	// 3% of the canary's requests are 10x slower: its p99 is far past
	// twice the stable's although its median is the same.
	canary := Sample{Requests: 1000}
	canary.Latency[BucketFor(5*time.Millisecond)] = 970
	canary.Latency[BucketFor(50*time.Millisecond)] = 30
	gate := []Gate{{Metric: "latency_p99", MaxRatio: 2}, {Metric: "latency_p50", MaxRatio: 2}}
	got, results := Judge(gate, canary, sample(5000, 0, 5*time.Millisecond), defaultOpts)
	if got != Fail {
		t.Fatalf("Judge = %s, want fail", got)
	}
	if results[0].Verdict != Fail || results[1].Verdict != Pass {
		t.Fatalf("p99 %s, p50 %s; want fail, pass", results[0].Verdict, results[1].Verdict)
	}
}

func TestJudge_AbsoluteLatency(t *testing.T) {
	gate := []Gate{{Metric: "latency_p95", Max: 0.1, HasMax: true}}
	if got, r := Judge(gate, sample(500, 0, 300*time.Millisecond), Sample{}, defaultOpts); got != Fail {
		t.Fatalf("300ms against 100ms: %s (%s)", got, r[0].Detail)
	}
	if got, r := Judge(gate, sample(500, 0, 20*time.Millisecond), Sample{}, defaultOpts); got != Pass {
		t.Fatalf("20ms against 100ms: %s (%s)", got, r[0].Detail)
	}
}

func TestHistogram_Quantile(t *testing.T) {
	var h Histogram
	for i := 1; i <= 1000; i++ {
		h.Observe(time.Duration(i) * time.Millisecond)
	}
	for _, tc := range []struct {
		q    float64
		want time.Duration
	}{{0.5, 500 * time.Millisecond}, {0.99, 990 * time.Millisecond}} {
		got := h.Quantile(tc.q)
		if got < tc.want || float64(got) > float64(tc.want)*bucketGrowth {
			t.Errorf("Quantile(%g) = %s, want within one bucket above %s", tc.q, got, tc.want)
		}
	}
	var empty Histogram
	if got := empty.Quantile(0.99); got != 0 {
		t.Errorf("empty Quantile = %s, want 0", got)
	}
}

func TestBucketFor_RespectsBounds(t *testing.T) {
	for i, b := range Bounds {
		if got := BucketFor(b); got != i {
			t.Fatalf("BucketFor(bound %d = %s) = %d", i, b, got)
		}
		if got := BucketFor(b + 1); got != i+1 {
			t.Fatalf("BucketFor(bound %d + 1ns) = %d, want %d", i, got, i+1)
		}
	}
	if got := BucketFor(time.Hour); got != NumBuckets-1 {
		t.Fatalf("BucketFor(1h) = %d, want overflow bucket", got)
	}
}

func TestSample_Sub(t *testing.T) {
	a := sample(100, 5, time.Millisecond)
	b := sample(150, 7, time.Millisecond)
	w := b.Sub(a)
	if got, want := w.Requests, uint64(50); got != want {
		t.Fatalf("requests = %d, want %d", got, want)
	}
	if got, want := w.Errors(), uint64(2); got != want {
		t.Fatalf("errors = %d, want %d", got, want)
	}
	// A router restart resets counters: the window is the new sample.
	if got := a.Sub(b); got.Requests != a.Requests {
		t.Fatalf("after reset: requests = %d, want %d", got.Requests, a.Requests)
	}
}

func BenchmarkJudge(b *testing.B) {
	gates := []Gate{{Metric: "error_rate", Max: 0.01, HasMax: true}, {Metric: "latency_p99", MaxRatio: 2}}
	canary, stable := sample(3000, 12, 5*time.Millisecond), sample(30000, 20, 5*time.Millisecond)
	for b.Loop() {
		Judge(gates, canary, stable, defaultOpts)
	}
}
