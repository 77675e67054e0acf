package analysis

import (
	"fmt"
	"math"
	"strings"
	"time"
)

// Gate is one condition the canary must meet, as the judge sees it.
type Gate struct {
	// Metric is "error_rate" or "latency_pNN" (p50, p95, p99).
	Metric string
	// Max is an absolute limit: a fraction for error_rate, seconds for a
	// latency. Used when HasMax is true.
	Max    float64
	HasMax bool
	// MaxRatio, when above 0, limits the canary to MaxRatio times the
	// stable release's value in the same window: its latency at the same
	// quantile, or its error rate.
	MaxRatio float64
	// MaxIncrease limits the canary's error rate to the stable's plus this
	// fraction, in the same window. Used when HasMaxIncrease is true.
	MaxIncrease    float64
	HasMaxIncrease bool
	// ConsecutiveFailures is how many looks in a row the gate must fail
	// before a Sequence fails it; 0 means 1. Judge alone ignores it.
	ConsecutiveFailures int
}

// String describes the gate for people: "error_rate <= 1%".
func (g Gate) String() string {
	var limits []string
	if g.Metric == "error_rate" {
		if g.HasMax {
			limits = append(limits, percent(g.Max))
		}
		if g.HasMaxIncrease {
			limits = append(limits, "stable + "+percent(g.MaxIncrease))
		}
	}
	if g.MaxRatio > 0 {
		limits = append(limits, fmt.Sprintf("%gx stable", g.MaxRatio))
	}
	if g.Metric != "error_rate" && g.HasMax {
		limits = append(limits, seconds(g.Max))
	}
	return g.Metric + " <= " + strings.Join(limits, " and <= ")
}

// Options tune how much evidence a verdict needs.
type Options struct {
	// MinRequests is the least number of canary requests before a gate
	// may pass (and of stable requests before a latency gate relative to
	// stable may pass).
	MinRequests int
	// FailConfidence is the confidence needed to fail a gate: a release
	// that meets every gate is failed with probability at most
	// 1-FailConfidence over all the looks of all the Steps.
	FailConfidence float64
	// PassConfidence is the confidence needed to pass a gate: a release
	// at a gate's detection target (ErrorDetectFactor, LatencyDetectFactor)
	// passes a step with probability at most 1-PassConfidence.
	PassConfidence float64
	// Steps is how many analysed steps the rollout has; they share the
	// false-alarm budget 1-FailConfidence. 0 counts as 1.
	Steps int
	// Settle is how long after a weight change a Sequence leaves latency
	// out: its latency gates judge the windows that start at the first
	// look at least Settle after the step began.
	Settle time.Duration
	// MaxSourceErrors is how many looks in a row the metric source may
	// fail before a Sequence fails the step; 0 means DefaultMaxSourceErrors.
	MaxSourceErrors int
}

// ErrorDetectFactor and LatencyDetectFactor say how far past its limit a
// release must be for a gate to hold it back with PassConfidence: for
// error_rate, 1.9 times the limit (1.9 times the allowed increase or
// ratio for relative gates), a little inside twice the limit so that a
// release at twice its limit is held back in at least 99% of rollouts
// (see BENCHMARKS.md); for a latency quantile q, three times the allowed
// share 1-q of requests slower than the limit (for p99: 3% of requests
// slower than the limit, that is a p97 past it). The latency target is
// wider because healthy services have outliers: one slow request among a
// few hundred must not keep a gate from passing.
const (
	ErrorDetectFactor   = 1.9
	LatencyDetectFactor = 3
)

// minRequests is MinRequests as a count to compare with a sample's. A
// negative MinRequests is a caller's mistake, and like too little data it
// never lets a gate pass.
func (o Options) minRequests() uint64 {
	if o.MinRequests < 0 {
		return math.MaxUint64
	}
	return uint64(o.MinRequests)
}

// budget returns the false-alarm and the false-pass probabilities of a
// gate in one step: a gate's false-alarm budget for the rollout is shared
// equally by its steps (a union bound).
func (o Options) budget() (alpha, beta float64) {
	return (1 - o.FailConfidence) / float64(max(o.Steps, 1)), 1 - o.PassConfidence
}

// Judge judges the canary window against every gate, comparing it with
// the stable window where a gate is relative. The overall verdict is Fail
// if any gate fails, Pass if every gate passes, and Inconclusive otherwise.
//
// The windows are cumulative: everything since the step began. Each gate
// is a sequential test on a proportion (see docs/analysis.md): for
// error_rate the share of failed requests, for a latency quantile q the
// share of requests slower than the limit, which is at most 1-q when the
// canary's q-quantile is within it. A gate fails when the evidence that
// the proportion is above its limit reaches what FailConfidence asks,
// passes when the evidence that it is below a detection target past its
// limit (ErrorDetectFactor, LatencyDetectFactor)
// reaches what PassConfidence asks and there were at least MinRequests
// requests, and is inconclusive otherwise: no data and too little data
// are never a pass. Both kinds of evidence stay valid however often the
// growing window is judged.
func Judge(gates []Gate, canary, stable Sample, opts Options) (Verdict, []Result) {
	alpha, beta := opts.budget()
	results := make([]Result, 0, len(gates))
	for _, g := range gates {
		results = append(results, judgeGate(g, canary, stable, opts, alpha, beta))
	}
	return overall(results), results
}

func overall(results []Result) Verdict {
	v := Pass
	for _, r := range results {
		switch {
		case r.Verdict == Fail:
			v = Fail
		case r.Verdict == Inconclusive && v == Pass:
			v = Inconclusive
		}
	}
	return v
}

func judgeGate(g Gate, canary, stable Sample, opts Options, alpha, beta float64) Result {
	r := Result{Gate: g.String(), Verdict: Inconclusive}
	if canary.Requests == 0 {
		r.Detail = "no canary requests yet"
		return r
	}
	if g.Metric == "error_rate" {
		return judgeErrorRate(g, canary, stable, opts, alpha, beta, r)
	}
	q, ok := quantileOf(g.Metric)
	if !ok {
		r.Detail = "unknown metric " + g.Metric
		return r
	}
	return judgeLatency(g, q, canary, stable, opts, alpha, beta, r)
}

// judgeErrorRate tests the canary's error rate. Against an absolute max
// the null rate is max. Relative to stable, the stable's own rate is
// uncertain: its anytime-valid confidence bounds take its place (the
// upper one to fail, the lower one to pass), each at half of the gate's
// budget, the canary's test having the other half (Berger and Boos, 1994).
func judgeErrorRate(g Gate, canary, stable Sample, opts Options, alpha, beta float64, r Result) Result {
	n, k := canary.Requests, canary.Errors()
	r.Value = canary.ErrorRate()
	failAt, passAt := math.Inf(1), math.Inf(1)
	what := fmt.Sprintf("%d of %d canary requests failed (%s)", k, n, percent(r.Value))
	if g.HasMax {
		failAt, passAt = g.Max, ErrorDetectFactor*g.Max
	}
	if g.MaxRatio > 0 || g.HasMaxIncrease {
		alpha, beta = alpha/2, beta/2
		ns, ks := stable.Requests, stable.Errors()
		up, lo := upperRate(ks, ns, alpha), lowerRate(ks, ns, beta)
		if g.HasMaxIncrease {
			failAt, passAt = min(failAt, up+g.MaxIncrease), min(passAt, lo+ErrorDetectFactor*g.MaxIncrease)
		}
		if g.MaxRatio > 0 {
			failAt, passAt = min(failAt, g.MaxRatio*up), min(passAt, ErrorDetectFactor*g.MaxRatio*lo)
		}
		what += fmt.Sprintf(", stable %d of %d (%s, at most %s)", ks, ns, percent(stable.ErrorRate()), percent(up))
	}
	r.Threshold = failAt
	eFail := logEvidenceAbove(k, n, failAt)
	ePass := logEvidenceBelow(k, n, passAt, passOdds(ErrorDetectFactor))
	if passAt <= 0 {
		// Nothing is allowed: only a canary with no error at all passes.
		ePass = math.Inf(-1)
		if k == 0 {
			ePass = math.Inf(1)
		}
	}
	switch {
	case eFail >= math.Log(1/alpha):
		r.Verdict = Fail
		r.Detail = fmt.Sprintf("%s; the evidence that the rate is above %s is %s to 1, %s needed",
			what, percent(failAt), odds(eFail), odds(math.Log(1/alpha)))
	case ePass >= math.Log(1/beta) && n >= opts.minRequests():
		r.Verdict = Pass
		r.Detail = fmt.Sprintf("%s; the evidence that the rate is below %s is %s to 1",
			what, percent(passAt), odds(ePass))
	default:
		r.Detail = fmt.Sprintf("%s; not yet enough evidence either way: %s to 1 that the rate is above %s (%s needed), %s to 1 that it is below %s (%s needed)",
			what, odds(eFail), percent(failAt), odds(math.Log(1/alpha)), odds(ePass), percent(passAt), odds(math.Log(1/beta)))
		if n < opts.minRequests() {
			r.Detail += fmt.Sprintf("; %d canary requests, %d needed to pass", n, opts.MinRequests)
		}
	}
	return r
}

// judgeLatency tests the share of canary requests slower than the limit.
// Relative to stable, the limit is MaxRatio times the stable's quantile in
// the same window, whose uncertainty is accounted for as for error rates:
// the canary fails on requests slower than MaxRatio times an upper bound
// of the stable's quantile, and passes on requests no slower than
// MaxRatio times a lower bound.
func judgeLatency(g Gate, q float64, canary, stable Sample, opts Options, alpha, beta float64, r Result) Result {
	failAt, passAt := math.Inf(1), math.Inf(1)
	if g.HasMax {
		failAt, passAt = g.Max, g.Max
	}
	var stableQ time.Duration
	if g.MaxRatio > 0 {
		alpha, beta = alpha/2, beta/2
		lo, up := quantileBounds(&stable.Latency, q, beta, alpha)
		failAt, passAt = min(failAt, g.MaxRatio*up), min(passAt, g.MaxRatio*lo)
		stableQ = stable.Latency.Quantile(q)
	}
	canaryQ := canary.Latency.Quantile(q)
	if g.MaxRatio > 0 && stableQ > 0 {
		r.Value, r.Threshold = float64(canaryQ)/float64(stableQ), g.MaxRatio
	} else {
		r.Value, r.Threshold = canaryQ.Seconds(), failAt
	}
	// If the canary's q-quantile is within the limit, at most a share 1-q
	// of its requests are slower than the limit.
	allowed := 1 - q
	n := canary.Requests
	surelyAbove := canary.Latency.CountAbove(duration(failAt))
	maybeAbove := canary.Latency.CountAbove(lowerBucketEdge(duration(passAt)))
	eFail := logEvidenceAbove(surelyAbove, n, allowed)
	ePass := logEvidenceBelow(maybeAbove, n, LatencyDetectFactor*allowed, passOdds(LatencyDetectFactor))
	what := fmt.Sprintf("canary %s %s", g.Metric, canaryQ.Round(10*time.Microsecond))
	if g.MaxRatio > 0 {
		what += fmt.Sprintf(" vs stable %s (%d requests)", stableQ.Round(10*time.Microsecond), stable.Requests)
	}
	enoughStable := g.MaxRatio == 0 || stable.Requests >= opts.minRequests()
	switch {
	case eFail >= math.Log(1/alpha):
		r.Verdict = Fail
		r.Detail = fmt.Sprintf("%s: %d of %d canary requests slower than %s, at most %s allowed; evidence %s to 1, %s needed",
			what, surelyAbove, n, roundSeconds(failAt), percent(allowed), odds(eFail), odds(math.Log(1/alpha)))
	case ePass >= math.Log(1/beta) && n >= opts.minRequests() && enoughStable:
		r.Verdict = Pass
		r.Detail = fmt.Sprintf("%s: %d of %d canary requests slower than %s; evidence %s to 1 that fewer than %s are",
			what, maybeAbove, n, roundSeconds(passAt), odds(ePass), percent(LatencyDetectFactor*allowed))
	default:
		r.Detail = fmt.Sprintf("%s: not yet enough evidence either way: %d of %d canary requests slower than %s (%s to 1 that over %s are, %s needed), %d slower than %s (%s to 1 that under %s are, %s needed)",
			what, surelyAbove, n, roundSeconds(failAt), odds(eFail), percent(allowed), odds(math.Log(1/alpha)),
			maybeAbove, roundSeconds(passAt), odds(ePass), percent(LatencyDetectFactor*allowed), odds(math.Log(1/beta)))
		switch {
		case !enoughStable:
			r.Detail += fmt.Sprintf("; only %d stable requests to compare with, %d needed to pass", stable.Requests, opts.MinRequests)
		case n < opts.minRequests():
			r.Detail += fmt.Sprintf("; %d canary requests, %d needed to pass", n, opts.MinRequests)
		}
	}
	return r
}

// duration converts seconds to a Duration, +Inf to the largest one.
func duration(s float64) time.Duration {
	if s >= math.MaxInt64/float64(time.Second) {
		return math.MaxInt64
	}
	return time.Duration(s * float64(time.Second))
}

func roundSeconds(s float64) string {
	if math.IsInf(s, 1) {
		return "any limit (not enough stable requests for a bound)"
	}
	return duration(s).Round(10 * time.Microsecond).String()
}

// odds formats a log evidence as a betting score: "3.2e+04".
func odds(logE float64) string {
	switch {
	case math.IsInf(logE, 1):
		return "unbounded"
	case logE > 700:
		return "1e+300"
	}
	return fmt.Sprintf("%.3g", math.Exp(logE))
}

// lowerBucketEdge returns the lower edge of the bucket that holds d, so that
// every observation in that bucket or above may be slower than d.
func lowerBucketEdge(d time.Duration) time.Duration {
	i := BucketFor(d)
	if i == 0 {
		return 0
	}
	return Bounds[i-1] + 1
}

func quantileOf(metric string) (float64, bool) {
	switch metric {
	case "latency_p50":
		return 0.50, true
	case "latency_p95":
		return 0.95, true
	case "latency_p99":
		return 0.99, true
	}
	return 0, false
}

func percent(f float64) string {
	return fmt.Sprintf("%.3g%%", f*100)
}

func seconds(s float64) string {
	return time.Duration(s * float64(time.Second)).String()
}

// RequestsToPass returns the least number of canary requests, none of them
// failed, with which an absolute error_rate gate g passes under opts: the
// evidence a bake must gather before it can end. It reports false for the
// other gates, whose need depends on the stable release's traffic too.
func RequestsToPass(g Gate, opts Options) (int, bool) {
	if g.Metric != "error_rate" || !g.HasMax || g.HasMaxIncrease || g.MaxRatio > 0 {
		return 0, false
	}
	const most = 1 << 24
	n, ok := firstTrue(most, func(n int) bool {
		v, _ := Judge([]Gate{g}, Sample{Requests: uint64(n)}, Sample{}, opts) //nolint:gosec // n < 2^24
		return v == Pass
	})
	return n, ok
}
