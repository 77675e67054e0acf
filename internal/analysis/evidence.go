package analysis

import "math"

// This file holds the anytime-valid evidence the judge weighs: mixture
// likelihood ratios for a Bernoulli rate (a mixture sequential probability
// ratio test, see docs/analysis.md). Each one is a nonnegative martingale
// (or supermartingale) under its null hypothesis, so by Ville's inequality
// it reaches 1/α with probability at most α however often it is looked at.
// It depends on the data only through the counts (k events in n trials),
// so the judge needs no memory of earlier looks to compute it.

// aboveOdds are the alternatives, as odds ratios to the null rate, of the
// evidence that a rate is above its limit, and aboveWeights their prior
// weights. They go from 1.5 times the limit, where a small regression
// lives, to 300 times, where a release failing 40% of its requests against
// a 0.5% limit lives. The weights favour 3 to 30 times the limit: the
// regressions that hurt users within seconds but are not so gross that a
// handful of requests shows them. A grid of fixed alternatives (rather than
// a continuous prior) keeps the statistic cheap and easy to reason about:
// the price of not knowing the alternative is a factor 1/weight on the
// evidence, ln(18/5) ≈ 1.3 nats at 5 or 10 times the limit.
var (
	aboveOdds    = []float64{1.5, 2, 3, 5, 10, 30, 100, 300}
	aboveWeights = []float64{1, 1, 2, 5, 5, 2, 1, 1}
)

// boundOdds are the alternatives of the evidence that a rate is below a
// level, when it serves a confidence bound: from two thirds of the level
// down to a tenth, and 0 (nothing above the level at all), equally weighted.
var boundOdds = []float64{1 / 1.5, 1.0 / 2, 1.0 / 3, 1.0 / 10, 0}

// passOdds returns the alternatives of the evidence that lets a gate
// pass, when the rate is tested against factor times its limit: the limit
// itself (Wald's sequential probability ratio test between the limit and
// the detection target, the one needing the fewest requests on average for
// a release right at its limit) and 0 (a release that never fails, which
// then passes after a few hundred requests rather than a thousand), equally
// weighted.
func passOdds(factor float64) []float64 { return []float64{1 / factor, 0} }

// withOdds returns the rate whose odds are r times those of p.
func withOdds(p, r float64) float64 {
	o := p / (1 - p) * r
	return o / (1 + o)
}

// mixture holds, for each alternative of a mixture, the log likelihood
// ratio of one event and of one non-event against the null rate.
type mixture struct {
	n        int
	event    [maxAlternatives]float64
	nonEvent [maxAlternatives]float64
	logW     [maxAlternatives]float64 // log of each alternative's share of the weight
}

// maxAlternatives is the most alternatives a mixture holds: their
// likelihood ratios are kept on the stack.
const maxAlternatives = 16

// newMixture prepares the mixture of the alternatives withOdds(p, r), for
// r in odds, against p (0 < p < 1), weighted by weights (equally if nil).
func newMixture(p float64, odds, weights []float64) mixture {
	if len(odds) > maxAlternatives {
		panic("analysis: more alternatives than a mixture holds")
	}
	m := mixture{n: len(odds)}
	total := float64(len(odds))
	if weights != nil {
		total = 0
		for _, w := range weights {
			total += w
		}
	}
	for i, r := range odds {
		w := 1.0
		if weights != nil {
			w = weights[i]
		}
		m.logW[i] = math.Log(w / total)
		q := withOdds(p, r)
		m.event[i] = math.Log(q / p) // -Inf for q = 0
		m.nonEvent[i] = math.Log1p(-q) - math.Log1p(-p)
	}
	return m
}

// log returns the log of the average likelihood ratio of the alternatives
// after k events in n trials.
func (m *mixture) log(k, n uint64) float64 {
	var lrs [maxAlternatives]float64
	top := math.Inf(-1)
	for i := range m.n {
		l := 0.0
		if k > 0 {
			l += float64(k) * m.event[i]
		}
		if n > k {
			l += float64(n-k) * m.nonEvent[i]
		}
		lrs[i] = l + m.logW[i]
		top = max(top, lrs[i])
	}
	if math.IsInf(top, -1) {
		return top
	}
	var sum float64
	for i := range m.n {
		sum += math.Exp(lrs[i] - top) //nolint:gosec // i < m.n <= maxAlternatives (newMixture)
	}
	return top + math.Log(sum)
}

// logMixture returns the log of the average of the likelihood ratios of
// the alternatives withOdds(p, r) for r in odds, against p.
func logMixture(k, n uint64, p float64, odds, weights []float64) float64 {
	m := newMixture(p, odds, weights)
	return m.log(k, n)
}

// logEvidenceAbove is the log of the evidence, after k events in n
// trials, against the hypothesis that the rate is at most p. Under any
// rate at most p it is the log of a nonnegative supermartingale that
// starts at 1.
func logEvidenceAbove(k, n uint64, p float64) float64 {
	switch {
	case p <= 0:
		if k > 0 {
			return math.Inf(1)
		}
		return 0
	case p >= 1:
		return math.Inf(-1)
	}
	return logMixture(k, n, p, aboveOdds, aboveWeights)
}

// logEvidenceBelow is the log of the evidence against the hypothesis that
// the rate is at least p, with the alternatives odds (boundOdds or
// passOdds).
func logEvidenceBelow(k, n uint64, p float64, odds []float64) float64 {
	switch {
	case p >= 1:
		if k < n {
			return math.Inf(1)
		}
		return 0
	case p <= 0:
		return math.Inf(-1)
	}
	return logMixture(k, n, p, odds, nil)
}

// upperRate is an anytime-valid upper confidence bound of a rate at level
// alpha: the largest rate that the evidence against "the rate is at least
// p" does not yet refute at 1/alpha. Over all the looks of a sequence, it
// is below the true rate with probability at most alpha.
func upperRate(k, n uint64, alpha float64) float64 {
	if n == 0 {
		return 1
	}
	need := math.Log(1 / alpha)
	refuted := func(p float64) bool { return logEvidenceBelow(k, n, p, boundOdds) >= need }
	lo := float64(k) / float64(n)
	if refuted(lo) {
		return lo
	}
	// The bound is within a few standard errors of k/n: start there, and
	// widen to 1 only if that is not yet refuted.
	hi := min(1, lo+(8*math.Sqrt(float64(k)+1)+4*need)/float64(n))
	if !refuted(hi) {
		lo, hi = hi, 1
	}
	for range 40 {
		mid := (lo + hi) / 2
		if refuted(mid) {
			hi = mid
		} else {
			lo = mid
		}
	}
	return hi
}

// lowerRate is the anytime-valid lower confidence bound matching upperRate.
func lowerRate(k, n uint64, alpha float64) float64 {
	if n == 0 || k == 0 {
		return 0
	}
	need := math.Log(1 / alpha)
	refuted := func(p float64) bool { return logEvidenceAbove(k, n, p) >= need }
	hi := float64(k) / float64(n)
	if refuted(hi) {
		return hi
	}
	lo := max(0, hi-(8*math.Sqrt(float64(k))+4*need)/float64(n))
	if !refuted(lo) {
		lo, hi = 0, lo
	}
	for range 40 {
		mid := (lo + hi) / 2
		if refuted(mid) {
			lo = mid
		} else {
			hi = mid
		}
	}
	return lo
}

// quantileBounds returns anytime-valid bounds (lower, upper) of the
// q-quantile of the distribution h was sampled from, as bucket bounds:
// with probability at least 1-alphaUpper over every look the true
// quantile is at most upper, and with 1-alphaLower at least lower. upper is
// +Inf and lower 0 when there is not yet enough data for a bound.
//
// The share of a distribution above a value x is at most 1-q exactly when
// x is at or above the q-quantile. Each bucket bound x is tested on that
// share with the evidence above; the count above x only falls as x grows,
// so the evidence is monotone in x and a binary search finds the bound.
// Only one bucket's test can be wrong in the direction that matters (the
// one just below the true quantile), so no correction for the number of
// buckets is needed.
func quantileBounds(h *Histogram, q, alphaLower, alphaUpper float64) (lower, upper float64) {
	n := h.Count()
	upper = math.Inf(1)
	if n == 0 {
		return 0, upper
	}
	var above [NumBuckets]uint64 // above[i]: observations above Bounds[i]
	var s uint64
	for i := NumBuckets - 1; i >= 0; i-- {
		above[i] = s
		s += h[i]
	}
	share := 1 - q
	below, above1 := newMixture(share, boundOdds, nil), newMixture(share, aboveOdds, aboveWeights)
	// Upper: the first bucket bound whose share above is shown below 1-q.
	if i, ok := firstTrue(len(Bounds), func(i int) bool { return below.log(above[i], n) >= math.Log(1/alphaUpper) }); ok {
		upper = Bounds[i].Seconds()
	}
	// Lower: the last bucket bound whose share above is shown above 1-q.
	if i, ok := firstTrue(len(Bounds), func(i int) bool { return above1.log(above[i], n) < math.Log(1/alphaLower) }); ok && i > 0 {
		lower = Bounds[i-1].Seconds()
	} else if !ok {
		lower = Bounds[len(Bounds)-1].Seconds()
	}
	return lower, upper
}

// firstTrue returns the smallest i in [0, n) for which f, false then true
// as i grows, is true.
func firstTrue(n int, f func(int) bool) (int, bool) {
	lo, hi := 0, n
	for lo < hi {
		mid := (lo + hi) / 2
		if f(mid) {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	return lo, lo < n
}
