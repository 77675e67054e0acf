// Package sim simulates canary rollouts on virtual time to measure the
// judge: how often it rolls back a healthy release, how often it lets a bad
// one through, and how many requests it needs to convict one.
//
// The traffic is simulated; the judgement and the bake are not: every step
// runs through analysis.Bake, the code the rollout engine's bake runs. A
// step snapshots the counters when it begins, looks at the windows since
// then when the Bake says a look is due (every analysis.LookEvery, or
// every interval when that is shorter), ends on the first failed look (a
// rollback), or once its bake time is over and every gate passes, and is
// held (on_inconclusive decides in the engine) if that has not happened
// after as long again, at least five intervals.
package sim

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/shipgate/shipgate/internal/analysis"
)

// Step is one canary step: a weight held for a bake time.
type Step struct {
	// Weight is the canary's share of requests, from 0 to 1.
	Weight float64
	// Bake is how long the step lasts at least.
	Bake time.Duration
}

// Release is how a simulated release behaves.
type Release struct {
	// ErrorRate is the share of its requests that fail.
	ErrorRate float64
	// Median and Sigma describe its latency: log-normal with this median
	// and this standard deviation of the logarithm.
	Median time.Duration
	Sigma  float64
	// Slower multiplies every latency of the release (3 for a release
	// three times slower at every quantile); 0 means 1.
	Slower float64
	// DriftAt, when above 0, is when the error rate becomes DriftErrorRate
	// (time since the canary's first request).
	DriftAt        time.Duration
	DriftErrorRate float64
}

// Busy is a period when the host slows every release down.
type Busy struct {
	// From is when it starts, since the canary's first request.
	From time.Duration
	// For is how long it lasts.
	For time.Duration
	// Factor multiplies every latency meanwhile.
	Factor float64
}

// Scenario is one kind of rollout, simulated many times.
type Scenario struct {
	Name  string
	Steps []Step
	// Rate is the requests per second of all releases together.
	Rate float64
	// Interval is the analysis interval: the engine looks every
	// analysis.LookEvery (or every interval, when shorter) and reports
	// once an interval.
	Interval time.Duration
	Gates    []analysis.Gate
	// Options are the judge's, as the engine sets them; Steps is set from
	// the plan when 0.
	Options analysis.Options
	Canary  Release
	Stable  Release
	Busy    []Busy
	// Rollouts is how many rollouts to simulate.
	Rollouts int
	// Seed makes the run reproducible.
	Seed uint64
	// Legacy judges with the judge before issue 11 (an exact binomial
	// test at every look, as if it were the only one) to compare with.
	Legacy bool
}

// Outcome is how one simulated rollout ended.
type Outcome struct {
	// RolledBack is true when a gate failed.
	RolledBack bool
	// Held is true when a step ran out of time still inconclusive.
	Held bool
	// Step is the index of the step it ended in (len(Steps) if completed).
	Step int
	// At is the time since the canary's first request.
	At time.Duration
	// CanaryRequests and CanaryErrors are what the canary served until then.
	CanaryRequests, CanaryErrors uint64
	// Reason is the failed or inconclusive gate's detail.
	Reason string
}

// Run simulates the scenario's rollouts on workers goroutines.
func Run(sc Scenario, workers int) []Outcome {
	out := make([]Outcome, sc.Rollouts)
	workers = max(1, min(workers, sc.Rollouts))
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := newSimulator(sc)
			for i := w; i < sc.Rollouts; i += workers {
				out[i] = s.rollout(rand.New(rand.NewPCG(sc.Seed, uint64(i))))
			}
		}()
	}
	wg.Wait()
	return out
}

type simulator struct {
	sc       Scenario
	latency  bool
	buckets  map[float64][]float64 // bucket probabilities per latency factor
	tick     time.Duration
	gateOpts analysis.Options
}

func newSimulator(sc Scenario) *simulator {
	s := &simulator{sc: sc, buckets: map[float64][]float64{}, gateOpts: sc.Options}
	for _, g := range sc.Gates {
		if g.Metric != "error_rate" {
			s.latency = true
		}
	}
	if s.gateOpts.Steps == 0 {
		s.gateOpts.Steps = len(sc.Steps)
	}
	// Traffic is generated second by second (or look by look when looks
	// are more frequent), so that a busy minute starts and ends on time
	// whatever the look cadence.
	s.tick = min(time.Second, analysis.LookEvery, sc.Interval)
	return s
}

// rollout runs one rollout, step by step, through the engine's own bake
// logic (analysis.Bake): it looks when the Bake says a look is due, and
// ends a step as the Bake decides.
func (s *simulator) rollout(rng *rand.Rand) Outcome {
	var canary, stable analysis.Sample
	now := time.Duration(0)
	for i, step := range s.sc.Steps {
		baseC, baseS := canary, stable
		plan := analysis.BakePlan{Duration: step.Bake, Interval: s.sc.Interval, NeedPass: true}
		if s.sc.Legacy {
			// The engine before issue 11 looked once an interval.
			o := legacyOptions{MinRequests: s.gateOpts.MinRequests, FailConfidence: s.gateOpts.FailConfidence, PassConfidence: s.gateOpts.PassConfidence}
			plan.LookEvery = s.sc.Interval
			plan.Judge = func(_ time.Duration, c, st analysis.Sample) (analysis.Verdict, []analysis.Result) {
				return legacyJudge(s.sc.Gates, c, st, o)
			}
		}
		bake := analysis.NewBake(plan, s.sc.Gates, s.gateOpts, 0)
		start := now
		for {
			// Traffic until the next look.
			for next := start + bake.NextLook(); now < next; {
				d := min(s.tick, next-now)
				s.traffic(rng, now, d, step.Weight, &canary, &stable)
				now += d
			}
			d := bake.Look(now-start, canary.Sub(baseC), stable.Sub(baseS))
			switch d.Outcome {
			case analysis.BakeFailed:
				return Outcome{RolledBack: true, Step: i, At: now, CanaryRequests: canary.Requests, CanaryErrors: canary.Errors(), Reason: firstDetail(d.Results, analysis.Fail)}
			case analysis.BakeExpired:
				return Outcome{Held: true, Step: i, At: now, CanaryRequests: canary.Requests, CanaryErrors: canary.Errors(), Reason: firstDetail(d.Results, analysis.Inconclusive)}
			case analysis.BakeGoOn:
				continue
			}
			break
		}
	}
	return Outcome{Step: len(s.sc.Steps), At: now, CanaryRequests: canary.Requests, CanaryErrors: canary.Errors()}
}

func firstDetail(rs []analysis.Result, v analysis.Verdict) string {
	for _, r := range rs {
		if r.Verdict == v {
			return r.Gate + ": " + r.Detail
		}
	}
	return ""
}

// traffic adds the requests of a period d starting at t.
func (s *simulator) traffic(rng *rand.Rand, t, d time.Duration, weight float64, canary, stable *analysis.Sample) {
	mean := s.sc.Rate * d.Seconds()
	busy := 1.0
	for _, b := range s.sc.Busy {
		if t >= b.From && t < b.From+b.For {
			busy *= b.Factor
		}
	}
	s.serve(rng, poisson(rng, mean*weight), t, busy, s.sc.Canary, canary)
	s.serve(rng, poisson(rng, mean*(1-weight)), t, busy, s.sc.Stable, stable)
}

func (s *simulator) serve(rng *rand.Rand, n uint64, t time.Duration, busy float64, r Release, into *analysis.Sample) {
	if n == 0 {
		return
	}
	p := r.ErrorRate
	if r.DriftAt > 0 && t >= r.DriftAt {
		p = r.DriftErrorRate
	}
	into.Requests += n
	into.Status5xx += binomial(rng, n, p)
	if !s.latency {
		return
	}
	factor := busy
	if r.Slower > 0 {
		factor *= r.Slower
	}
	if n <= 24 {
		// Few requests: draw each one's latency.
		mu := math.Log(r.Median.Seconds() * factor)
		for range n {
			d := time.Duration(math.Exp(mu+r.Sigma*rng.NormFloat64()) * float64(time.Second))
			into.Latency.Observe(d)
		}
		return
	}
	probs := s.bucketProbs(r, factor)
	// A multinomial draw, as a chain of binomials.
	rest, mass := n, 1.0
	for i, q := range probs {
		if rest == 0 {
			break
		}
		if q <= 0 {
			continue
		}
		x := rest
		if q < mass {
			x = binomial(rng, rest, q/mass)
		}
		into.Latency[i] += x
		rest -= x
		mass -= q
	}
	into.Latency[analysis.NumBuckets-1] += rest
}

// bucketProbs returns the probability of each latency bucket for r slowed
// by factor.
func (s *simulator) bucketProbs(r Release, factor float64) []float64 {
	key := factor*1e6 + r.Sigma*1e3 + r.Median.Seconds()
	if p, ok := s.buckets[key]; ok {
		return p
	}
	mu := math.Log(r.Median.Seconds() * factor)
	cdf := func(x time.Duration) float64 {
		return 0.5 * math.Erfc(-(math.Log(x.Seconds())-mu)/(r.Sigma*math.Sqrt2))
	}
	p := make([]float64, analysis.NumBuckets)
	prev := 0.0
	for i, b := range analysis.Bounds {
		c := cdf(b)
		p[i] = c - prev
		prev = c
	}
	p[analysis.NumBuckets-1] = 1 - prev
	for i := range p {
		if p[i] < 1e-13 {
			// Below any count a simulation reaches; leaving it out skips
			// a binomial draw per bucket.
			p[i] = 0
		}
	}
	s.buckets[key] = p
	return p
}

// poisson draws a Poisson variate: by multiplication for small means, by
// the normal approximation for large ones (where it only sets exposure).
func poisson(rng *rand.Rand, mean float64) uint64 {
	if mean <= 0 {
		return 0
	}
	if mean < 30 {
		l, k, p := math.Exp(-mean), uint64(0), rng.Float64()
		for p > l {
			k++
			p *= rng.Float64()
		}
		return k
	}
	return uint64(max(0, math.Round(mean+math.Sqrt(mean)*rng.NormFloat64())))
}

// binomial draws a Binomial(n, p) variate: exactly (by Bernoulli trials
// or by inversion) when n or the expected count of the rarer outcome is
// small, which is where rare errors and tail latencies live, and by the
// normal approximation otherwise.
func binomial(rng *rand.Rand, n uint64, p float64) uint64 {
	switch {
	case p <= 0 || n == 0:
		return 0
	case p >= 1:
		return n
	case p > 0.5:
		return n - binomial(rng, n, 1-p)
	case n <= 40:
		var k uint64
		for range n {
			if rng.Float64() < p {
				k++
			}
		}
		return k
	case float64(n)*p < 40:
		// Inversion: walk the probability mass function from 0.
		u := rng.Float64()
		q := 1 - p
		f := math.Exp(float64(n) * math.Log1p(-p))
		r := p / q
		var k uint64
		for u > f && k < n {
			u -= f
			f *= r * float64(n-k) / float64(k+1)
			k++
		}
		return k
	}
	mean := float64(n) * p
	x := math.Round(mean + math.Sqrt(mean*(1-p))*rng.NormFloat64())
	return uint64(min(float64(n), max(0, x)))
}

// Report sums up a scenario's outcomes.
type Report struct {
	Name     string
	Rollouts int
	// RolledBack, Held and Completed count the outcomes.
	RolledBack, Held, Completed int
	// FirstStep counts the rollouts that never left the first step.
	FirstStep int
	// Requests and Seconds are the canary requests served and the time
	// from the first canary request to the rollback, per rolled-back
	// rollout, sorted.
	Requests []uint64
	Seconds  []float64
	// Failed is the canary's failed requests until the rollback, sorted.
	Failed []uint64
}

// Summarize builds the report of a run.
func Summarize(name string, outs []Outcome) Report {
	r := Report{Name: name, Rollouts: len(outs)}
	for _, o := range outs {
		switch {
		case o.RolledBack:
			r.RolledBack++
			r.Requests = append(r.Requests, o.CanaryRequests)
			r.Failed = append(r.Failed, o.CanaryErrors)
			r.Seconds = append(r.Seconds, o.At.Seconds())
		case o.Held:
			r.Held++
		default:
			r.Completed++
		}
		if o.Step == 0 {
			r.FirstStep++
		}
	}
	slices.Sort(r.Requests)
	slices.Sort(r.Failed)
	slices.Sort(r.Seconds)
	return r
}

// Wilson returns the Wilson score interval at 95% of k successes in n.
func Wilson(k, n int) (lo, hi float64) {
	if n == 0 {
		return 0, 1
	}
	const z = 1.959963984540054
	p, nf := float64(k)/float64(n), float64(n)
	den := 1 + z*z/nf
	c := (p + z*z/(2*nf)) / den
	h := z * math.Sqrt(p*(1-p)/nf+z*z/(4*nf*nf)) / den
	return max(0, c-h), min(1, c+h)
}

// Median returns the median of sorted xs and a distribution-free 95%
// confidence interval for it (order statistics at n/2 ± 0.98·√n).
func Median[T uint64 | float64](xs []T) (med, lo, hi T) {
	n := len(xs)
	if n == 0 {
		return 0, 0, 0
	}
	h := int(math.Ceil(0.98 * math.Sqrt(float64(n))))
	return xs[n/2], xs[max(0, n/2-h)], xs[min(n-1, n/2+h)]
}

// Rate formats k of n as a percentage with its Wilson interval.
func Rate(k, n int) string {
	lo, hi := Wilson(k, n)
	return fmt.Sprintf("%s (%s–%s)", pct(float64(k)/float64(n)), pct(lo), pct(hi))
}

func pct(f float64) string {
	switch {
	case f == 0:
		return "0%"
	case f < 0.001:
		return fmt.Sprintf("%.3f%%", f*100)
	case f < 0.1:
		return fmt.Sprintf("%.2f%%", f*100)
	}
	return fmt.Sprintf("%.1f%%", f*100)
}
