package rollout

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/shipgate/shipgate/internal/audit"
)

var checkNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

// CreateRelease records a release and its CI checks (what CI calls after
// its build). Recording the same version again merges new check results
// into the recorded ones; another commit is a conflict.
func (e *Engine) CreateRelease(ctx context.Context, req ReleaseRequest) (Release, error) {
	if _, err := e.checkTarget(req.App, e.anyEnv()); err != nil {
		return Release{}, err
	}
	if !versionRE.MatchString(req.Version) {
		return Release{}, &FieldError{Field: "version", Message: fmt.Sprintf("%q is not a version: use letters, digits, '.', '_', '+', '-'", req.Version)}
	}
	for name, state := range req.Checks {
		if !checkNameRE.MatchString(name) {
			return Release{}, &FieldError{Field: "checks." + name, Message: "a check name is letters, digits, '.', '_', '-'"}
		}
		if state != CheckPassed && state != CheckFailed && state != CheckPending {
			return Release{}, &FieldError{Field: "checks." + name, Message: fmt.Sprintf("%q is not a check state: use passed, failed or pending", state)}
		}
	}
	if err := checkImage(req.Image); err != nil {
		return Release{}, err
	}
	rel := Release{App: req.App, Version: req.Version, Commit: req.Commit, CommitTime: req.CommitTime.UTC(),
		Checks: req.Checks, Vars: req.Vars, Image: req.Image, CreatedAt: e.clock.Now()}
	if req.CommitTime.IsZero() {
		rel.CommitTime = time.Time{}
	}
	if err := e.store.PutRelease(ctx, rel); err != nil {
		return Release{}, err
	}
	got, err := e.store.GetRelease(ctx, req.App, req.Version)
	if err != nil {
		return Release{}, err
	}
	ev := audit.Event{Time: e.clock.Now(), Actor: orEngine(req.Actor), Action: audit.ActionRelease,
		Subject: req.App + "/" + req.Version, Outcome: "ok", Data: map[string]string{"commit": got.Commit, "digest": e.releaseDigest(got)}}
	if got.Image != "" {
		ev.Data["image"] = got.Image
	}
	for name, state := range req.Checks {
		ev.Data["check."+name] = string(state)
	}
	if err := e.store.Commit(ctx, Change{Audit: []audit.Event{ev}}); err != nil {
		return Release{}, err
	}
	return got, nil
}

// GetRelease returns a release.
func (e *Engine) GetRelease(ctx context.Context, app, version string) (Release, error) {
	if _, err := e.checkTarget(app, e.anyEnv()); err != nil {
		return Release{}, err
	}
	return e.store.GetRelease(ctx, app, version)
}

// Approve approves the rollout waiting for approval in an environment,
// for the release as it is now. It returns once the rollout recorded it.
func (e *Engine) Approve(ctx context.Context, req ApproveRequest) (Rollout, error) {
	env, err := e.checkTarget(req.App, req.Env)
	if err != nil {
		return Rollout{}, err
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
	if kind != StepApproval {
		return Rollout{}, fmt.Errorf("rollout %d of %s in %s is %s, not waiting for approval: %w", r.ID, r.Version, env, describe(r), ErrConflict)
	}
	if req.Version != "" && req.Version != r.Version {
		return Rollout{}, fmt.Errorf("the rollout waiting in %s is of %s, not %s: %w", env, r.Version, req.Version, ErrConflict)
	}
	if err := e.mayApprove(ctx, r, req); err != nil {
		return Rollout{}, err
	}
	rel, err := e.store.GetRelease(ctx, r.App, r.Version)
	if err != nil {
		return Rollout{}, err
	}
	approval := &Approval{By: req.Actor, At: e.clock.Now(), Comment: req.Comment, Digest: e.releaseDigest(rel)}
	if err := d.deliver(ctx, e.clock, func(d *driver) { d.approvals = append(d.approvals, approval) }); err != nil {
		return Rollout{}, err
	}
	return e.store.GetRollout(ctx, d.id)
}

// mayApprove refuses an approval the rollout's rule does not allow: by the
// one who asked for the deploy (prevent_self_approval), by a token whose
// role may not approve, or a second one by the same person. A refusal is
// audited.
func (e *Engine) mayApprove(ctx context.Context, r Rollout, req ApproveRequest) error {
	rule := r.rule()
	var why string
	var kind error
	switch {
	case rule.PreventSelfApproval && req.Actor == r.Actor:
		why, kind = fmt.Sprintf("%s asked for this deploy of %s, and %s needs its approvals from someone else (prevent_self_approval)", req.Actor, r.Version, r.Env), ErrForbidden
	case len(rule.Roles) > 0 && !slices.Contains(rule.Roles, req.Role):
		why, kind = fmt.Sprintf("approvals in %s need a token with the role %s; %s has %s", r.Env, strings.Join(rule.Roles, " or "), req.Actor, orNone(req.Role)), ErrForbidden
	case slices.ContainsFunc(r.Approvals, func(a Approval) bool { return a.By == req.Actor }):
		why, kind = fmt.Sprintf("%s already approved %s; it needs %d approval(s) from different people", req.Actor, r.Version, rule.Required), ErrConflict
	default:
		return nil
	}
	ev := e.event(&r, req.Actor, audit.ActionApprove, why)
	ev.Outcome = "failed"
	if err := e.store.Commit(ctx, Change{Audit: []audit.Event{ev}}); err != nil {
		return err
	}
	return fmt.Errorf("%s: %w", why, kind)
}

// rule is the rollout's approval rule; one approval by anyone for a
// rollout made before rules were recorded.
func (r Rollout) rule() ApprovalRule {
	if r.ApprovalRule != nil {
		return *r.ApprovalRule
	}
	return ApprovalRule{Required: 1}
}

// Plan returns what a deploy would do, without doing anything: the gates
// and whether they pass now, and the steps with the rollback path of each.
func (e *Engine) Plan(ctx context.Context, req DeployRequest) (PlanView, error) {
	env, err := e.checkTarget(req.App, req.Env)
	if err != nil {
		return PlanView{}, err
	}
	if !versionRE.MatchString(req.Version) {
		return PlanView{}, &FieldError{Field: "version", Message: fmt.Sprintf("%q is not a version", req.Version)}
	}
	if err := checkImage(req.Image); err != nil {
		return PlanView{}, err
	}
	st, err := e.specs.Spec(env)
	if err != nil {
		return PlanView{}, err
	}
	rel, _, err := e.deployRelease(ctx, req)
	if err != nil {
		return PlanView{}, err
	}
	state, err := e.liveState(ctx, req.App, env)
	first := errors.Is(err, ErrNotFound)
	if err != nil && !first {
		return PlanView{}, err
	}
	if !first && state.Stable == req.Version {
		// Refused as the deploy would refuse it.
		return PlanView{}, fmt.Errorf("%s is already live in %s: %w", req.Version, env, ErrConflict)
	}
	if rel.Image != "" {
		// Refused as the deploy would refuse it (a local-process
		// environment runs no image).
		if _, err := releaseImage(st, rel, nil); err != nil {
			return PlanView{}, err
		}
	}
	view := PlanView{App: req.App, Env: env, Version: req.Version, From: state.Stable, Strategy: strategyOf(st), Hotfix: req.Hotfix, Vars: sortedKeys(rel.Vars), Image: rel.Image}
	if view.Image == "" {
		// The template as configured: its variables' values are not shown.
		view.Image = st.Run.Image
	}
	gates, err := e.gateStatuses(ctx, st, rel)
	if err != nil {
		return PlanView{}, err
	}
	opts := planOptions{first: first, approval: st.Gates.Approval != nil, migrate: st.Migrations != nil}
	if opts.migrate {
		g := GateStatus{Gate: "migrations", OK: true, Detail: "every migration's down restores the schema on a scratch database"}
		if err := e.checkMigrations(ctx, st, rel); err != nil {
			g.OK, g.Detail = false, err.Error()
		}
		gates = append(gates, g)
		if m, err := e.openMigrator(ctx, st, rel); err == nil {
			view.Migrations, _ = m.Pending(ctx)
			m.Close()
		}
	}
	if req.Hotfix && st.Hotfix != nil {
		opts.bakeScale = st.Hotfix.BakeScale
		for i := range gates {
			for _, skip := range st.Hotfix.Skip {
				if gates[i].Gate == skip && (!gates[i].OK || skip == "approval") {
					gates[i].Bypassed = true
					if skip == "approval" {
						opts.approval = false
					}
				}
			}
		}
	}
	view.Gates = gates
	if !first {
		view.Evidence, view.Warnings = EvidenceNeeds(st), EvidenceWarnings(st)
	}
	view.Allowed = true
	for _, g := range gates {
		view.Allowed = view.Allowed && (g.OK || g.Bypassed)
	}
	from := orNone(state.Stable)
	migrated := false
	for _, s := range planSteps(st, opts) {
		migrated = migrated || s.Kind == StepMigrate
		back := rollbackPath(s, from, first)
		if migrated && len(view.Migrations) > 0 {
			back += fmt.Sprintf("; then the downs of migrations %s, newest first", versions(view.Migrations))
		}
		view.Steps = append(view.Steps, PlannedStep{Kind: s.Kind, Description: describeStep(s), Rollback: back})
	}
	return view, nil
}

// rollbackPath says what a rollback at a step does.
func rollbackPath(s Step, from string, first bool) string {
	if first {
		return "stop the new instances; nothing was live before"
	}
	switch s.Kind {
	case StepStart, StepSmoke, StepApproval, StepMigrate:
		return "stop the new instances; no user has reached them"
	case StepInternal, StepWeight:
		return fmt.Sprintf("all traffic back to %s in one routing change, then stop the new instances", from)
	case StepBatch:
		return fmt.Sprintf("traffic to the remaining %s instances at once, start again the ones replaced, stop the new instances", from)
	case StepPromote, StepPostSmoke, StepObserve:
		return fmt.Sprintf("switch back to %s, still running, in one routing change", from)
	case StepScaleDown:
		return fmt.Sprintf("while %s still runs, switch back to it at once; after, shipgate rollback starts it again and switches", from)
	}
	return ""
}

// Drill starts a rollback drill in an environment: its previous release
// is started, smoke-checked, given all traffic and checked through the
// router, then traffic goes back to the current release and the previous
// one is stopped. The outcome is an audit event; a failed drill says why.
func (e *Engine) Drill(ctx context.Context, req DrillRequest) (Rollout, error) {
	env, err := e.checkTarget(req.App, req.Env)
	if err != nil {
		return Rollout{}, err
	}
	st, err := e.specs.Spec(env)
	if err != nil {
		return Rollout{}, err
	}
	busy, _, err := e.rec.claim(ctx, env, false)
	if err != nil {
		return Rollout{}, err
	}
	if busy != nil {
		return Rollout{}, fmt.Errorf("a rollout of %s is running in %s; drill when it is done: %w", req.App, env, ErrConflict)
	}
	defer e.rec.unclaim()
	state, err := e.liveState(ctx, req.App, env)
	if err != nil {
		return Rollout{}, fmt.Errorf("nothing is deployed in %s to drill with: %w", env, err)
	}
	if state.Previous == "" {
		return Rollout{}, fmt.Errorf("%s has no previous release to roll back to; deploy twice before drilling: %w", env, ErrConflict)
	}
	now := e.clock.Now()
	r := Rollout{
		App: req.App, Env: env, Kind: KindDrill, Version: state.Previous, FromVersion: state.Stable,
		Phase: PhaseRunning, Steps: drillSteps(st), Spec: freeze(st), StepStartedAt: now, Seed: newSeed(), Strategy: "drill",
		Old: state.Instances, Actor: req.Actor, Reason: "rollback drill", CreatedAt: now, UpdatedAt: now,
	}
	ev := e.event(&r, req.Actor, audit.ActionDeploy, fmt.Sprintf("rollback drill: bring back %s, then restore %s", state.Previous, state.Stable))
	if err := e.store.Commit(ctx, Change{Rollout: &r, Audit: []audit.Event{ev}}); err != nil {
		return Rollout{}, fmt.Errorf("record drill: %w", err)
	}
	e.rec.launch(r)
	return r, nil
}

func orEngine(actor string) string {
	if actor == "" {
		return ActorEngine
	}
	return actor
}
