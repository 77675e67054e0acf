package sim

import (
	"fmt"
	"math"
	"time"

	"github.com/shipgate/shipgate/internal/analysis"
)

// legacyOptions are the options of the judge before issue 11.
type legacyOptions struct {
	MinRequests    int
	FailConfidence float64
	PassConfidence float64
}

func (o legacyOptions) minRequests() uint64 { return uint64(max(o.MinRequests, 0)) }

// legacyJudge is the judge before issue 11: an exact binomial test at
// each look, as if it were the only one. It is kept to compare with.
//
// legacyJudge judges the canary window against every gate, comparing it with
// the stable window where a gate is relative. The overall verdict is analysis.Fail
// if any gate fails, analysis.Pass if every gate passes, and analysis.Inconclusive otherwise.
//
// Each gate is a one-sided test on a proportion, using exact binomial
// (Clopper-Pearson) bounds: for error_rate the proportion of failed requests; for a latency
// quantile q the proportion of requests slower than the limit, which must
// be at most 1-q if the canary's q-quantile is within the limit. A gate
// fails when the lower bound at FailConfidence is above the allowed
// proportion, passes when the upper bound at PassConfidence is at or below
// it and there were at least MinRequests requests, and is inconclusive
// otherwise: too little data is never a pass.
func legacyJudge(gates []analysis.Gate, canary, stable analysis.Sample, opts legacyOptions) (analysis.Verdict, []analysis.Result) {
	results := make([]analysis.Result, 0, len(gates))
	overall := analysis.Pass
	for _, g := range gates {
		r := legacyjudgeGate(g, canary, stable, opts)
		results = append(results, r)
		switch {
		case r.Verdict == analysis.Fail:
			overall = analysis.Fail
		case r.Verdict == analysis.Inconclusive && overall == analysis.Pass:
			overall = analysis.Inconclusive
		}
	}
	return overall, results
}

func legacyjudgeGate(g analysis.Gate, canary, stable analysis.Sample, opts legacyOptions) analysis.Result {
	r := analysis.Result{Gate: g.Metric, Verdict: analysis.Inconclusive}
	if canary.Requests == 0 {
		r.Detail = "no canary requests yet"
		return r
	}
	if g.Metric == "error_rate" {
		return legacyjudgeErrorRate(g, canary, opts, r)
	}
	q, ok := legacyquantileOf(g.Metric)
	if !ok {
		r.Detail = "unknown metric " + g.Metric
		return r
	}
	return legacyjudgeLatency(g, q, canary, stable, opts, r)
}

func legacyjudgeErrorRate(g analysis.Gate, canary analysis.Sample, opts legacyOptions, r analysis.Result) analysis.Result {
	n, k := canary.Requests, canary.Errors()
	r.Value, r.Threshold = canary.ErrorRate(), g.Max
	lo := legacylowerBound(k, n, opts.FailConfidence)
	hi := legacyupperBound(k, n, opts.PassConfidence)
	switch {
	case lo > g.Max:
		r.Verdict = analysis.Fail
		r.Detail = fmt.Sprintf("%d of %d canary requests failed (%s); at %s confidence the rate is at least %s, above %s",
			canary.Errors(), canary.Requests, legacypercent(r.Value), legacypercent(opts.FailConfidence), legacypercent(lo), legacypercent(g.Max))
	case hi <= g.Max && canary.Requests >= opts.minRequests():
		r.Verdict = analysis.Pass
		r.Detail = fmt.Sprintf("%d of %d canary requests failed (%s); at %s confidence the rate is at most %s",
			canary.Errors(), canary.Requests, legacypercent(r.Value), legacypercent(opts.PassConfidence), legacypercent(hi))
	default:
		r.Detail = fmt.Sprintf("%d of %d canary requests failed (%s); not yet enough evidence either way (%s to %s)",
			canary.Errors(), canary.Requests, legacypercent(r.Value), legacypercent(lo), legacypercent(hi))
	}
	return r
}

func legacyjudgeLatency(g analysis.Gate, q float64, canary, stable analysis.Sample, opts legacyOptions, r analysis.Result) analysis.Result {
	limit := time.Duration(math.MaxInt64)
	var stableQ time.Duration
	if g.MaxRatio > 0 {
		if stable.Requests < opts.minRequests() {
			r.Detail = fmt.Sprintf("only %d stable requests to compare with, need %d", stable.Requests, opts.MinRequests)
			return r
		}
		stableQ = stable.Latency.Quantile(q)
		limit = time.Duration(g.MaxRatio * float64(stableQ))
	}
	if g.HasMax {
		limit = min(limit, time.Duration(g.Max*float64(time.Second)))
	}
	canaryQ := canary.Latency.Quantile(q)
	if g.MaxRatio > 0 && stableQ > 0 {
		r.Value, r.Threshold = float64(canaryQ)/float64(stableQ), g.MaxRatio
	} else {
		r.Value, r.Threshold = canaryQ.Seconds(), limit.Seconds()
	}
	// If the canary's q-quantile is within the limit, at most a share 1-q
	// of its requests are slower than the limit.
	allowed := 1 - q
	n := canary.Requests
	surelyAbove := canary.Latency.CountAbove(limit)
	maybeAbove := canary.Latency.CountAbove(legacylowerBucketEdge(limit))
	lo := legacylowerBound(surelyAbove, n, opts.FailConfidence)
	hi := legacyupperBound(maybeAbove, n, opts.PassConfidence)
	what := fmt.Sprintf("canary %s %s", g.Metric, canaryQ.Round(10*time.Microsecond))
	if stableQ > 0 {
		what += fmt.Sprintf(" vs stable %s", stableQ.Round(10*time.Microsecond))
	}
	switch {
	case lo > allowed:
		r.Verdict = analysis.Fail
		r.Detail = fmt.Sprintf("%s: %d of %d canary requests slower than %s, at most %s allowed",
			what, surelyAbove, canary.Requests, limit.Round(10*time.Microsecond), legacypercent(allowed))
	case hi <= allowed && canary.Requests >= opts.minRequests():
		r.Verdict = analysis.Pass
		r.Detail = fmt.Sprintf("%s: %d of %d canary requests slower than %s", what, maybeAbove, canary.Requests, limit.Round(10*time.Microsecond))
	default:
		r.Detail = fmt.Sprintf("%s: %d of %d canary requests slower than %s; not yet enough evidence either way",
			what, surelyAbove, canary.Requests, limit.Round(10*time.Microsecond))
	}
	return r
}

// lowerBucketEdge returns the lower edge of the bucket that holds d, so that
// every observation in that bucket or above may be slower than d.
func legacylowerBucketEdge(d time.Duration) time.Duration {
	i := analysis.BucketFor(d)
	if i == 0 {
		return 0
	}
	return analysis.Bounds[i-1] + 1
}

func legacyquantileOf(metric string) (float64, bool) {
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

// lowerBound is the one-sided exact (Clopper-Pearson) lower confidence
// bound of a proportion after k events in n trials: the smallest p for which
// seeing k or more events still has probability 1-confidence. Exact bounds
// matter at the small counts a young canary has, where normal
// approximations convict on a single unlucky error.
func legacylowerBound(k, n uint64, confidence float64) float64 {
	if n == 0 || k == 0 {
		return 0
	}
	alpha := 1 - confidence
	// P(X >= k | p) = I_p(k, n-k+1) grows with p.
	return legacybisect(func(p float64) bool { return legacyregIncBeta(float64(k), float64(n-k+1), p) < alpha })
}

// upperBound is the one-sided exact upper confidence bound: the largest p
// for which seeing k or fewer events still has probability 1-confidence.
func legacyupperBound(k, n uint64, confidence float64) float64 {
	if n == 0 || k >= n {
		return 1
	}
	alpha := 1 - confidence
	// P(X <= k | p) = 1 - I_p(k+1, n-k) falls with p.
	return legacybisect(func(p float64) bool { return 1-legacyregIncBeta(float64(k+1), float64(n-k), p) > alpha })
}

// bisect returns the p in [0,1] where below(p) turns from true to false.
func legacybisect(below func(p float64) bool) float64 {
	lo, hi := 0.0, 1.0
	for range 60 {
		mid := (lo + hi) / 2
		if below(mid) {
			lo = mid
		} else {
			hi = mid
		}
	}
	return (lo + hi) / 2
}

// regIncBeta is the regularized incomplete beta function I_x(a, b),
// evaluated with its continued fraction (modified Lentz).
func legacyregIncBeta(a, b, x float64) float64 {
	switch {
	case x <= 0:
		return 0
	case x >= 1:
		return 1
	}
	la, _ := math.Lgamma(a + b)
	lb, _ := math.Lgamma(a)
	lc, _ := math.Lgamma(b)
	front := math.Exp(la - lb - lc + a*math.Log(x) + b*math.Log1p(-x))
	if x < (a+1)/(a+b+2) {
		return front * legacybetaCF(a, b, x) / a
	}
	return 1 - front*legacybetaCF(b, a, 1-x)/b
}

func legacybetaCF(a, b, x float64) float64 {
	const tiny = 1e-300
	c, d := 1.0, 1-(a+b)*x/(a+1)
	if math.Abs(d) < tiny {
		d = tiny
	}
	d = 1 / d
	h := d
	for m := 1.0; m <= 300; m++ {
		m2 := 2 * m
		num := m * (b - m) * x / ((a + m2 - 1) * (a + m2))
		d = 1 + num*d
		if math.Abs(d) < tiny {
			d = tiny
		}
		c = 1 + num/c
		if math.Abs(c) < tiny {
			c = tiny
		}
		d = 1 / d
		h *= d * c
		num = -(a + m) * (a + b + m) * x / ((a + m2) * (a + m2 + 1))
		d = 1 + num*d
		if math.Abs(d) < tiny {
			d = tiny
		}
		c = 1 + num/c
		if math.Abs(c) < tiny {
			c = tiny
		}
		d = 1 / d
		del := d * c
		h *= del
		if math.Abs(del-1) < 1e-12 {
			break
		}
	}
	return h
}

func legacypercent(f float64) string {
	return fmt.Sprintf("%.3g%%", f*100)
}
