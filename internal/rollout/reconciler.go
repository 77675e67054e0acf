package rollout

// The reconciler: one goroutine per active rollout drives its steps from
// the last committed one, decides rollbacks and restores the stable
// release. Every change is committed before it is acted on.

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/shipgate/shipgate/internal/audit"
	"github.com/shipgate/shipgate/internal/clock"
)

// driver is the goroutine of one active rollout and the ways to reach it.
type driver struct {
	id       int64
	restored chan struct{} // closed once traffic is back on the old release
	done     chan struct{} // closed when the goroutine ends
	wake     chan struct{} // a command for the running step is waiting
	acked    chan struct{} // the running step recorded a command

	mu         sync.Mutex
	cancelStep context.CancelFunc
	abort      *Failure
	hurry      bool
	restoredOK bool
	approvals  []*Approval // handed over by Approve, recorded by the driver
	promotion  *Failure    // handed over by Promote: who ends the bake, and why
	full       bool        // the promotion skips every remaining bake too
	pause      *Failure    // handed over by Pause
	resume     *Failure    // handed over by Resume
	stepKind   StepKind    // the step being run, for Approve to check
}

// startDrivers recovers every environment (recoverEnv) and launches a
// driver for each active rollout.
func (e *reconciler) startDrivers(ctx context.Context) error {
	e.mu.Lock()
	if e.base != nil {
		e.mu.Unlock()
		return errors.New("rollout: engine already started")
	}
	e.base, e.stop = context.WithCancel(context.WithoutCancel(ctx))
	stop := e.stop
	e.halt = func() { stop() }
	e.mu.Unlock()

	active, err := e.store.ActiveRollouts(ctx)
	if err != nil {
		return fmt.Errorf("list active rollouts: %w", err)
	}
	byEnv := map[string]Rollout{}
	for _, r := range active {
		if r.App == e.specs.App() {
			byEnv[r.Env] = r
		}
	}
	for _, env := range e.envNames() {
		r, hasActive := byEnv[env]
		if err := e.recoverEnv(ctx, env, &r, hasActive); err != nil {
			return fmt.Errorf("restore %s: %w", env, err)
		}
		if hasActive {
			e.mu.Lock()
			e.launch(r)
			e.mu.Unlock()
		}
	}
	return nil
}

// recoverEnv puts an environment's routes back as the store says they were.
func (e *reconciler) recoverEnv(ctx context.Context, env string, r *Rollout, hasActive bool) error {
	state, err := e.liveState(ctx, e.specs.App(), env)
	if errors.Is(err, ErrNotFound) {
		if !hasActive {
			return nil
		}
	} else if err != nil {
		return err
	}
	st, specErr := e.specs.Spec(env)
	if hasActive {
		st, specErr = e.rolloutSpec(ctx, r)
	}
	if specErr != nil {
		return specErr
	}
	if err == nil && (!hasActive || r.PromotedAt.IsZero()) {
		// The stable release at the count it had: the runtime finds the
		// instances an earlier server started, and replaces those gone.
		count := len(state.Instances)
		switch {
		case hasActive && r.Strategy == StrategyRolling:
			count = len(r.Old) // those the rolling rollout has not replaced yet
		case count == 0:
			count = st.Instances
		}
		insts, err := e.ensure(ctx, st, state.Stable, count, nil)
		if err != nil {
			return err
		}
		if !sameInstances(insts, state.Instances) {
			state.Instances = insts
			state.UpdatedAt = e.clock.Now()
			c := Change{Env: &state}
			if hasActive {
				r.Old = insts
				r.UpdatedAt = state.UpdatedAt
				cp := *r
				c.Rollout = &cp
			}
			if err := e.store.Commit(ctx, c); err != nil {
				return err
			}
		}
	}
	restored := r.Kind == KindDrill && r.past(StepRestore)
	if hasActive && r.Phase == PhaseRunning && len(r.New) > 0 && !restored {
		// The new release as the rollout left it: a replaced instance
		// (its process died with the server) is not a failed canary.
		insts, err := e.ensure(ctx, st, r.Version, len(r.New), nil)
		if err != nil {
			e.log.Warn("new release not running after the restart", "rollout", r.ID, "err", err)
		} else if !sameInstances(insts, r.New) {
			r.New, r.UpdatedAt = insts, e.clock.Now()
			cp := *r
			if err := e.store.Commit(ctx, Change{Rollout: &cp}); err != nil {
				return err
			}
		}
	}
	routes := Routes{}
	switch {
	case hasActive && r.Kind == KindDrill && r.past(StepRestore):
		// The drill switched back already: its previous release is only
		// waiting to be stopped.
		routes = e.stableRoutes(st, r.FromVersion, r.Old, r.Seed)
	case hasActive && !r.PromotedAt.IsZero():
		routes = e.stableRoutes(st, r.Version, r.New, r.Seed)
		if st.PreviewListen != "" && r.Kind == KindDeploy && len(r.Old) > 0 {
			routes.Preview = Backend{Version: r.FromVersion, Addrs: addrs(r.Old)}
		}
	case hasActive && r.Phase == PhaseRunning && (r.Weight > 0 || r.reached(StepInternal)):
		routes = e.canaryRoutes(st, r, r.Weight)
	case hasActive && r.Phase == PhaseRunning && len(r.New) > 0:
		routes = e.canaryRoutes(st, r, 0)
	case state.Stable != "":
		routes = e.stableRoutes(st, state.Stable, state.Instances, "")
	}
	return e.setRoutes(ctx, env, routes)
}

// stopDrivers stops every driver and waits for it to return.
func (e *reconciler) stopDrivers() {
	e.mu.Lock()
	stop := e.stop
	e.mu.Unlock()
	if stop != nil {
		stop()
	}
	e.wg.Wait()
	e.mu.Lock()
	if e.stop != nil && e.base.Err() != nil {
		e.base, e.stop = nil, nil
	}
	e.mu.Unlock()
}

// launch starts the goroutine that drives r. Called with e.mu held (by
// claim, or by startDrivers).
func (e *reconciler) launch(r Rollout) {
	d := &driver{id: r.ID, restored: make(chan struct{}), done: make(chan struct{}), wake: make(chan struct{}, 1), acked: make(chan struct{}, 1)}
	if r.Phase == PhaseRunning && r.StepIndex < len(r.Steps) {
		// A resumed rollout is at its step from the start: a command
		// waiting for it (an approval sent while the last leader died)
		// is handed over before the driver gets there.
		d.stepKind = r.Steps[r.StepIndex].Kind
	}
	e.drivers[r.Env] = d
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		defer close(d.done)
		defer func() {
			e.mu.Lock()
			if e.drivers[r.Env] == d {
				delete(e.drivers, r.Env)
			}
			e.mu.Unlock()
		}()
		e.drive(e.base, d, r)
	}()
}

// driver returns the driver of env's active rollout, nil when none runs.
func (e *reconciler) driver(env string) *driver {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.drivers[env]
}

// claim is how a command that starts a rollout in env takes it: it takes
// e.mu and makes room (makeRoom). When env is free it returns with e.mu
// held: the command commits its rollout and launches it, or gives up, and
// calls unclaim. When a rollout keeps env busy, it returns that rollout
// and its driver, without the lock.
func (e *reconciler) claim(ctx context.Context, env string, hurry bool) (*Rollout, *driver, error) {
	e.mu.Lock()
	busy, err := e.makeRoom(ctx, env, hurry)
	if err != nil || busy != nil {
		d := e.drivers[env]
		e.mu.Unlock()
		return busy, d, err
	}
	return nil, nil, nil
}

// unclaim ends a claim.
func (e *reconciler) unclaim() { e.mu.Unlock() }

// makeRoom waits until no driver runs in env, and returns the rollout
// that keeps it busy when it will not wait. A rollout whose final phase is
// committed has a driver that is only leaving: it waits for it rather
// than refuse (a deploy or a drill right after a rollout ended was refused
// as a conflict in that moment). With hurry (a deploy), a rollout only
// waiting to scale down its old release is told to do so now, and waited
// for too. Called with e.mu held; it lets go of it while it waits, and
// looks again once it has it back.
func (e *reconciler) makeRoom(ctx context.Context, env string, hurry bool) (*Rollout, error) {
	for {
		d := e.drivers[env]
		if d == nil {
			return nil, nil
		}
		r, err := e.store.GetRollout(ctx, d.id)
		if err != nil {
			return nil, err
		}
		final := r.Phase.Final()
		scalingDown := r.Phase == PhaseRunning && r.StepIndex < len(r.Steps) && r.Steps[r.StepIndex].Kind == StepScaleDown
		if !final && (!hurry || !scalingDown) {
			return &r, nil
		}
		if !final {
			d.mu.Lock()
			d.hurry = true
			d.mu.Unlock()
		}
		if err := e.awaitLeave(ctx, d, r.ID); err != nil {
			return nil, err
		}
	}
}

// awaitLeave waits, without e.mu, for driver d of rollout id to end.
func (e *reconciler) awaitLeave(ctx context.Context, d *driver, id int64) error {
	e.mu.Unlock()
	defer e.mu.Lock()
	timeout := e.clock.NewTimer(2 * time.Minute)
	defer timeout.Stop()
	select {
	case <-d.done:
		return nil
	case <-timeout.C():
		return fmt.Errorf("rollout %d is still scaling down: %w", id, ErrConflict)
	case <-ctx.Done():
		return ctx.Err()
	}
}

// requestAbort asks the driver to roll back, interrupting the current step.
func (d *driver) requestAbort(f *Failure) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.abort == nil {
		d.abort = f
	}
	if d.cancelStep != nil {
		d.cancelStep()
	}
}

// poke tells the running step that a command waits for it.
func (d *driver) poke() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// ack tells the command's caller that the step recorded it.
func (d *driver) ack() {
	select {
	case d.acked <- struct{}{}:
	default:
	}
}

func (d *driver) takeAbort() *Failure {
	d.mu.Lock()
	defer d.mu.Unlock()
	f := d.abort
	d.abort = nil
	return f
}

func (d *driver) markRestored() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.restoredOK {
		d.restoredOK = true
		close(d.restored)
	}
}

func (d *driver) hurried() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.hurry
}

// What a command may do with a driver: read its step, hand it a command
// and wait for the step to record it (deliver), ask it to roll back
// (requestAbort) and wait for traffic to be back (awaitRestored), or wait
// for it to end (awaitDone).

// step returns the kind of the step the driver runs.
func (d *driver) step() StepKind {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.stepKind
}

// deliver hands a command to the running step (hand is called with d.mu
// held), wakes it and waits until it recorded it, the driver ended, or
// ten seconds of clk passed.
func (d *driver) deliver(ctx context.Context, clk Clock, hand func(*driver)) error {
	d.mu.Lock()
	hand(d)
	d.mu.Unlock()
	d.poke()
	timeout := clk.NewTimer(10 * time.Second)
	defer timeout.Stop()
	select {
	case <-d.acked:
	case <-d.done:
	case <-timeout.C():
	case <-ctx.Done():
		return ctx.Err()
	}
	return nil
}

// awaitRestored waits until traffic is back on the old release after
// requestAbort, or the driver ended.
func (d *driver) awaitRestored(ctx context.Context) error {
	select {
	case <-d.restored:
	case <-d.done:
	case <-ctx.Done():
		return ctx.Err()
	}
	return nil
}

// awaitDone waits until the driver ended.
func (d *driver) awaitDone(ctx context.Context) error {
	select {
	case <-d.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// drive runs r's steps until it reaches a final phase or ctx ends.
func (e *reconciler) drive(ctx context.Context, d *driver, r Rollout) {
	for !r.Phase.Final() && ctx.Err() == nil {
		if r.Phase == PhaseRollingBack {
			e.restoreStable(ctx, d, &r)
			continue
		}
		if r.StepIndex >= len(r.Steps) {
			e.succeed(ctx, &r)
			continue
		}
		stepCtx, cancel := context.WithCancel(ctx)
		d.mu.Lock()
		d.cancelStep = cancel
		pending := d.abort != nil
		d.mu.Unlock()
		var err error
		if !pending {
			err = e.runStep(stepCtx, d, &r)
		}
		cancel()
		if f := d.takeAbort(); f != nil {
			e.decideRollback(ctx, &r, f)
			continue
		}
		if ctx.Err() != nil {
			return // shutting down: the next Start resumes from the committed step
		}
		if errors.Is(err, ErrUnavailable) {
			// The store did not answer: nothing of the step is recorded
			// past its last commit. Not the release's fault: wait for the
			// store and run the step again from what it holds.
			e.log.Warn("the store does not answer; the step waits and runs again from its last committed state", "rollout", r.ID, "err", err)
			if !e.awaitStore(ctx, &r) {
				return
			}
			continue
		}
		if err != nil {
			var f *Failure
			if !errors.As(err, &f) {
				f = &Failure{Reason: err.Error()}
			}
			e.decideRollback(ctx, &r, f)
			continue
		}
		e.advance(ctx, &r)
	}
}

// runStep runs the rollout's current step with the executor of its kind.
func (e *reconciler) runStep(ctx context.Context, d *driver, r *Rollout) error {
	step := r.Steps[r.StepIndex]
	d.mu.Lock()
	d.stepKind = step.Kind
	d.mu.Unlock()
	st, err := e.rolloutSpec(ctx, r)
	if err != nil {
		return err
	}
	run, ok := executors[step.Kind]
	if !ok {
		return fmt.Errorf("unknown step %q", step.Kind)
	}
	return run(e, ctx, d, st, r, step)
}

// rolloutSpec is the configuration a rollout runs with: the one frozen into it
// at creation (a rollout from before Specs: its stage, translated), with
// the values of its variables, which are never frozen, from the live
// config; or, for a rollout that recorded nothing, the live config's.
func (e *deps) rolloutSpec(ctx context.Context, r *Rollout) (*Spec, error) {
	var frozen *Spec
	switch {
	case r.Spec != nil:
		frozen = r.Spec
	case len(r.LegacyStage) > 0:
		st, err := e.specs.Legacy(ctx, r.LegacyStage)
		if err != nil {
			return nil, fmt.Errorf("read the configuration rollout %d recorded: %w", r.ID, err)
		}
		frozen = st
	default:
		return e.specs.Spec(r.Env)
	}
	cp := *frozen
	if cp.Vars == nil {
		cp.Vars = map[string]string{}
		if live, err := e.specs.Spec(r.Env); err == nil {
			cp.Vars = live.Vars
		}
	}
	return &cp, nil
}

// rolloutSpecOrLive is rolloutSpec for the paths that must go on whatever
// happens (a rollback): failing that, the live config's, failing that an
// empty one.
func (e *deps) rolloutSpecOrLive(ctx context.Context, r *Rollout) *Spec {
	if st, err := e.rolloutSpec(ctx, r); err == nil {
		return st
	}
	if st, err := e.specs.Spec(r.Env); err == nil {
		return st
	}
	return &Spec{App: r.App, Name: r.Env}
}

// freeze returns a copy of st to record with a rollout: its variables,
// which may hold secrets, are left out (the runtime reads them from the
// release and the live config).
func freeze(st *Spec) *Spec {
	cp := *st
	cp.Vars = nil
	return &cp
}

// executor runs one step of a kind. It is idempotent: after a crash the
// step runs again from what the rollout recorded.
type executor func(e *reconciler, ctx context.Context, d *driver, st *Spec, r *Rollout, step Step) error

// executors holds the executor of every step kind.
var executors = map[StepKind]executor{
	StepStart: func(e *reconciler, ctx context.Context, _ *driver, st *Spec, r *Rollout, _ Step) error {
		return e.stepStart(ctx, st, r)
	},
	StepSmoke: func(e *reconciler, ctx context.Context, _ *driver, st *Spec, r *Rollout, _ Step) error {
		return e.stepSmoke(ctx, st, r)
	},
	StepApproval: func(e *reconciler, ctx context.Context, d *driver, _ *Spec, r *Rollout, _ Step) error {
		return e.stepApproval(ctx, d, r)
	},
	StepInternal: (*reconciler).stepWeight,
	StepWeight:   (*reconciler).stepWeight,
	StepBatch:    (*reconciler).stepBatch,
	StepPromote: func(e *reconciler, ctx context.Context, _ *driver, st *Spec, r *Rollout, _ Step) error {
		return e.stepPromote(ctx, st, r)
	},
	StepPostSmoke: func(e *reconciler, ctx context.Context, _ *driver, st *Spec, r *Rollout, _ Step) error {
		return e.stepPostSmoke(ctx, st, r)
	},
	StepObserve: (*reconciler).stepObserve,
	StepRestore: func(e *reconciler, ctx context.Context, _ *driver, st *Spec, r *Rollout, _ Step) error {
		return e.stepRestore(ctx, st, r)
	},
	StepMigrate: func(e *reconciler, ctx context.Context, _ *driver, st *Spec, r *Rollout, _ Step) error {
		return e.stepMigrate(ctx, st, r)
	},
	StepScaleDown: (*reconciler).stepScaleDown,
}

// advance commits the move to the next step before it is acted on.
func (e *reconciler) advance(ctx context.Context, r *Rollout) {
	r.StepIndex++
	r.StepStartedAt = e.clock.Now()
	if r.SettledAt.IsZero() && !slices.ContainsFunc(r.Steps[r.StepIndex:], func(s Step) bool { return s.Kind != StepScaleDown && s.Kind != StepRestore }) {
		r.SettledAt = r.StepStartedAt
	}
	var evs []audit.Event
	if r.StepIndex < len(r.Steps) {
		step := r.Steps[r.StepIndex]
		ev := e.event(r, ActorEngine, audit.ActionStep, describeStep(step))
		ev.Data["step"] = strconv.Itoa(r.StepIndex + 1)
		evs = append(evs, ev)
	}
	e.mustSave(ctx, r, nil, evs...)
}

func (e *reconciler) succeed(ctx context.Context, r *Rollout) {
	now := e.clock.Now()
	r.Phase, r.FinishedAt = PhaseSucceeded, now
	ev := e.event(r, ActorEngine, audit.ActionSucceed, fmt.Sprintf("%s is stable; %s stopped", r.Version, orNone(r.FromVersion)))
	if r.Kind == KindDrill {
		ev = e.event(r, r.Actor, audit.ActionDrill, fmt.Sprintf("%s came back, served, and %s was restored", r.Version, r.FromVersion))
	}
	e.mustSave(ctx, r, nil, ev)
	e.log.Info("rollout succeeded", "rollout", r.ID, "env", r.Env, "version", r.Version)
}

// decideRollback commits the decision to roll back, with why; the
// reconciler then restores the stable release (restoreStable).
func (e *reconciler) decideRollback(ctx context.Context, r *Rollout, f *Failure) {
	now := e.clock.Now()
	r.Phase, r.RollbackStartedAt = PhaseRollingBack, now
	action, actor := audit.ActionRollbackAuto, ActorEngine
	if f.Manual {
		action, actor = audit.ActionRollbackManual, f.Actor
		r.Reason = "rolled back by " + f.Actor + ": " + f.Reason
	} else {
		r.Reason = f.Reason
	}
	ev := e.event(r, actor, action, f.Reason)
	stampCommand(ev, f.Command)
	if r.StepIndex < len(r.Steps) {
		ev.Data["step"] = describeStep(r.Steps[r.StepIndex])
	}
	if f.Gate != "" {
		ev.Data["gate"] = f.Gate
		ev.Data["value"] = strconv.FormatFloat(f.Value, 'g', 4, 64)
		ev.Data["threshold"] = strconv.FormatFloat(f.Threshold, 'g', 4, 64)
	}
	e.log.Warn("rolling back", "rollout", r.ID, "env", r.Env, "version", r.Version, "reason", r.Reason)
	if err := e.save(ctx, r, nil, ev); err != nil {
		// Traffic comes first: roll back now and record it as soon as the
		// store answers again.
		e.log.Error("record rollback decision", "rollout", r.ID, "err", err)
	}
}

// restoreStable carries out a rollback: it moves all traffic to the old
// release, then stops the new one.
// For a rolling rollout it then starts again as many old instances as were
// replaced.
func (e *reconciler) restoreStable(ctx context.Context, d *driver, r *Rollout) {
	st := e.rolloutSpecOrLive(ctx, r)
	var env *EnvState
	if r.FromVersion == "" && !r.PromotedAt.IsZero() {
		// A first deploy that failed after it went live: nothing was live
		// before, so nothing is now. The router stops sending users to
		// the new instances before they stop.
		if !e.setRoutesRetry(ctx, r, Routes{Seed: r.Seed}) {
			return
		}
		r.TrafficRestoredAt = e.clock.Now()
		env = &EnvState{App: r.App, Env: r.Env, UpdatedAt: e.clock.Now()}
	}
	if r.FromVersion != "" {
		old := e.alive(ctx, r.Env, r.FromVersion)
		if len(old) == 0 {
			insts, err := e.ensure(ctx, st, r.FromVersion, st.Instances, nil)
			if err != nil {
				e.log.Error("restart old release for rollback", "rollout", r.ID, "err", err)
			} else {
				old, r.Replaced = insts, nil
			}
		}
		if !e.setRoutesRetry(ctx, r, e.stableRoutes(st, r.FromVersion, old, r.Seed)) {
			return
		}
		r.TrafficRestoredAt = e.clock.Now()
		if len(r.Replaced) > 0 {
			all, err := e.ensure(ctx, st, r.FromVersion, len(old)+len(r.Replaced), nil)
			if err != nil {
				e.log.Error("restore replaced instances", "rollout", r.ID, "err", err)
			} else {
				old = all
				r.Replaced = nil
				if !e.setRoutesRetry(ctx, r, e.stableRoutes(st, r.FromVersion, old, r.Seed)) {
					return
				}
			}
		}
		r.Old = old
		if !r.PromotedAt.IsZero() || r.Strategy == StrategyRolling {
			// A failed drill leaves the history as it was.
			next := e.nextEnvState(ctx, r, r.FromVersion, old, r.Kind != KindDrill)
			env = &next
		}
	}
	r.Weight = 0
	if r.TrafficRestoredAt.IsZero() {
		r.TrafficRestoredAt = e.clock.Now()
	}
	// Traffic is back: a manual rollback waiting on it answers even when
	// the store cannot write (a full disk); the record is retried after.
	saveErr := e.save(ctx, r, env)
	d.markRestored()
	if saveErr != nil {
		e.mustSave(ctx, r, env)
	}
	final := PhaseRolledBack
	if r.MigrationFailed {
		final = PhaseFailed
	}
	if err := e.revertMigrations(ctx, r); err != nil {
		// The old release serves, but the schema is not what it was: say
		// so loudly rather than call the rollback done.
		e.log.Error("revert migrations", "rollout", r.ID, "err", err)
		r.Reason += "; " + err.Error()
		final = PhaseFailed
	}
	if err := e.retireDrained(ctx, st, r.Version, r.New, 0); err != nil {
		e.log.Error("stop rolled back instances", "rollout", r.ID, "err", err)
	}
	now := e.clock.Now()
	r.Phase, r.FinishedAt = final, now
	what := fmt.Sprintf("traffic back on %s; %s stopped", orNone(r.FromVersion), r.Version)
	if r.FromVersion == "" {
		what = fmt.Sprintf("%s stopped; nothing is live in %s, as before this first deploy", r.Version, r.Env)
	}
	ev := e.event(r, ActorEngine, audit.ActionRolledBack, what)
	if !r.FirstTrafficAt.IsZero() {
		ev.Data["seconds_from_first_traffic"] = strconv.FormatFloat(r.TrafficRestoredAt.Sub(r.FirstTrafficAt).Seconds(), 'f', 2, 64)
	}
	ev.Data["seconds_to_restore_traffic"] = strconv.FormatFloat(r.TrafficRestoredAt.Sub(r.RollbackStartedAt).Seconds(), 'f', 3, 64)
	events := []audit.Event{ev}
	if r.Kind == KindDrill {
		drill := e.event(r, r.Actor, audit.ActionDrill, "drill failed: "+r.Reason)
		drill.Outcome = "failed"
		events = append(events, drill)
	}
	e.mustSave(ctx, r, nil, events...)
}

// setRoutesRetry sets routes until the router takes them or ctx ends.
func (e *reconciler) setRoutesRetry(ctx context.Context, r *Rollout, routes Routes) bool {
	for err := e.setRoutes(ctx, r.Env, routes); err != nil; err = e.setRoutes(ctx, r.Env, routes) {
		e.log.Error("move traffic back", "rollout", r.ID, "err", err)
		if !clock.Sleep(ctx, e.clock, time.Second) {
			return false
		}
	}
	return true
}

// save commits r (and env, and events) with a fresh UpdatedAt.
func (e *reconciler) save(ctx context.Context, r *Rollout, env *EnvState, events ...audit.Event) error {
	r.UpdatedAt = e.clock.Now()
	cp := *r
	if err := e.store.Commit(ctx, Change{Rollout: &cp, Env: env, Audit: events}); err != nil {
		if errors.Is(err, ErrNotLeader) {
			// Another server drives the rollouts now: stop every driver
			// before it acts on a decision it could not record.
			e.log.Warn("the store refused a write: another server leads; stopping the rollout drivers", "rollout", r.ID, "err", err)
			if e.halt != nil {
				e.halt()
			}
		}
		return fmt.Errorf("record rollout %d: %w", r.ID, err)
	}
	return nil
}

// awaitStore waits until the store answers again and reloads r from it;
// false when ctx ended first.
func (e *reconciler) awaitStore(ctx context.Context, r *Rollout) bool {
	for {
		if !clock.Sleep(ctx, e.clock, time.Second) {
			return false
		}
		got, err := e.store.GetRollout(ctx, r.ID)
		if err == nil {
			*r = got
			return true
		}
		e.log.Warn("the store still does not answer", "rollout", r.ID, "err", err)
	}
}

// mustSave retries a commit until it succeeds or ctx ends: the step it
// records has already happened and must not be forgotten.
func (e *reconciler) mustSave(ctx context.Context, r *Rollout, env *EnvState, events ...audit.Event) {
	for {
		err := e.save(ctx, r, env, events...)
		if err == nil {
			return
		}
		e.log.Error("record rollout, retrying", "rollout", r.ID, "err", err)
		if !clock.Sleep(ctx, e.clock, time.Second) {
			return
		}
	}
}

func (e *deps) event(r *Rollout, actor, action, reason string) audit.Event {
	return audit.Event{
		Time: e.clock.Now(), Actor: actor, Action: action,
		Subject: r.App + "/" + r.Env + "/" + r.Version, Reason: reason, Outcome: "ok",
		Data: rolloutData(r.ID),
	}
}

// rolloutData starts an event's data with the rollout id, once it has one.
func rolloutData(id int64) map[string]string {
	if id == 0 {
		return map[string]string{}
	}
	return map[string]string{"rollout": strconv.FormatInt(id, 10)}
}

// canaryRoutes is the routing table of r at a canary weight: stable and canary
// backends, internal users when the plan has them and they were reached,
// the preview backend and the router's health check.
func (e *deps) canaryRoutes(st *Spec, r *Rollout, weight int) Routes {
	rt := Routes{
		Stable: Backend{Version: r.FromVersion, Addrs: addrs(r.Old)},
		Canary: Backend{Version: r.Version, Addrs: addrs(r.New)},
		Weight: weight, Seed: r.Seed, Health: routerHealth(st),
	}
	if r.FromVersion == "" || len(r.Old) == 0 {
		rt.Stable = Backend{}
	}
	if len(r.New) == 0 {
		rt.Canary = Backend{}
	}
	if len(r.New) > 0 && (st.PreviewListen != "" || headerPreview(st, r)) {
		rt.Preview = Backend{Version: r.Version, Addrs: addrs(r.New)}
	}
	if c := st.Strategy.Canary; c != nil && c.Internal != nil && r.reached(StepInternal) {
		m := c.Internal.Match
		rt.Match = &m
	}
	return rt
}

// headerPreview reports whether r's release is shown by the preview
// header of a router that has no preview address (Spec.PreviewHeader): a
// deploy beside a stable release, before the switch. After the switch, or
// once traffic went back to the stable release, the routes have no
// preview, so the router drops the rule. A first deploy has none: there
// is no release to compare it with, and a rollback of it before the
// switch sets no routes that would take the rule away.
func headerPreview(st *Spec, r *Rollout) bool {
	return st.PreviewHeader != "" && r.Kind == KindDeploy && r.FromVersion != "" && len(r.Old) > 0 && r.PromotedAt.IsZero()
}

// stableRoutes sends everything to one version.
func (e *deps) stableRoutes(st *Spec, version string, insts []Instance, seed string) Routes {
	return Routes{Stable: Backend{Version: version, Addrs: addrs(insts)}, Seed: seed, Health: routerHealth(st)}
}

// routerHealth is the health check the router runs on st's instances.
func routerHealth(st *Spec) *RouteHealth {
	h := st.Run.Health
	return &h
}

// reached reports whether the rollout has entered a step of kind k.
func (r *Rollout) reached(k StepKind) bool {
	for i := 0; i <= r.StepIndex && i < len(r.Steps); i++ {
		if r.Steps[i].Kind == k {
			return true
		}
	}
	return false
}

// past reports whether the rollout has finished a step of kind k.
func (r *Rollout) past(k StepKind) bool {
	for i := 0; i < r.StepIndex && i < len(r.Steps); i++ {
		if r.Steps[i].Kind == k {
			return true
		}
	}
	return false
}
