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
	"github.com/shipgate/shipgate/internal/config"
)

func (e *Engine) stepStart(ctx context.Context, r *Rollout) error {
	if len(r.New) > 0 {
		if e.allRunning(ctx, r.New) {
			return nil
		}
		_ = e.runtime.Stop(ctx, r.New)
		r.New = nil
	}
	rel, err := e.store.GetRelease(ctx, r.App, r.Version)
	if err != nil {
		return err
	}
	spec, err := instanceSpec(e.cfg, r.Env, rel)
	if err != nil {
		return err
	}
	insts, err := e.runtime.Start(ctx, spec)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return failf("%s did not start: %v", r.Version, err)
	}
	r.New = insts
	if err := e.save(ctx, r, nil); err != nil {
		if errors.Is(err, ErrUnavailable) || errors.Is(err, ErrNotLeader) {
			// Unrecorded, they would be duplicated when the step runs
			// again (here, or on the server that leads now).
			_ = e.runtime.Stop(context.WithoutCancel(ctx), insts)
			r.New = nil
		}
		return err
	}
	return nil
}

func (e *Engine) allRunning(ctx context.Context, insts []Instance) bool {
	for _, inst := range insts {
		if e.runtime.Status(ctx, inst).State != InstanceRunning {
			return false
		}
	}
	return true
}

func (e *Engine) stepSmoke(ctx context.Context, st *config.Stage, r *Rollout) error {
	if st.Env.PreviewListen != "" {
		// The preview address shows the new release to smoke checks and to
		// people before any user sees it.
		if err := e.routers[r.Env].SetRoutes(ctx, e.routes(st, r, r.Weight)); err != nil {
			return fmt.Errorf("set preview: %w", err)
		}
		for _, c := range smokeChecks(st.Smoke) {
			if err := e.prober.Probe(ctx, st.Env.PreviewListen, c); err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				return failf("smoke check GET %s through the preview address %s failed: %v", c.Path, st.Env.PreviewListen, err)
			}
		}
	}
	for _, inst := range r.New {
		for _, c := range smokeChecks(st.Smoke) {
			if err := e.prober.Probe(ctx, inst.Addr, c); err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				return failf("smoke check GET %s on %s failed: %v", c.Path, inst.ID, err)
			}
		}
	}
	return nil
}

func (e *Engine) stepWeight(ctx context.Context, d *driver, st *config.Stage, r *Rollout, step Step) error {
	router := e.routers[r.Env]
	weight := step.Weight
	if step.Kind == StepInternal {
		weight = 0
	}
	baseline, err := router.Stats(ctx)
	if err != nil {
		return fmt.Errorf("read router stats: %w", err)
	}
	if err := router.SetRoutes(ctx, e.routes(st, r, weight)); err != nil {
		return fmt.Errorf("set canary weight %d%%: %w", weight, err)
	}
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
	return e.bake(ctx, d, st, r, step, baseline, r.Version, r.FromVersion, nil, step.Kind != StepInternal)
}

func summarize(s analysis.Sample) Summary {
	return Summary{
		Requests: s.Requests, Errors: s.Errors(), ErrorRate: s.ErrorRate(),
		P50: s.Latency.Quantile(0.5), P99: s.Latency.Quantile(0.99),
	}
}

func (e *Engine) stepPromote(ctx context.Context, st *config.Stage, r *Rollout) error {
	if err := e.checkApproval(ctx, r); err != nil {
		return err
	}
	router := e.routers[r.Env]
	if stats, err := router.Stats(ctx); err == nil && r.Blue == nil {
		// What the old release measured before the switch is the baseline
		// a blue-green observe step judges the new one against; it is
		// recorded with the promotion, so a resumed observe has it too.
		blue := countersOf(stats[r.FromVersion])
		r.Blue = &blue
	}
	routes := e.stableRoutes(r.Version, r.New, r.Seed)
	if st.Env.PreviewListen != "" && r.Kind == KindDeploy && len(r.Old) > 0 {
		// Blue stays reachable on the preview address while it runs.
		routes.Preview = Backend{Version: r.FromVersion, Addrs: addrs(r.Old)}
	}
	if err := router.SetRoutes(ctx, routes); err != nil {
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

func (e *Engine) stepScaleDown(ctx context.Context, d *driver, r *Rollout, step Step) error {
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
	stop := r.Old
	keep, keepInsts := r.Version, r.New
	if r.Kind == KindDrill {
		// The drill switched back: the previous release is the one to stop.
		stop, keep, keepInsts = r.New, r.FromVersion, r.Old
	}
	// Take the old release off the preview address before it stops.
	if err := e.routers[r.Env].SetRoutes(ctx, e.stableRoutes(keep, keepInsts, r.Seed)); err != nil {
		return fmt.Errorf("clear the preview: %w", err)
	}
	if err := e.stopDrained(ctx, r.Env, stop); err != nil {
		return fmt.Errorf("stop %s: %w", orNone(r.FromVersion), err)
	}
	return nil
}
