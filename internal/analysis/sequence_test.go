package analysis

import (
	"errors"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

// TestEvidence_AnytimeValid looks after every single request at a release
// exactly at its limit: the evidence must cross 1/α in at most a share α
// of the runs, although it is looked at thousands of times each.
func TestEvidence_AnytimeValid(t *testing.T) {
	const runs, n, alpha = 1000, 1000, 0.05
	rng := rand.New(rand.NewPCG(1, 2))
	for _, tc := range []struct {
		name     string
		rate     float64
		evidence func(k, n uint64) float64
	}{
		{"above 2%", 0.02, func(k, n uint64) float64 { return logEvidenceAbove(k, n, 0.02) }},
		{"below 4% (pass side)", 0.04, func(k, n uint64) float64 { return logEvidenceBelow(k, n, 0.04, passOdds(2)) }},
		{"below 1% (bounds)", 0.01, func(k, n uint64) float64 { return logEvidenceBelow(k, n, 0.01, boundOdds) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			crossed := 0
			for range runs {
				var k uint64
				for i := uint64(1); i <= n; i++ {
					if rng.Float64() < tc.rate {
						k++
					}
					if tc.evidence(k, i) >= math.Log(1/alpha) {
						crossed++
						break
					}
				}
			}
			// The share must be at most α, give or take three standard errors.
			if got, limit := float64(crossed)/runs, alpha+3*math.Sqrt(alpha*(1-alpha)/runs); got > limit {
				t.Fatalf("crossed in %d of %d runs (%.3g), want at most %.3g", crossed, runs, got, limit)
			}
			t.Logf("crossed in %d of %d runs", crossed, runs)
		})
	}
}

func TestRateBounds_HoldTheEstimate(t *testing.T) {
	for _, tc := range [][2]uint64{{0, 10}, {1, 10}, {3, 20}, {50, 5000}, {7, 7}, {0, 3000}} {
		k, n := tc[0], tc[1]
		p := float64(k) / float64(n)
		lo, hi := lowerRate(k, n, 0.01), upperRate(k, n, 0.01)
		if lo > p || hi < p {
			t.Errorf("k=%d n=%d: bounds [%g, %g] do not hold %g", k, n, lo, hi, p)
		}
		if hi-lo <= 0 && n < 10000 {
			t.Errorf("k=%d n=%d: bounds [%g, %g] are empty", k, n, lo, hi)
		}
	}
	// More data, tighter bounds.
	if a, b := upperRate(30, 6000, 0.01), upperRate(300, 60000, 0.01); b >= a {
		t.Errorf("upper bound with 10x the data = %g, not below %g", b, a)
	}
}

func TestQuantileBounds_HoldTheQuantile(t *testing.T) {
	var h Histogram
	rng := rand.New(rand.NewPCG(3, 4))
	for range 20000 {
		h.Observe(time.Duration(math.Exp(math.Log(0.02)+0.5*rng.NormFloat64()) * float64(time.Second)))
	}
	trueP99 := math.Exp(math.Log(0.02) + 0.5*2.3263)
	lo, up := quantileBounds(&h, 0.99, 0.01, 0.01)
	if lo > trueP99 || up < trueP99 {
		t.Fatalf("p99 bounds [%g, %g] do not hold the true p99 %g", lo, up, trueP99)
	}
	if up > 1.5*trueP99 || lo < trueP99/1.5 {
		t.Fatalf("p99 bounds [%g, %g] are too loose around %g for 20000 requests", lo, up, trueP99)
	}
	var empty Histogram
	if lo, up := quantileBounds(&empty, 0.99, 0.01, 0.01); lo != 0 || !math.IsInf(up, 1) {
		t.Fatalf("empty: bounds [%g, %g], want [0, +Inf]", lo, up)
	}
}

func TestJudge_RelativeErrorRate(t *testing.T) {
	increase := []Gate{{Metric: "error_rate", MaxIncrease: 0.005, HasMaxIncrease: true}}
	ratio := []Gate{{Metric: "error_rate", MaxRatio: 1.5}}
	tests := []struct {
		name           string
		gates          []Gate
		canary, stable Sample
		want           Verdict
	}{
		// A flaky dependency makes the stable fail 0.6%: an absolute 0.5%
		// gate would fail every canary, the relative one passes this one.
		{"as flaky as stable", increase, sample(20000, 120, time.Millisecond), sample(200000, 1200, time.Millisecond), Pass},
		{"1.5% more than stable", increase, sample(20000, 420, time.Millisecond), sample(200000, 1200, time.Millisecond), Fail},
		{"gross failure, quiet stable", increase, sample(50, 20, time.Millisecond), sample(950, 0, time.Millisecond), Fail},
		{"too few to tell", increase, sample(30, 0, time.Millisecond), sample(600, 4, time.Millisecond), Inconclusive},
		{"ratio: as stable", ratio, sample(20000, 200, time.Millisecond), sample(200000, 2000, time.Millisecond), Pass},
		{"ratio: four times stable", ratio, sample(20000, 800, time.Millisecond), sample(200000, 2000, time.Millisecond), Fail},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, results := Judge(tt.gates, tt.canary, tt.stable, defaultOpts)
			if got != tt.want {
				t.Fatalf("Judge = %s, want %s (%s)", got, tt.want, results[0].Detail)
			}
		})
	}
}

func TestOptions_StepsShareTheBudget(t *testing.T) {
	// Evidence enough for one step is not enough when three steps share
	// the rollout's false-alarm budget.
	gate := []Gate{{Metric: "error_rate", Max: 0.01, HasMax: true}}
	canary := sample(40, 4, time.Millisecond)
	one, _ := Judge(gate, canary, Sample{}, defaultOpts)
	three := defaultOpts
	three.Steps = 3
	got, _ := Judge(gate, canary, Sample{}, three)
	if one != Fail || got != Inconclusive {
		t.Fatalf("one step: %s, three steps: %s; want fail, inconclusive", one, got)
	}
}

func TestSequence_SettleLeavesOutTheFirstWindow(t *testing.T) {
	gates := []Gate{{Metric: "latency_p99", MaxRatio: 2}}
	opts := defaultOpts
	opts.Settle = 10 * time.Second
	// The first 10 s: the canary's connections are cold, every request
	// 10x slower. Afterwards it is as fast as stable.
	coldC, coldS := sample(100, 0, 50*time.Millisecond), sample(1900, 0, 5*time.Millisecond)
	warmC, warmS := coldC.Add(sample(1000, 0, 5*time.Millisecond)), coldS.Add(sample(19000, 0, 5*time.Millisecond))
	if got, _ := Judge(gates, coldC, coldS, opts); got != Fail {
		t.Fatalf("without settling, the cold window = %s, want fail (or the test proves nothing)", got)
	}
	seq := NewSequence(gates, opts)
	if got, r := seq.Look(10*time.Second, coldC, coldS); got != Inconclusive || !strings.Contains(r[0].Detail, "settling") {
		t.Fatalf("first look = %s (%s), want inconclusive while settling", got, r[0].Detail)
	}
	if got, r := seq.Look(20*time.Second, warmC, warmS); got != Pass {
		t.Fatalf("after settling = %s (%s), want pass on the warm window", got, r[0].Detail)
	}
}

func TestSequence_ConsecutiveFailures(t *testing.T) {
	gates := []Gate{{Metric: "error_rate", Max: 0.01, HasMax: true, ConsecutiveFailures: 3}}
	seq := NewSequence(gates, defaultOpts)
	bad, good := sample(500, 100, time.Millisecond), sample(500, 0, time.Millisecond)
	steps := []struct {
		window Sample
		want   Verdict
	}{{bad, Inconclusive}, {bad, Inconclusive}, {good, Pass}, {bad, Inconclusive}, {bad, Inconclusive}, {bad, Fail}}
	for i, s := range steps {
		if got, r := seq.Look(time.Duration(i+1)*time.Second, s.window, Sample{}); got != s.want {
			t.Fatalf("look %d = %s (%s), want %s", i+1, got, r[0].Detail, s.want)
		}
	}
}

func TestSequence_SourceErrors(t *testing.T) {
	opts := defaultOpts
	opts.MaxSourceErrors = 3
	seq := NewSequence([]Gate{{Metric: "error_rate", Max: 0.01, HasMax: true}}, opts)
	down := errors.New("connection refused")
	for i, want := range []Verdict{Inconclusive, Inconclusive} {
		if got, _ := seq.SourceError(down); got != want {
			t.Fatalf("error %d = %s, want %s", i+1, got, want)
		}
	}
	// A good look in between starts the count again.
	seq.Look(time.Second, sample(500, 0, time.Millisecond), Sample{})
	for i, want := range []Verdict{Inconclusive, Inconclusive, Fail} {
		got, r := seq.SourceError(down)
		if got != want {
			t.Fatalf("error %d after a good look = %s, want %s", i+1, got, want)
		}
		if !strings.Contains(r[0].Detail, "connection refused") {
			t.Fatalf("detail %q does not name the error", r[0].Detail)
		}
	}
}

func TestSequence_FixedStableIsNotSettledAway(t *testing.T) {
	// A blue-green observe step judges green against what blue measured
	// before the switch: the same stable sample at every look.
	gates := []Gate{{Metric: "latency_p99", MaxRatio: 2}}
	opts := defaultOpts
	opts.Settle = time.Second
	blue := sample(5000, 0, 5*time.Millisecond)
	seq := NewSequence(gates, opts)
	seq.Look(time.Second, sample(100, 0, 50*time.Millisecond), blue)
	if got, r := seq.Look(2*time.Second, sample(400, 0, 50*time.Millisecond), blue); got != Fail {
		t.Fatalf("green 10x slower than blue = %s (%s), want fail", got, r[0].Detail)
	}
}
