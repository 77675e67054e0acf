package analysis

import (
	"fmt"
	"time"
)

// LookEvery is how often a bake looks at the evidence when its analysis
// interval is longer. The tests are anytime-valid (see docs/analysis.md):
// looking more often costs no false alarms, and it convicts a badly failing
// canary after the few requests that prove it rather than after a whole
// interval of them. A second keeps the metric source's load small (one read
// a second) and the look no later than the router's counters can tell.
const LookEvery = time.Second

// BakePlan is what one bake step asks of its analysis.
type BakePlan struct {
	// Duration is the bake time: the step ends once it is over and the
	// gates pass (or, without NeedPass, once it is over).
	Duration time.Duration
	// Interval is the analysis interval: how often the verdict is
	// persisted and reported, and the unit in which a gate's
	// consecutive_failures and the metric source's failures in a row are
	// counted.
	Interval time.Duration
	// LookEvery is how often the bake looks at the evidence; 0 means
	// LookEvery, and it is never longer than Interval.
	LookEvery time.Duration
	// NeedPass makes the step wait for every gate to pass; without it the
	// step ends when its time is over unless a gate failed.
	NeedPass bool
	// Judge, when set, judges the looks instead of a Sequence of the
	// gates: the simulator uses it for the judge before issue 11.
	Judge func(elapsed time.Duration, canary, stable Sample) (Verdict, []Result)
}

// Extra is how long a step may bake past its time while a gate is still
// inconclusive before the stage's on_inconclusive policy decides: as long
// again, at least five intervals.
func (p BakePlan) Extra() time.Duration { return max(p.Duration, 5*p.Interval) }

func (p BakePlan) lookEvery() time.Duration {
	every := p.LookEvery
	if every <= 0 {
		every = LookEvery
	}
	if p.Interval > 0 {
		every = min(every, p.Interval)
	}
	return max(every, time.Millisecond)
}

// BakeOutcome is what a look decides for the step.
type BakeOutcome int

// Outcomes of a look.
const (
	// BakeGoOn: the step bakes on.
	BakeGoOn BakeOutcome = iota
	// BakeFailed: a gate failed; the step rolls back.
	BakeFailed
	// BakeDone: the bake time is over and the gates pass (or the step
	// does not need them to).
	BakeDone
	// BakeExpired: the bake time and its extension are over and a gate is
	// still inconclusive; the stage's on_inconclusive policy decides.
	BakeExpired
)

// Decision is what one look at a bake decided.
type Decision struct {
	Verdict Verdict
	Results []Result
	Outcome BakeOutcome
	// Report is set when the verdict is due to be persisted and
	// reported: at the first look of each interval. A look that ends the
	// step is the caller's to persist whatever Report says.
	Report bool
}

// Bake is the analysis of one bake step over time, the one the rollout
// engine runs and the simulator drives: when to look, what a look
// decides, and when its verdict is persisted. It looks every LookEvery,
// judges every look (the tests stay valid however often they look),
// reports once an interval, and counts consecutive failed looks of a gate
// and failures of the metric source on the reported looks only, so that
// those counts keep meaning intervals whatever the look cadence.
//
// A Bake is not safe for concurrent use; one bake owns it.
type Bake struct {
	plan       BakePlan
	seq        *Sequence
	nextLook   time.Duration
	nextReport time.Duration
}

// NewBake starts the analysis of one bake step of gates, resumed after
// elapsed of bake time already served (0 for a new step).
func NewBake(plan BakePlan, gates []Gate, opts Options, elapsed time.Duration) *Bake {
	b := &Bake{plan: plan, seq: NewSequence(gates, opts)}
	b.nextLook = elapsed + plan.lookEvery()
	b.nextReport = elapsed + max(plan.Interval, plan.lookEvery())
	return b
}

// Due reports whether a look is due after elapsed of bake time.
func (b *Bake) Due(elapsed time.Duration) bool { return elapsed >= b.nextLook }

// NextLook returns the bake time at which the next look is due.
func (b *Bake) NextLook() time.Duration { return b.nextLook }

// Look judges the windows canary and stable, cumulative since the step
// began, after elapsed of bake time, and decides what the step does.
func (b *Bake) Look(elapsed time.Duration, canary, stable Sample) Decision {
	report := b.advance(elapsed)
	var verdict Verdict
	var results []Result
	if b.plan.Judge != nil {
		verdict, results = b.plan.Judge(elapsed, canary, stable)
	} else {
		verdict, results = b.seq.look(elapsed, canary, stable, report)
	}
	return b.decide(elapsed, verdict, results, report)
}

// SourceError records a look at which the metric source failed. It is
// never a pass; at a reported look it counts as one of the failures in a
// row that fail the step (see Sequence.SourceError).
func (b *Bake) SourceError(elapsed time.Duration, err error) Decision {
	report := b.advance(elapsed)
	if !report {
		r := Result{Gate: "metric source", Verdict: Inconclusive,
			Detail: fmt.Sprintf("the metric source failed (counted if it still fails at the next interval): %v", err)}
		return Decision{Verdict: Inconclusive, Results: []Result{r}}
	}
	verdict, results := b.seq.SourceError(err)
	return b.decide(elapsed, verdict, results, report)
}

// advance schedules the next look and tells whether this one is reported.
func (b *Bake) advance(elapsed time.Duration) bool {
	b.nextLook = elapsed + b.plan.lookEvery()
	if elapsed < b.nextReport {
		return false
	}
	b.nextReport = elapsed + max(b.plan.Interval, b.plan.lookEvery())
	return true
}

func (b *Bake) decide(elapsed time.Duration, verdict Verdict, results []Result, report bool) Decision {
	d := Decision{Verdict: verdict, Results: results, Report: report}
	switch {
	case verdict == Fail:
		d.Outcome = BakeFailed
	case elapsed >= b.plan.Duration && (verdict == Pass || !b.plan.NeedPass):
		d.Outcome = BakeDone
	case elapsed >= b.plan.Duration+b.plan.Extra():
		d.Outcome = BakeExpired
	}
	return d
}
