package analysis

import (
	"fmt"
	"math"
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
	// MaxRatio, when above 0, limits a latency to MaxRatio times the
	// stable release's latency at the same quantile in the same window.
	MaxRatio float64
}

// String describes the gate for people: "error_rate <= 1%".
func (g Gate) String() string {
	switch {
	case g.Metric == "error_rate":
		return fmt.Sprintf("error_rate <= %s", percent(g.Max))
	case g.MaxRatio > 0 && g.HasMax:
		return fmt.Sprintf("%s <= %gx stable and <= %s", g.Metric, g.MaxRatio, seconds(g.Max))
	case g.MaxRatio > 0:
		return fmt.Sprintf("%s <= %gx stable", g.Metric, g.MaxRatio)
	default:
		return fmt.Sprintf("%s <= %s", g.Metric, seconds(g.Max))
	}
}

// Options tune how much evidence a verdict needs.
type Options struct {
	// MinRequests is the least number of canary requests before a gate
	// may pass (and of stable requests before a ratio gate may pass).
	MinRequests int
	// FailConfidence is the one-sided confidence needed to fail a gate.
	FailConfidence float64
	// PassConfidence is the one-sided confidence needed to pass a gate.
	PassConfidence float64
}

// minRequests is MinRequests as a count to compare with a sample's. A
// negative MinRequests is a caller's mistake, and like too little data it
// never lets a gate pass.
func (o Options) minRequests() uint64 {
	if o.MinRequests < 0 {
		return math.MaxUint64
	}
	return uint64(o.MinRequests)
}

// Judge judges the canary window against every gate, comparing it with
// the stable window where a gate is relative. The overall verdict is Fail
// if any gate fails, Pass if every gate passes, and Inconclusive otherwise.
//
// Each gate is a one-sided test on a proportion, using exact binomial
// (Clopper-Pearson) bounds: for error_rate the proportion of failed requests; for a latency
// quantile q the proportion of requests slower than the limit, which must
// be at most 1-q if the canary's q-quantile is within the limit. A gate
// fails when the lower bound at FailConfidence is above the allowed
// proportion, passes when the upper bound at PassConfidence is at or below
// it and there were at least MinRequests requests, and is inconclusive
// otherwise: too little data is never a pass.
func Judge(gates []Gate, canary, stable Sample, opts Options) (Verdict, []Result) {
	results := make([]Result, 0, len(gates))
	overall := Pass
	for _, g := range gates {
		r := judgeGate(g, canary, stable, opts)
		results = append(results, r)
		switch {
		case r.Verdict == Fail:
			overall = Fail
		case r.Verdict == Inconclusive && overall == Pass:
			overall = Inconclusive
		}
	}
	return overall, results
}

func judgeGate(g Gate, canary, stable Sample, opts Options) Result {
	r := Result{Gate: g.String(), Verdict: Inconclusive}
	if canary.Requests == 0 {
		r.Detail = "no canary requests yet"
		return r
	}
	if g.Metric == "error_rate" {
		return judgeErrorRate(g, canary, opts, r)
	}
	q, ok := quantileOf(g.Metric)
	if !ok {
		r.Detail = "unknown metric " + g.Metric
		return r
	}
	return judgeLatency(g, q, canary, stable, opts, r)
}

func judgeErrorRate(g Gate, canary Sample, opts Options, r Result) Result {
	n, k := canary.Requests, canary.Errors()
	r.Value, r.Threshold = canary.ErrorRate(), g.Max
	lo := lowerBound(k, n, opts.FailConfidence)
	hi := upperBound(k, n, opts.PassConfidence)
	switch {
	case lo > g.Max:
		r.Verdict = Fail
		r.Detail = fmt.Sprintf("%d of %d canary requests failed (%s); at %s confidence the rate is at least %s, above %s",
			canary.Errors(), canary.Requests, percent(r.Value), percent(opts.FailConfidence), percent(lo), percent(g.Max))
	case hi <= g.Max && canary.Requests >= opts.minRequests():
		r.Verdict = Pass
		r.Detail = fmt.Sprintf("%d of %d canary requests failed (%s); at %s confidence the rate is at most %s",
			canary.Errors(), canary.Requests, percent(r.Value), percent(opts.PassConfidence), percent(hi))
	default:
		r.Detail = fmt.Sprintf("%d of %d canary requests failed (%s); not yet enough evidence either way (%s to %s)",
			canary.Errors(), canary.Requests, percent(r.Value), percent(lo), percent(hi))
	}
	return r
}

func judgeLatency(g Gate, q float64, canary, stable Sample, opts Options, r Result) Result {
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
	maybeAbove := canary.Latency.CountAbove(lowerBucketEdge(limit))
	lo := lowerBound(surelyAbove, n, opts.FailConfidence)
	hi := upperBound(maybeAbove, n, opts.PassConfidence)
	what := fmt.Sprintf("canary %s %s", g.Metric, canaryQ.Round(10*time.Microsecond))
	if stableQ > 0 {
		what += fmt.Sprintf(" vs stable %s", stableQ.Round(10*time.Microsecond))
	}
	switch {
	case lo > allowed:
		r.Verdict = Fail
		r.Detail = fmt.Sprintf("%s: %d of %d canary requests slower than %s, at most %s allowed",
			what, surelyAbove, canary.Requests, limit.Round(10*time.Microsecond), percent(allowed))
	case hi <= allowed && canary.Requests >= opts.minRequests():
		r.Verdict = Pass
		r.Detail = fmt.Sprintf("%s: %d of %d canary requests slower than %s", what, maybeAbove, canary.Requests, limit.Round(10*time.Microsecond))
	default:
		r.Detail = fmt.Sprintf("%s: %d of %d canary requests slower than %s; not yet enough evidence either way",
			what, surelyAbove, canary.Requests, limit.Round(10*time.Microsecond))
	}
	return r
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

// lowerBound is the one-sided exact (Clopper-Pearson) lower confidence
// bound of a proportion after k events in n trials: the smallest p for which
// seeing k or more events still has probability 1-confidence. Exact bounds
// matter at the small counts a young canary has, where normal
// approximations convict on a single unlucky error.
func lowerBound(k, n uint64, confidence float64) float64 {
	if n == 0 || k == 0 {
		return 0
	}
	alpha := 1 - confidence
	// P(X >= k | p) = I_p(k, n-k+1) grows with p.
	return bisect(func(p float64) bool { return regIncBeta(float64(k), float64(n-k+1), p) < alpha })
}

// upperBound is the one-sided exact upper confidence bound: the largest p
// for which seeing k or fewer events still has probability 1-confidence.
func upperBound(k, n uint64, confidence float64) float64 {
	if n == 0 || k >= n {
		return 1
	}
	alpha := 1 - confidence
	// P(X <= k | p) = 1 - I_p(k+1, n-k) falls with p.
	return bisect(func(p float64) bool { return 1-regIncBeta(float64(k+1), float64(n-k), p) > alpha })
}

// bisect returns the p in [0,1] where below(p) turns from true to false.
func bisect(below func(p float64) bool) float64 {
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
func regIncBeta(a, b, x float64) float64 {
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
		return front * betaCF(a, b, x) / a
	}
	return 1 - front*betaCF(b, a, 1-x)/b
}

func betaCF(a, b, x float64) float64 {
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

func percent(f float64) string {
	return fmt.Sprintf("%.3g%%", f*100)
}

func seconds(s float64) string {
	return time.Duration(s * float64(time.Second)).String()
}
