package analysis

import (
	"fmt"
	"time"
)

// DefaultMaxSourceErrors is how many looks in a row the metric source may
// fail before a Sequence fails the step, when Options leave it at 0.
const DefaultMaxSourceErrors = 5

// Sequence is the analysis of one bake: the looks the engine takes at the
// windows since a step began, and what they accumulate. The evidence of
// the gates needs no memory (Judge computes it from the cumulative
// windows); a Sequence adds what does: the settling window of the latency
// gates after a weight change, the consecutive failed looks a gate needs
// before it fails, and the consecutive failures of the metric source.
//
// A Sequence is not safe for concurrent use; one bake owns it.
type Sequence struct {
	gates        []Gate
	opts         Options
	settled      bool
	baseCanary   Sample
	baseStable   Sample
	failedLooks  []int
	sourceErrors int
}

// NewSequence starts the analysis of one step.
func NewSequence(gates []Gate, opts Options) *Sequence {
	return &Sequence{gates: gates, opts: opts, failedLooks: make([]int, len(gates)), settled: opts.Settle <= 0}
}

// Look judges the windows canary and stable, cumulative since the step
// began, elapsed after it began.
func (s *Sequence) Look(elapsed time.Duration, canary, stable Sample) (Verdict, []Result) {
	return s.look(elapsed, canary, stable, true)
}

// look is Look; a look that does not count (a Bake's look between two
// reported ones) leaves the consecutive failures of the gates and of the
// metric source as they were: a gate that needs several failed looks in a
// row is inconclusive there, not failed.
func (s *Sequence) look(elapsed time.Duration, canary, stable Sample, counts bool) (Verdict, []Result) {
	if counts {
		s.sourceErrors = 0
	}
	settling := false
	if !s.settled {
		settling = true
		if elapsed >= s.opts.Settle {
			// What came before this look is left out of latency gates.
			s.settled, s.baseCanary, s.baseStable = true, canary, stable
		}
	}
	alpha, beta := s.opts.budget()
	results := make([]Result, len(s.gates))
	for i, g := range s.gates {
		var r Result
		switch {
		case g.Metric == "error_rate":
			r = judgeGate(g, canary, stable, s.opts, alpha, beta)
		case settling:
			r = Result{Gate: g.String(), Verdict: Inconclusive,
				Detail: fmt.Sprintf("settling: latency is judged on the windows from the first look %s after the weight change", s.opts.Settle)}
		default:
			r = judgeGate(g, canary.Sub(s.baseCanary), s.settledStable(stable), s.opts, alpha, beta)
		}
		need := max(g.ConsecutiveFailures, 1)
		switch {
		case r.Verdict != Fail:
			if counts {
				s.failedLooks[i] = 0
			}
		case need > 1 && !counts:
			r.Verdict = Inconclusive
			r.Detail = fmt.Sprintf("failed %d of the %d looks in a row needed (this one counts at the next interval): %s", s.failedLooks[i], need, r.Detail)
		case need > 1:
			s.failedLooks[i]++
			if s.failedLooks[i] < need {
				r.Verdict = Inconclusive
				r.Detail = fmt.Sprintf("failed %d of the %d looks in a row needed: %s", s.failedLooks[i], need, r.Detail)
			}
		}
		results[i] = r
	}
	return overall(results), results
}

// settledStable is the stable's window since settling. A stable sample
// that did not grow since (a blue-green observe step judges against what
// blue measured before the switch, a fixed sample) is used whole.
func (s *Sequence) settledStable(stable Sample) Sample {
	if stable.Requests > s.baseStable.Requests {
		return stable.Sub(s.baseStable)
	}
	return stable
}

// SourceError records a look at which the metric source failed: an
// inconclusive look, never a pass, and a failure once the source has
// failed MaxSourceErrors looks in a row, since a canary nobody can see is
// not let through.
func (s *Sequence) SourceError(err error) (Verdict, []Result) {
	s.sourceErrors++
	limit := s.opts.MaxSourceErrors
	if limit <= 0 {
		limit = DefaultMaxSourceErrors
	}
	r := Result{Gate: "metric source", Verdict: Inconclusive,
		Detail: fmt.Sprintf("the metric source failed %d of the %d looks in a row that fail the step: %v", s.sourceErrors, limit, err)}
	if s.sourceErrors >= limit {
		r.Verdict = Fail
	}
	return r.Verdict, []Result{r}
}
