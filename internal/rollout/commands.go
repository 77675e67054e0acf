package rollout

// Commands: what the API asks of the engine. Each checks its request,
// commits what it decided, and hands the rollout to the reconciler.

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/shipgate/shipgate/internal/audit"
)

var versionRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$`)

// Deploy records the release and starts rolling it out. It returns once
// the rollout is committed; the rollout goes on in the background.
func (e *Engine) Deploy(ctx context.Context, req DeployRequest) (Rollout, error) {
	env, err := e.checkTarget(req.App, req.Env)
	if err != nil {
		return Rollout{}, err
	}
	if !versionRE.MatchString(req.Version) {
		return Rollout{}, &FieldError{Field: "version", Message: fmt.Sprintf("%q is not a version: use letters, digits, '.', '_', '+', '-'", req.Version)}
	}
	if err := checkImage(req.Image); err != nil {
		return Rollout{}, err
	}
	rel, isNew, err := e.release(ctx, req)
	if err != nil {
		return Rollout{}, err
	}
	st, err := e.specs.Spec(env)
	if err != nil {
		return Rollout{}, &FieldError{Field: "env", Message: err.Error()}
	}
	if _, err := instanceSpec(st, rel); err != nil {
		return Rollout{}, err
	}

	if req.Hotfix && req.Reason == "" {
		return Rollout{}, &FieldError{Field: "reason", Message: "a hotfix needs a reason; it goes into the audit log with every gate it skips"}
	}
	gates, err := e.checkGates(ctx, st, rel, req.Hotfix)
	if err != nil {
		return Rollout{}, err
	}
	if err := e.checkMigrations(ctx, st, rel); err != nil {
		var ge *GateError
		if errors.As(err, &ge) {
			e.auditRefusal(ctx, st, rel, GateStatus{Gate: ge.Gate, Detail: ge.Message})
		}
		return Rollout{}, err
	}

	e.mu.Lock()
	defer e.mu.Unlock()
	if err := e.makeRoom(ctx, env); err != nil {
		return Rollout{}, err
	}
	state, err := e.envState(ctx, req.App, env)
	first := errors.Is(err, ErrNotFound)
	if err != nil && !first {
		return Rollout{}, err
	}
	if !first && state.Stable == req.Version {
		return Rollout{}, fmt.Errorf("%s is already live in %s: %w", req.Version, env, ErrConflict)
	}
	opts := planOptions{first: first, approval: st.Gates.Approval != nil, migrate: st.Migrations != nil}
	var events []audit.Event
	now := e.clock.Now()
	r := Rollout{
		App: req.App, Env: env, Kind: KindDeploy, Version: req.Version, FromVersion: state.Stable,
		Phase: PhaseRunning, StepStartedAt: now, Seed: newSeed(), Strategy: strategyOf(st),
		Old: state.Instances, Actor: req.Actor, CreatedAt: now, UpdatedAt: now, Hotfix: req.Hotfix,
	}
	if req.Hotfix {
		opts.bakeScale = st.Hotfix.BakeScale
		r.Reason = "hotfix: " + req.Reason
		for _, g := range gates {
			if !g.Bypassed {
				continue
			}
			if g.Gate == "approval" {
				opts.approval = false
			}
			r.Bypassed = append(r.Bypassed, g.Gate)
			ev := e.event(&r, req.Actor, audit.ActionGateBypass, req.Reason)
			ev.Data["gate"], ev.Data["detail"] = g.Gate, g.Detail
			events = append(events, ev)
		}
	}
	r.Steps, r.Spec = Plan(st, opts), freeze(st)
	r.Vars, r.Image = sortedKeys(rel.Vars), rel.Image
	if a := st.Gates.Approval; a != nil && opts.approval {
		r.ApprovalRule = &ApprovalRule{Required: max(a.Required, 1), PreventSelfApproval: a.PreventSelfApproval, Roles: a.Roles}
	}
	ev := e.event(&r, req.Actor, audit.ActionDeploy, fmt.Sprintf("deploy %s (from %s)", req.Version, orNone(state.Stable)))
	if req.Hotfix {
		ev.Reason += " as a hotfix: " + req.Reason
	}
	if rel.Image != "" {
		ev.Data["image"] = rel.Image
	}
	events = append([]audit.Event{ev}, events...)
	c := Change{Rollout: &r, Audit: events}
	if isNew {
		// The release exists only if its rollout does: a refused deploy
		// leaves nothing behind.
		c.Release = &rel
	}
	if err := e.store.Commit(ctx, c); err != nil {
		return Rollout{}, fmt.Errorf("record rollout: %w", err)
	}
	e.log.Info("rollout created", "rollout", r.ID, "env", env, "version", r.Version, "from", r.FromVersion, "strategy", r.Strategy)
	e.launch(r)
	return r, nil
}

// makeRoom makes sure no rollout of env is active. A rollout that is only
// waiting to scale down its old release is told to do so now; any other
// is a conflict, but for one whose end is committed: its driver is only
// leaving. Called with e.mu held.
func (e *Engine) makeRoom(ctx context.Context, env string) error {
	d := e.drivers[env]
	if d == nil {
		return nil
	}
	r, err := e.store.GetRollout(ctx, d.id)
	if err != nil {
		return err
	}
	// A rollout whose final phase is committed has a driver that is about
	// to leave: wait for it rather than refuse (a deploy right after a
	// rollout ended was refused as a conflict in that moment).
	final := r.Phase.Final()
	if !final && (r.Phase != PhaseRunning || r.StepIndex >= len(r.Steps) || r.Steps[r.StepIndex].Kind != StepScaleDown) {
		return fmt.Errorf("rollout %d of %s/%s is still %s; wait for it or roll it back: %w", r.ID, r.App, r.Env, describe(r), ErrConflict)
	}
	if !final {
		d.mu.Lock()
		d.hurry = true
		d.mu.Unlock()
	}
	e.mu.Unlock()
	defer e.mu.Lock()
	timeout := e.clock.NewTimer(2 * time.Minute)
	defer timeout.Stop()
	select {
	case <-d.done:
		return nil
	case <-timeout.C():
		return fmt.Errorf("rollout %d is still scaling down: %w", r.ID, ErrConflict)
	case <-ctx.Done():
		return ctx.Err()
	}
}

func describe(r Rollout) string {
	if r.Phase == PhaseRunning && r.StepIndex < len(r.Steps) {
		return fmt.Sprintf("at step %d/%d (%s)", r.StepIndex+1, len(r.Steps), describeStep(r.Steps[r.StepIndex]))
	}
	return string(r.Phase)
}

// release returns the release a deploy names: the recorded one, or a new
// one that the deploy records with its rollout. A deploy runs with exactly
// the variables it names: a recorded release whose variables differ from
// the deploy's (including a deploy that names none of them) is refused,
// so that what a rollout runs with is never a leftover of an earlier
// deploy.
func (e *Engine) release(ctx context.Context, req DeployRequest) (rel Release, isNew bool, err error) {
	old, err := e.store.GetRelease(ctx, req.App, req.Version)
	if errors.Is(err, ErrNotFound) {
		return Release{App: req.App, Version: req.Version, Commit: req.Commit, Vars: req.Vars, Image: req.Image, CreatedAt: e.clock.Now()}, true, nil
	}
	if err != nil {
		return Release{}, false, err
	}
	if req.Commit != "" && req.Commit != old.Commit {
		return Release{}, false, fmt.Errorf("release %s was recorded with commit %q, not %q; give the new build a new version: %w", req.Version, old.Commit, req.Commit, ErrConflict)
	}
	if old.Image != req.Image {
		// As with variables: a deploy runs exactly the image it names, and
		// another image is another build, so another version.
		switch {
		case req.Image == "":
			return Release{}, false, &FieldError{Field: "image", Message: fmt.Sprintf("release %s was recorded with the image %s, and this deploy gives none: give the same --image again", req.Version, old.Image)}
		case old.Image == "":
			return Release{}, false, &FieldError{Field: "image", Message: fmt.Sprintf("release %s was recorded without an image, and this deploy gives %s: record the new image as a new version", req.Version, req.Image)}
		default:
			return Release{}, false, &FieldError{Field: "image", Message: fmt.Sprintf("release %s was recorded with the image %s, not %s: a deploy runs exactly the image it names; record the new image as a new version", req.Version, old.Image, req.Image)}
		}
	}
	if !maps.Equal(old.Vars, req.Vars) {
		var missing, differ, extra []string
		for _, k := range sortedKeys(old.Vars) {
			v, ok := req.Vars[k]
			switch {
			case !ok:
				missing = append(missing, k)
			case v != old.Vars[k]:
				differ = append(differ, k)
			}
		}
		for _, k := range sortedKeys(req.Vars) {
			if _, ok := old.Vars[k]; !ok {
				extra = append(extra, k)
			}
		}
		var what []string
		if len(missing) > 0 {
			what = append(what, "it was recorded with "+strings.Join(missing, ", ")+", which this deploy does not give")
		}
		if len(differ) > 0 {
			what = append(what, "this deploy gives other values of "+strings.Join(differ, ", "))
		}
		if len(extra) > 0 {
			what = append(what, "it was recorded without "+strings.Join(extra, ", "))
		}
		return Release{}, false, &FieldError{Field: "vars", Message: fmt.Sprintf("release %s: %s: a deploy runs with exactly the variables it names; give the same --var values again, or record the new variables as a new version",
			req.Version, strings.Join(what, "; "))}
	}
	return old, false, nil
}

// Rollback puts an environment back on its last good release. While a
// rollout runs, that is the stable release: traffic moves at once and
// Rollback returns when it has. Otherwise it is the previous release, which
// is started, smoke-checked and switched to in one step.
func (e *Engine) Rollback(ctx context.Context, req RollbackRequest) (Rollout, error) {
	env, err := e.checkTarget(req.App, req.Env)
	if err != nil {
		return Rollout{}, err
	}
	if req.Reason == "" {
		return Rollout{}, &FieldError{Field: "reason", Message: "say why you roll back; it goes into the audit log"}
	}
	e.mu.Lock()
	if d := e.drivers[env]; d != nil {
		e.mu.Unlock()
		if req.To != "" {
			r, err := e.store.GetRollout(ctx, d.id)
			if err != nil {
				return Rollout{}, err
			}
			if req.To != r.FromVersion {
				return Rollout{}, fmt.Errorf("rollout %d of %s is running in %s: a rollback now goes back to %s; roll back without --to, then to %s: %w", r.ID, r.Version, env, orNone(r.FromVersion), req.To, ErrConflict)
			}
		}
		d.requestAbort(&Failure{Reason: req.Reason, Manual: true, Actor: req.Actor})
		select {
		case <-d.restored:
		case <-d.done:
		case <-ctx.Done():
			return Rollout{}, ctx.Err()
		}
		return e.store.GetRollout(ctx, d.id)
	}
	defer e.mu.Unlock()
	state, err := e.envState(ctx, req.App, env)
	if err != nil {
		return Rollout{}, fmt.Errorf("nothing is deployed in %s: %w", env, err)
	}
	target := state.Previous
	if req.To != "" {
		if !slices.Contains(state.History, req.To) && req.To != state.Previous {
			if req.To == state.Stable {
				return Rollout{}, fmt.Errorf("%s is already live in %s: %w", req.To, env, ErrConflict)
			}
			return Rollout{}, &FieldError{Field: "to", Message: fmt.Sprintf("%s was not live in %s before %s; the releases a rollback can go to, newest first: %s",
				req.To, env, state.Stable, orNone(strings.Join(state.History, ", ")))}
		}
		target = req.To
	}
	if target == "" {
		return Rollout{}, fmt.Errorf("%s has no earlier release to roll back to from %s: %w", env, state.Stable, ErrConflict)
	}
	st, err := e.specs.Spec(env)
	if err != nil {
		return Rollout{}, err
	}
	now := e.clock.Now()
	r := Rollout{
		App: req.App, Env: env, Kind: KindRollback, Version: target, FromVersion: state.Stable,
		Phase: PhaseRunning, Steps: rollbackPlan(st), Spec: freeze(st), StepStartedAt: now, Seed: newSeed(),
		Old: state.Instances, Actor: req.Actor, Reason: req.Reason, CreatedAt: now, UpdatedAt: now,
	}
	if rel, err := e.store.GetRelease(ctx, req.App, target); err == nil {
		r.Image = rel.Image
	}
	ev := e.event(&r, req.Actor, audit.ActionRollbackManual, req.Reason)
	ev.Data["to"], ev.Data["from"] = target, state.Stable
	if err := e.store.Commit(ctx, Change{Rollout: &r, Audit: []audit.Event{ev}}); err != nil {
		return Rollout{}, fmt.Errorf("record rollback: %w", err)
	}
	e.launch(r)
	return r, nil
}

// Retry deploys again the release of an environment's last deploy when it
// was rolled back or failed (aborted by a person, a gate or an instance),
// with the same release and variables; the gates are checked again.
func (e *Engine) Retry(ctx context.Context, req RetryRequest) (Rollout, error) {
	env, err := e.checkTarget(req.App, req.Env)
	if err != nil {
		return Rollout{}, err
	}
	rs, err := e.store.ListRollouts(ctx, req.App, env, historyDepth)
	if err != nil {
		return Rollout{}, err
	}
	i := slices.IndexFunc(rs, func(r Rollout) bool { return r.Kind == KindDeploy })
	if i < 0 {
		return Rollout{}, fmt.Errorf("no deploy of %s in %s to retry: %w", req.App, env, ErrConflict)
	}
	last := rs[i]
	if last.Phase != PhaseRolledBack && last.Phase != PhaseFailed {
		return Rollout{}, fmt.Errorf("the last deploy in %s, rollout %d of %s, is %s; only a rolled back or failed deploy is retried: %w", env, last.ID, last.Version, last.Phase, ErrConflict)
	}
	rel, err := e.store.GetRelease(ctx, req.App, last.Version)
	if err != nil {
		return Rollout{}, err
	}
	return e.Deploy(ctx, DeployRequest{App: req.App, Env: env, Version: last.Version, Vars: rel.Vars, Image: rel.Image, Reason: "retry of rollout " + strconv.FormatInt(last.ID, 10), Actor: req.Actor})
}

// Status returns what is live in each environment of app.
func (e *Engine) Status(ctx context.Context, app string) (AppStatus, error) {
	if _, err := e.checkTarget(app, e.anyEnv()); err != nil {
		return AppStatus{}, err
	}
	active, err := e.store.ActiveRollouts(ctx)
	if err != nil {
		return AppStatus{}, err
	}
	out := AppStatus{App: app}
	for _, env := range e.envNames() {
		es := EnvStatus{Env: env}
		if st, err := e.specs.Spec(env); err == nil {
			es.Listen = st.Listen
		}
		state, err := e.envState(ctx, app, env)
		switch {
		case err == nil:
			es.State = &state
			if rel, err := e.store.GetRelease(ctx, app, state.Stable); err == nil {
				es.Image = rel.Image
			}
		case !errors.Is(err, ErrNotFound):
			return AppStatus{}, err
		}
		for i := range active {
			if active[i].App == app && active[i].Env == env {
				es.Active = &active[i]
			}
		}
		out.Envs = append(out.Envs, es)
	}
	return out, nil
}

// GetRollout returns one rollout.
func (e *Engine) GetRollout(ctx context.Context, id int64) (Rollout, error) {
	return e.store.GetRollout(ctx, id)
}

// History returns an app's rollouts, newest first.
func (e *Engine) History(ctx context.Context, app, env string, limit int) ([]Rollout, error) {
	if _, err := e.checkTarget(app, e.anyEnv()); err != nil {
		return nil, err
	}
	if env != "" {
		if _, err := e.specs.Spec(env); err != nil {
			return nil, &FieldError{Field: "env", Message: err.Error()}
		}
	}
	return e.store.ListRollouts(ctx, app, env, limit)
}

// Audit returns audit events, newest first.
func (e *Engine) Audit(ctx context.Context, f audit.Filter) ([]audit.Event, error) {
	return e.store.ListAudit(ctx, f)
}

// Wait blocks until the rollout of env driven now, if any, has ended.
func (e *Engine) Wait(ctx context.Context, env string) error {
	e.mu.Lock()
	d := e.drivers[env]
	e.mu.Unlock()
	if d == nil {
		return nil
	}
	select {
	case <-d.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (e *Engine) checkTarget(app, env string) (string, error) {
	if app != e.specs.App() {
		return "", fmt.Errorf("app %q is not managed by this server (it manages %q): %w", app, e.specs.App(), ErrNotFound)
	}
	if env == "" {
		name, err := e.specs.DefaultEnv()
		if err != nil {
			return "", &FieldError{Field: "env", Message: err.Error()}
		}
		return name, nil
	}
	if _, err := e.specs.Spec(env); err != nil {
		return "", &FieldError{Field: "env", Message: err.Error()}
	}
	return env, nil
}

func (e *Engine) anyEnv() string {
	names := e.envNames()
	if len(names) == 0 {
		return ""
	}
	return names[0]
}

func (e *Engine) envNames() []string {
	return e.specs.EnvNames()
}
