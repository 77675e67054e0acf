package rollout

// The executors of the steps that start instances and move traffic:
// start, smoke, weight (and internal users), promote, scale down.

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/shipgate/shipgate/internal/analysis"
	"github.com/shipgate/shipgate/internal/audit"
)

// stepStart makes the new release run at its count; after a crash the
// runtime finds the instances it started before.
func (e *reconciler) stepStart(ctx context.Context, st *Spec, r *Rollout) error {
	insts, err := e.ensure(ctx, st, r.Version, st.Instances, nil)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return failf("%s did not start: %v", r.Version, err)
	}
	if sameInstances(insts, r.New) {
		return nil
	}
	r.New = insts
	if err := e.save(ctx, r, nil); err != nil {
		if errors.Is(err, ErrUnavailable) || errors.Is(err, ErrNotLeader) {
			// Unrecorded: the step runs again (here, or on the server
			// that leads now), and Ensure finds the release's instances
			// there instead of starting more.
			r.New = nil
		}
		return err
	}
	return nil
}

func (e *reconciler) stepSmoke(ctx context.Context, st *Spec, r *Rollout) error {
	if st.PreviewListen != "" {
		// The preview address shows the new release to smoke checks and to
		// people before any user sees it.
		if err := e.setRoutes(ctx, r.Env, e.canaryRoutes(st, r, r.Weight)); err != nil {
			return fmt.Errorf("set preview: %w", err)
		}
		for _, c := range st.Smoke {
			if err := e.probe(ctx, r.Env, st.PreviewListen, c); err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				return failf("smoke check GET %s through the preview address %s failed: %v", c.Path, st.PreviewListen, err)
			}
		}
	}
	for _, inst := range r.New {
		for _, c := range st.Smoke {
			if err := e.probe(ctx, r.Env, inst.Addr, c); err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				return failf("smoke check GET %s on %s failed: %v", c.Path, inst.ID, err)
			}
		}
	}
	if headerPreview(st, r) {
		// The new release passed its smoke checks: the preview header
		// shows it (blue-green's green before the switch) while users
		// stay on the stable release, until promotion or a rollback
		// sets routes without it.
		if err := e.setRoutes(ctx, r.Env, e.canaryRoutes(st, r, r.Weight)); err != nil {
			return fmt.Errorf("set the preview rule: %w", err)
		}
	}
	return nil
}

func (e *reconciler) stepWeight(ctx context.Context, d *driver, st *Spec, r *Rollout, step Step) error {
	weight := step.Weight
	if step.Kind == StepInternal {
		weight = 0
	}
	if err := e.setRoutes(ctx, r.Env, e.canaryRoutes(st, r, weight)); err != nil {
		return fmt.Errorf("set canary weight %d%%: %w", weight, err)
	}
	since := e.clock.Now() // the window begins once the weight is served
	if r.Weight != weight || r.FirstTrafficAt.IsZero() {
		r.Weight = weight
		if r.FirstTrafficAt.IsZero() {
			r.FirstTrafficAt = e.clock.Now()
		}
		if err := e.save(ctx, r, nil); err != nil {
			return err
		}
	}
	// Internal users are few: their bake fails on evidence but does not
	// wait for enough of it to pass.
	return e.bake(ctx, d, st, r, step, since, r.Version, r.FromVersion, nil, step.Kind != StepInternal)
}

func summarize(s analysis.Sample) Summary {
	return Summary{
		Requests: s.Requests, Errors: s.Errors(), ErrorRate: s.ErrorRate(),
		P50: s.Latency.Quantile(0.5), P99: s.Latency.Quantile(0.99),
	}
}

func (e *reconciler) stepPromote(ctx context.Context, st *Spec, r *Rollout) error {
	if err := e.checkApproval(ctx, r); err != nil {
		return err
	}
	if r.Blue == nil {
		// What the old release measured before the switch (all the
		// metric source has of it) is the baseline a blue-green observe
		// step judges the new one against; it is recorded with the
		// promotion, so a resumed observe has it too.
		if s, err := e.window(ctx, r.Env, r.FromVersion, time.Time{}); err == nil {
			blue := countersOf(s)
			r.Blue = &blue
		}
	}
	routes := e.stableRoutes(st, r.Version, r.New, r.Seed)
	if st.PreviewListen != "" && r.Kind == KindDeploy && len(r.Old) > 0 {
		// Blue stays reachable on the preview address while it runs.
		routes.Preview = Backend{Version: r.FromVersion, Addrs: addrs(r.Old)}
	}
	if err := e.setRoutes(ctx, r.Env, routes); err != nil {
		return fmt.Errorf("promote: %w", err)
	}
	now := e.clock.Now()
	r.Weight, r.PromotedAt = 100, now
	if r.FirstTrafficAt.IsZero() {
		r.FirstTrafficAt = now
	}
	env := e.nextEnvState(ctx, r, r.Version, r.New, r.Kind == KindRollback)
	ev := e.event(r, ActorEngine, audit.ActionPromote, fmt.Sprintf("%s takes 100%% of traffic", r.Version))
	return e.save(ctx, r, &env, ev)
}

func (e *reconciler) stepScaleDown(ctx context.Context, d *driver, st *Spec, r *Rollout, step Step) error {
	deadline := r.StepStartedAt.Add(step.Duration)
	ticker := e.clock.NewTicker(min(e.tick, 100*time.Millisecond))
	defer ticker.Stop()
	for e.clock.Now().Before(deadline) && !d.hurried() {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-ticker.C():
		}
	}
	stop, stopV := r.Old, r.FromVersion
	keep, keepInsts := r.Version, r.New
	if r.Kind == KindDrill {
		// The drill switched back: the previous release is the one to stop.
		stop, stopV, keep, keepInsts = r.New, r.Version, r.FromVersion, r.Old
	}
	// Take the old release off the preview address before it stops.
	if err := e.setRoutes(ctx, r.Env, e.stableRoutes(st, keep, keepInsts, r.Seed)); err != nil {
		return fmt.Errorf("clear the preview: %w", err)
	}
	if err := e.retireDrained(ctx, st, stopV, stop, 0); err != nil {
		return fmt.Errorf("stop %s: %w", orNone(r.FromVersion), err)
	}
	return nil
}
