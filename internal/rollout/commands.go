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
	rel, isNew, err := e.deployRelease(ctx, req)
	if err != nil {
		return Rollout{}, err
	}
	st, err := e.specs.Spec(env)
	if err != nil {
		return Rollout{}, &FieldError{Field: "env", Message: err.Error()}
	}
	if _, err := instanceSpecFor(st, rel); err != nil {
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

	busy, _, err := e.rec.claim(ctx, env, true)
	if err != nil {
		return Rollout{}, err
	}
	if busy != nil {
		return Rollout{}, fmt.Errorf("rollout %d of %s/%s is still %s; wait for it or roll it back: %w", busy.ID, busy.App, busy.Env, describe(*busy), ErrConflict)
	}
	defer e.rec.unclaim()
	state, err := e.liveState(ctx, req.App, env)
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
	r.Steps, r.Spec = planSteps(st, opts), freeze(st)
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
	e.rec.launch(r)
	return r, nil
}

func describe(r Rollout) string {
	if r.Phase == PhaseRunning && r.StepIndex < len(r.Steps) {
		return fmt.Sprintf("at step %d/%d (%s)", r.StepIndex+1, len(r.Steps), describeStep(r.Steps[r.StepIndex]))
	}
	return string(r.Phase)
}

// deployRelease returns the release a deploy names: the recorded one, or a new
// one that the deploy records with its rollout. A deploy runs with exactly
// the variables it names: a recorded release whose variables differ from
// the deploy's (including a deploy that names none of them) is refused,
// so that what a rollout runs with is never a leftover of an earlier
// deploy.
func (e *Engine) deployRelease(ctx context.Context, req DeployRequest) (rel Release, isNew bool, err error) {
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
	// A rollout that has ended but whose driver is still leaving is
	// waited for: a rollback right after it goes to the previous release.
	busy, d, err := e.rec.claim(ctx, env, false)
	if err != nil {
		return Rollout{}, err
	}
	if busy != nil {
		if req.To != "" && req.To != busy.FromVersion {
			return Rollout{}, fmt.Errorf("rollout %d of %s is running in %s: a rollback now goes back to %s; roll back without --to, then to %s: %w", busy.ID, busy.Version, env, orNone(busy.FromVersion), req.To, ErrConflict)
		}
		d.requestAbort(&Failure{Reason: req.Reason, Manual: true, Actor: req.Actor, Command: CommandOf(ctx)})
		if err := d.awaitRestored(ctx); err != nil {
			return Rollout{}, err
		}
		return e.store.GetRollout(ctx, d.id)
	}
	defer e.rec.unclaim()
	state, err := e.liveState(ctx, req.App, env)
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
		Phase: PhaseRunning, Steps: rollbackSteps(st), Spec: freeze(st), StepStartedAt: now, Seed: newSeed(),
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
	e.rec.launch(r)
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

// Pause holds the bake of the rollout running in an environment: it does
// not end, even once its gates pass, until Resume, Promote or a rollback.
// A failed gate still rolls back.
func (e *Engine) Pause(ctx context.Context, req PauseRequest) (Rollout, error) {
	return e.bakeCommand(ctx, req, func(d *driver, f *Failure) { d.pause = f }, func(r Rollout) error {
		if r.Paused != "" {
			return fmt.Errorf("rollout %d of %s in %s is already paused: %w", r.ID, r.Version, r.Env, ErrConflict)
		}
		return nil
	})
}

// Resume lets a paused bake go on; after a pause on inconclusive
// evidence, it bakes on until every gate passes or one fails.
func (e *Engine) Resume(ctx context.Context, req PauseRequest) (Rollout, error) {
	return e.bakeCommand(ctx, req, func(d *driver, f *Failure) { d.resume = f }, func(r Rollout) error {
		if r.Paused == "" {
			return fmt.Errorf("rollout %d of %s in %s is not paused: %w", r.ID, r.Version, r.Env, ErrConflict)
		}
		return nil
	})
}

// bakeCommand hands a person's command to the bake running in an
// environment and returns once the bake recorded it.
func (e *Engine) bakeCommand(ctx context.Context, req PauseRequest, hand func(*driver, *Failure), check func(Rollout) error) (Rollout, error) {
	env, err := e.checkTarget(req.App, req.Env)
	if err != nil {
		return Rollout{}, err
	}
	if req.Reason == "" {
		return Rollout{}, &FieldError{Field: "reason", Message: "say why; it goes into the audit log"}
	}
	d := e.rec.driver(env)
	if d == nil {
		return Rollout{}, fmt.Errorf("no rollout of %s is running in %s: %w", req.App, env, ErrConflict)
	}
	kind := d.step()
	r, err := e.store.GetRollout(ctx, d.id)
	if err != nil {
		return Rollout{}, err
	}
	if !bakeKinds[kind] || r.Phase != PhaseRunning {
		return Rollout{}, fmt.Errorf("rollout %d of %s in %s is %s, not baking: %w", r.ID, r.Version, env, describe(r), ErrConflict)
	}
	if err := check(r); err != nil {
		return Rollout{}, err
	}
	f := &Failure{Reason: req.Reason, Manual: true, Actor: req.Actor, Command: CommandOf(ctx)}
	if err := d.deliver(ctx, e.clock, func(d *driver) { hand(d, f) }); err != nil {
		return Rollout{}, err
	}
	return e.store.GetRollout(ctx, d.id)
}

// bakeKinds are the step kinds shipgate promote can end early.
var bakeKinds = map[StepKind]bool{StepWeight: true, StepInternal: true, StepObserve: true, StepBatch: true}

// Promote ends the bake of the rollout running in an environment as if
// every gate had passed, whether it is paused or still baking; the
// rollout goes on with its next step. It returns once the rollout
// recorded it.
func (e *Engine) Promote(ctx context.Context, req PromoteRequest) (Rollout, error) {
	if req.Reason == "" {
		return Rollout{}, &FieldError{Field: "reason", Message: "say why you skip the rest of the bake; it goes into the audit log"}
	}
	cmd := PauseRequest{App: req.App, Env: req.Env, Reason: req.Reason, Actor: req.Actor}
	return e.bakeCommand(ctx, cmd, func(d *driver, f *Failure) { d.promotion, d.full = f, req.Full }, func(Rollout) error { return nil })
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
		state, err := e.liveState(ctx, app, env)
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
	d := e.rec.driver(env)
	if d == nil {
		return nil
	}
	return d.awaitDone(ctx)
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

func (e *deps) envNames() []string {
	return e.specs.EnvNames()
}
