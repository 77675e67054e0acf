package rollout

// The engine's use of an environment's adapters (ports.go): every call to
// a runtime, a router, a metric source or a prober goes through here, by
// the port, whatever adapter the server chose for the environment.

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/shipgate/shipgate/internal/analysis"
	"github.com/shipgate/shipgate/internal/clock"
)

// env returns the adapters of environment name.
func (e *deps) env(name string) (Environment, error) {
	en, err := e.envs.For(e.specs.App(), name)
	if err != nil {
		return Environment{}, fmt.Errorf("environment %s: %w", name, err)
	}
	return en, nil
}

// setRoutes sets an environment's routes and waits until its data plane
// serves them: an asynchronous one (Gateway API) answers ErrNotReady
// while it converges, for at most e.verify; any other answer fails.
func (e *deps) setRoutes(ctx context.Context, env string, routes Routes) error {
	en, err := e.env(env)
	if err != nil {
		return err
	}
	if err := en.Router.SetRoutes(ctx, routes); err != nil {
		return err
	}
	deadline := e.clock.Now().Add(e.verify)
	for {
		err := en.Router.VerifyRoutes(ctx, routes)
		switch {
		case err == nil:
			return nil
		case !errors.Is(err, ErrNotReady):
			return fmt.Errorf("verify routes: %w", err)
		case !e.clock.Now().Before(deadline):
			return fmt.Errorf("routes not served after %s: %w", e.verify, err)
		}
		if !clock.Sleep(ctx, e.clock, time.Second) {
			return ctx.Err()
		}
	}
}

// ensure makes count instances of version run in st's environment, by
// st's template, and returns them; stopFirst are the instances to stop
// first when that scales down.
func (e *deps) ensure(ctx context.Context, st *Spec, version string, count int, stopFirst []Instance) ([]Instance, error) {
	en, err := e.env(st.Name)
	if err != nil {
		return nil, err
	}
	rel, err := e.store.GetRelease(ctx, st.App, version)
	if err != nil {
		return nil, err
	}
	spec, err := instanceSpecFor(st, rel)
	if err != nil {
		return nil, err
	}
	spec.Count = count
	for _, inst := range stopFirst {
		spec.StopFirst = append(spec.StopFirst, inst.ID)
	}
	return en.Runtime.Ensure(ctx, spec)
}

// alive returns the instances of version in env the runtime sees and that
// did not exit.
func (e *deps) alive(ctx context.Context, env, version string) []Instance {
	en, err := e.env(env)
	if err != nil {
		return nil
	}
	obs, err := en.Runtime.Observe(ctx, ReleaseRef{App: e.specs.App(), Env: env, Version: version})
	if err != nil {
		e.log.Warn("observe release", "env", env, "version", version, "err", err)
		return nil
	}
	var out []Instance
	for _, o := range obs {
		if o.Status.State != InstanceExited {
			out = append(out, o.Instance)
		}
	}
	return out
}

// failedInstance returns a Failure if an instance of version exited or is
// unhealthy. An instance being replaced (a rescheduled pod) is neither.
func (e *deps) failedInstance(ctx context.Context, env, version string) *Failure {
	en, err := e.env(env)
	if err != nil {
		return nil
	}
	obs, err := en.Runtime.Observe(ctx, ReleaseRef{App: e.specs.App(), Env: env, Version: version})
	if err != nil {
		return nil // an observation that failed is no evidence
	}
	for _, o := range obs {
		if o.Status.State == InstanceExited || o.Status.State == InstanceUnhealthy {
			return failf("instance %s is %s: %s", o.ID, o.Status.State, o.Status.Reason)
		}
	}
	return nil
}

// retireDrained stops insts, instances of version in st's environment the
// router no longer sends new requests to, once the requests already on
// their way to them are done (when the environment's router can tell,
// and at most e.drain): a request sent just before a routing change is
// answered, not cut off. keep instances of version stay; with none, the
// release is removed.
func (e *deps) retireDrained(ctx context.Context, st *Spec, version string, insts []Instance, keep int) error {
	if version == "" {
		return nil
	}
	en, err := e.env(st.Name)
	if err != nil {
		return err
	}
	if d := en.Drainer; d != nil && len(insts) > 0 {
		dctx, cancel := context.WithCancel(ctx)
		bound := e.clock.NewTimer(e.drain)
		go func() {
			defer bound.Stop()
			select {
			case <-bound.C():
				cancel()
			case <-dctx.Done():
			}
		}()
		err := d.Drain(dctx, addrs(insts))
		cancel()
		if err != nil && ctx.Err() == nil {
			e.log.Warn("stopping instances with requests in flight", "env", st.Name, "bound", e.drain, "err", err)
		}
	}
	if keep <= 0 {
		return en.Runtime.Remove(ctx, ReleaseRef{App: st.App, Env: st.Name, Version: version})
	}
	_, err = e.ensure(ctx, st, version, keep, insts)
	return err
}

// window returns what env's metric source measured for version since.
func (e *deps) window(ctx context.Context, env, version string, since time.Time) (analysis.Sample, error) {
	en, err := e.env(env)
	if err != nil {
		return analysis.Sample{}, err
	}
	return en.Metrics.Window(ctx, version, since)
}

// probe sends one smoke check to addr with env's prober.
func (e *deps) probe(ctx context.Context, env, addr string, c SmokeCheck) error {
	en, err := e.env(env)
	if err != nil {
		return err
	}
	return en.Prober.Probe(ctx, addr, c)
}
