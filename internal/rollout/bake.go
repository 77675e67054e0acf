package rollout

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/shipgate/shipgate/internal/analysis"
	"github.com/shipgate/shipgate/internal/audit"
)

// BakeState is what a bake has gathered, persisted with the rollout at
// each judgement.
type BakeState struct {
	// Step is the index of the step the bake belongs to.
	Step int `json:"step"`
	// Since is when the bake's window began: it judges what the
	// environment's metric source measured after.
	Since time.Time `json:"since,omitzero"`
	// Baseline holds the router's counters per version when the bake
	// began, for a bake recorded before Since existed.
	Baseline map[string]Counters `json:"baseline,omitempty"`
	// Elapsed is the bake time served until the last judgement; time
	// while no server ran does not count.
	Elapsed time.Duration `json:"elapsed"`
	// Extended is set when a person resumed the bake after it paused on
	// inconclusive evidence: it then bakes on until the evidence is there.
	Extended bool `json:"extended,omitempty"`
}

// Counters is an analysis.Sample as it is persisted.
type Counters struct {
	Requests        uint64   `json:"requests"`
	Status5xx       uint64   `json:"status_5xx,omitempty"`
	TransportErrors uint64   `json:"transport_errors,omitempty"`
	Latency         []uint64 `json:"latency,omitempty"`
}

func countersOf(s analysis.Sample) Counters {
	c := Counters{Requests: s.Requests, Status5xx: s.Status5xx, TransportErrors: s.TransportErrors}
	if s.Latency.Count() > 0 {
		c.Latency = s.Latency[:]
	}
	return c
}

func (c Counters) sample() analysis.Sample {
	s := analysis.Sample{Requests: c.Requests, Status5xx: c.Status5xx, TransportErrors: c.TransportErrors}
	copy(s.Latency[:], c.Latency)
	return s
}

// measure returns what env's metric source measured for version in the
// bake's window. A bake recorded before windows existed subtracts its
// baseline from everything the source has (all of it when the counters
// went down: the router restarted and counts anew).
func (e *reconciler) measure(ctx context.Context, env string, bs *BakeState, version string) (analysis.Sample, error) {
	if !bs.Since.IsZero() || bs.Baseline == nil {
		return e.window(ctx, env, version, bs.Since)
	}
	now, err := e.window(ctx, env, version, time.Time{})
	if err != nil {
		return analysis.Sample{}, err
	}
	b := bs.Baseline[version]
	if now.Requests < b.Requests {
		return now, nil
	}
	return now.Sub(b.sample()), nil
}

// bake holds a step for its duration while judging the canary version
// against the stable one (or against a fixed stable sample, when given).
// When to look, what a look decides and when the verdict is persisted is
// analysis.Bake's, the logic the simulator drives too: it looks every
// analysis.LookEvery (the tests are anytime-valid, so a badly failing
// canary is convicted after the few requests that prove it) and persists
// the judgement once every analysis interval. It fails at once on a
// failed gate. With needPass it ends once the time is over and every gate
// passes; if a gate is still inconclusive after as long again (at least
// five intervals), the stage's on_inconclusive policy decides: pause for a
// person, extend until the evidence is there, or roll back. Without
// needPass it ends when the time is over. shipgate promote ends it at
// once, as passed.
//
// The bake's baseline and the time it served are persisted at each
// reported judgement: a resumed bake goes on with both.
func (e *reconciler) bake(ctx context.Context, d *driver, st *Spec, r *Rollout, step Step, since time.Time, canaryV, stableV string, fixedStable *analysis.Sample, needPass bool) error {
	if step.NoBake {
		return nil
	}
	a := st.Analysis
	interval := a.Interval
	if r.Bake == nil || r.Bake.Step != r.StepIndex {
		r.Bake = &BakeState{Step: r.StepIndex, Since: since}
		r.Paused = ""
		if err := e.save(ctx, r, nil); err != nil {
			return err
		}
		// Asking marks the window's start with a source that counts from
		// marks (the builtin router).
		_, _ = e.window(ctx, r.Env, canaryV, since)
	}
	bs := r.Bake
	plan := analysis.BakePlan{Duration: step.Duration, Interval: interval, NeedPass: needPass}
	look := analysis.NewBake(plan, Gates(a), JudgeOptions(a, r.Steps), bs.Elapsed)
	start := e.clock.Now().Add(-bs.Elapsed)
	ticker := e.clock.NewTicker(min(e.tick, interval, analysis.LookEvery))
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-ticker.C():
		case <-d.wake:
		}
		if p, full := d.takePromotion(); p != nil {
			return e.passBake(ctx, d, r, p, full)
		}
		if err := e.holdOrResume(ctx, d, r); err != nil {
			return err
		}
		if f := e.failedInstance(ctx, r.Env, r.Version); f != nil {
			return f
		}
		now := e.clock.Now()
		elapsed := now.Sub(start)
		if !look.Due(elapsed) {
			continue
		}
		var canary, stable analysis.Sample
		var dec analysis.Decision
		var err error
		canary, err = e.measure(ctx, r.Env, bs, canaryV)
		if err == nil && fixedStable != nil {
			stable = *fixedStable
		} else if err == nil {
			stable, err = e.measure(ctx, r.Env, bs, stableV)
		}
		if err != nil {
			// An inconclusive look; the step fails if the source stays down.
			dec = look.SourceError(elapsed, fmt.Errorf("measure: %w", err))
		} else {
			dec = look.Look(elapsed, canary, stable)
		}
		verdict, results := dec.Verdict, dec.Results
		r.Analysis = &Judgement{At: now, Verdict: verdict, Results: results, Canary: summarize(canary), Stable: summarize(stable)}
		bs.Elapsed = elapsed
		var events []audit.Event
		switch {
		case dec.Outcome == analysis.BakeFailed:
			for _, res := range results {
				if res.Verdict == analysis.Fail {
					_ = e.save(ctx, r, nil)
					return &Failure{Reason: "gate " + res.Gate + " failed: " + res.Detail, Gate: res.Gate, Value: res.Value, Threshold: res.Threshold}
				}
			}
		case dec.Outcome == analysis.BakeDone && r.Paused == "":
			r.Paused = ""
			return e.save(ctx, r, nil)
		case dec.Outcome == analysis.BakeExpired && r.Paused == "" && !bs.Extended:
			var missing analysis.Result
			for _, res := range results {
				if res.Verdict != analysis.Pass {
					missing = res
					break
				}
			}
			why := "gate " + missing.Gate + " still inconclusive after " + elapsed.Round(time.Second).String() + ": " + missing.Detail
			switch a.OnInconclusive {
			case InconclusiveRollback:
				_ = e.save(ctx, r, nil)
				return &Failure{Reason: why, Gate: missing.Gate, Value: missing.Value, Threshold: missing.Threshold}
			case InconclusiveExtend:
				// Keep baking: the step ends when the evidence is there.
			default:
				r.Paused = why + "; paused: shipgate promote to go on, shipgate rollback to roll back"
				ev := e.event(r, ActorEngine, audit.ActionPause, r.Paused)
				ev.Data["gate"] = missing.Gate
				events = append(events, ev)
				e.log.Warn("rollout paused", "rollout", r.ID, "env", r.Env, "reason", why)
			}
		}
		if !dec.Report && len(events) == 0 {
			continue // looked; the judgement is persisted once an interval
		}
		if err := e.save(ctx, r, nil, events...); err != nil {
			return err
		}
	}
}

// passBake ends a bake as passed on a person's word, audited.
func (e *reconciler) passBake(ctx context.Context, d *driver, r *Rollout, p *Failure, full bool) error {
	r.Paused = ""
	r.Steps[r.StepIndex].NoBake = true
	ev := e.event(r, p.Actor, audit.ActionPromoteManual, p.Reason)
	stampCommand(ev, p.Command)
	ev.Data["step"] = describeStep(r.Steps[r.StepIndex])
	if full {
		var skipped []string
		r.Steps, skipped = skipBakes(r.Steps, r.StepIndex)
		ev.Data["full"] = "true"
		ev.Data["skipped"] = strings.Join(skipped, "; ")
	}
	err := e.save(ctx, r, nil, ev)
	d.ack()
	return err
}

// holdOrResume records a pause or a resume a person asked for: a paused
// bake holds its step (it still rolls back on a failed gate) until it is
// resumed or promoted. A bake resumed after it paused on inconclusive
// evidence bakes on until the evidence is there.
func (e *reconciler) holdOrResume(ctx context.Context, d *driver, r *Rollout) error {
	d.mu.Lock()
	pause, resume := d.pause, d.resume
	d.pause, d.resume = nil, nil
	d.mu.Unlock()
	var ev audit.Event
	switch {
	case pause != nil && r.Paused == "":
		r.Paused = fmt.Sprintf("paused by %s: %s; shipgate resume to go on, shipgate promote to end the bake, shipgate rollback to roll back", pause.Actor, pause.Reason)
		ev = e.event(r, pause.Actor, audit.ActionPause, pause.Reason)
		stampCommand(ev, pause.Command)
	case resume != nil && r.Paused != "":
		r.Paused = ""
		r.Bake.Extended = true
		ev = e.event(r, resume.Actor, audit.ActionResume, resume.Reason)
		stampCommand(ev, resume.Command)
	case pause != nil || resume != nil:
		d.ack() // nothing to change: already paused, or not paused
		return nil
	default:
		return nil
	}
	ev.Data["step"] = describeStep(r.Steps[r.StepIndex])
	err := e.save(ctx, r, nil, ev)
	d.ack()
	return err
}

func (d *driver) takePromotion() (*Failure, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	p, full := d.promotion, d.full
	d.promotion, d.full = nil, false
	return p, full
}

// skipBakes returns the steps of a full promotion from the running step i:
// the bakes after it (canary weights, internal users, blue-green's
// observation) are left out, and rolling batches replace the old
// instances without baking (Step.NoBake). It also returns what it skipped, for the
// audit log. The steps are persisted with the rollout, so a server that
// resumes it runs the same shortened plan.
func skipBakes(steps []Step, i int) ([]Step, []string) {
	out := slices.Clone(steps[:i+1])
	var skipped []string
	for _, s := range steps[i+1:] {
		switch s.Kind {
		case StepWeight, StepInternal, StepObserve:
			skipped = append(skipped, describeStep(s))
			continue
		case StepBatch:
			skipped = append(skipped, "the bake of "+describeStep(s))
			s.NoBake = true
		}
		out = append(out, s)
	}
	return out, skipped
}
