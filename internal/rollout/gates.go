package rollout

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"
)

// historyDepth bounds how far back the gates look in an environment's
// rollouts.
const historyDepth = 500

// gateStatuses evaluates every deploy gate of a stage for a release,
// without refusing anything.
func (e *Engine) gateStatuses(ctx context.Context, st *Spec, rel Release) ([]GateStatus, error) {
	var out []GateStatus
	g := st.Gates
	if st.Previous != "" {
		ok, err := e.succeededIn(ctx, st.Previous, rel.Version)
		if err != nil {
			return nil, err
		}
		s := GateStatus{Gate: "pipeline", OK: ok, Detail: fmt.Sprintf("%s was deployed to %s", rel.Version, st.Previous)}
		if !ok {
			s.Detail = fmt.Sprintf("%s has not been deployed successfully to %s, the stage before %s; deploy it there first", rel.Version, st.Previous, st.Name)
		}
		out = append(out, s)
	}
	if len(g.Checks) > 0 {
		var problems []string
		for _, name := range g.Checks {
			switch state, ok := rel.Checks[name]; {
			case !ok:
				problems = append(problems, fmt.Sprintf("check %s has no result", name))
			case state != CheckPassed:
				problems = append(problems, fmt.Sprintf("check %s %s", name, state))
			}
		}
		s := GateStatus{Gate: "checks", OK: len(problems) == 0, Detail: "required checks passed: " + strings.Join(g.Checks, ", ")}
		if len(problems) > 0 {
			s.Detail = fmt.Sprintf("%s of %s: record results with shipgate release create %s %s --check NAME=passed",
				strings.Join(problems, ", "), rel.Version, rel.App, rel.Version)
		}
		out = append(out, s)
	}
	if a := g.Approval; a != nil {
		detail := fmt.Sprintf("the rollout waits before any user traffic until shipgate approve %s --env %s", rel.App, st.Name)
		if a.Required > 1 {
			detail += fmt.Sprintf(" by %d different people", a.Required)
		}
		if a.PreventSelfApproval {
			detail += ", not by whoever deploys"
		}
		if len(a.Roles) > 0 {
			detail += " with a " + strings.Join(a.Roles, " or ") + " token"
		}
		out = append(out, GateStatus{Gate: "approval", OK: true, Detail: detail})
	}
	if within := g.DrillWithin; within > 0 {
		last, err := e.lastDrill(ctx)
		if err != nil {
			return nil, err
		}
		s := GateStatus{Gate: "drill", OK: !last.IsZero() && e.clock.Now().Sub(last) <= within}
		switch {
		case last.IsZero():
			s.Detail = fmt.Sprintf("no successful rollback drill yet; %s needs one within %s: run shipgate drill %s --env staging", st.Name, within, rel.App)
		case !s.OK:
			s.Detail = fmt.Sprintf("the last successful rollback drill was %s ago, %s needs one within %s", e.clock.Now().Sub(last).Round(time.Minute), st.Name, within)
		default:
			s.Detail = fmt.Sprintf("last successful rollback drill %s ago", e.clock.Now().Sub(last).Round(time.Minute))
		}
		out = append(out, s)
	}
	if g.Drift != nil {
		rep, err := e.Drift(ctx, rel.App, st.Name, "")
		if err != nil {
			return nil, err
		}
		s := GateStatus{Gate: "drift", OK: rep.OK, Detail: fmt.Sprintf("%s does not drift from %s beyond what is allowed", st.Name, rep.Against)}
		if !rep.OK {
			var bad []string
			for _, d := range rep.Diffs {
				if !d.Allowed {
					bad = append(bad, d.Kind+": "+d.Detail)
				}
			}
			s.Detail = fmt.Sprintf("%s drifts from %s: %s", st.Name, rep.Against, strings.Join(bad, "; "))
		}
		out = append(out, s)
	}
	tests, err := e.testGates(ctx, st, rel)
	if err != nil {
		return nil, err
	}
	return append(out, tests...), nil
}

// checkGates refuses a deploy that fails a gate, unless it is a hotfix
// and the emergency rules let it skip that gate. It returns every gate's
// status, the skipped ones marked Bypassed.
func (e *Engine) checkGates(ctx context.Context, st *Spec, rel Release, hotfix bool) ([]GateStatus, error) {
	if hotfix && st.Hotfix == nil {
		return nil, &GateError{Gate: "hotfix", Message: "this app has no hotfix rules: add hotfix: {skip: [...]} to shipgate.yaml"}
	}
	gates, err := e.gateStatuses(ctx, st, rel)
	if err != nil {
		return nil, err
	}
	for i := range gates {
		g := &gates[i]
		skippable := hotfix && slices.Contains(st.Hotfix.Skip, g.Gate)
		switch {
		case g.Gate == "approval" && skippable:
			g.Bypassed = true
		case g.OK:
		case skippable:
			g.Bypassed = true
		default:
			e.auditRefusal(ctx, st, rel, *g)
			return nil, &GateError{Gate: g.Gate, Message: g.Detail}
		}
	}
	return gates, nil
}

// succeededIn reports whether version was deployed successfully to env.
func (e *Engine) succeededIn(ctx context.Context, env, version string) (bool, error) {
	rs, err := e.store.ListRollouts(ctx, e.specs.App(), env, historyDepth)
	if err != nil {
		return false, err
	}
	for _, r := range rs {
		if r.Version == version && r.Kind == KindDeploy && (r.Phase == PhaseSucceeded || (!r.PromotedAt.IsZero() && r.Phase == PhaseRunning)) {
			return true, nil
		}
	}
	return false, nil
}

// lastDrill returns when the app's last successful drill ended.
func (e *Engine) lastDrill(ctx context.Context) (time.Time, error) {
	rs, err := e.store.ListRollouts(ctx, e.specs.App(), "", historyDepth)
	if err != nil {
		return time.Time{}, err
	}
	for _, r := range rs {
		if r.Kind == KindDrill && r.Phase == PhaseSucceeded {
			return r.FinishedAt, nil
		}
	}
	return time.Time{}, nil
}

// Drift compares what runs in env with what runs in against: the names of
// variables (never their values), the shape of the run command, and the
// number of instances.
func (e *Engine) Drift(ctx context.Context, app, env, against string) (DriftReport, error) {
	env, err := e.checkTarget(app, env)
	if err != nil {
		return DriftReport{}, err
	}
	st, err := e.specs.Spec(env)
	if err != nil {
		return DriftReport{}, err
	}
	var allow []string
	if dg := st.Gates.Drift; dg != nil {
		allow = dg.Allow
		if against == "" {
			against = dg.Against
		}
	}
	if against == "" {
		against = st.Previous
	}
	if against == "" {
		return DriftReport{}, &FieldError{Field: "against", Message: fmt.Sprintf("%s has no stage before it in the pipeline: name the environment to compare with", env)}
	}
	if against == env {
		return DriftReport{}, &FieldError{Field: "against", Message: "compare an environment with another one"}
	}
	if _, err := e.specs.Spec(against); err != nil {
		return DriftReport{}, &FieldError{Field: "against", Message: err.Error()}
	}
	rep := DriftReport{App: app, Env: env, Against: against, OK: true, Diffs: []Difference{}}
	add := func(kind, detail string) {
		d := Difference{Kind: kind, Detail: detail, Allowed: slices.Contains(allow, kind)}
		rep.Diffs = append(rep.Diffs, d)
		rep.OK = rep.OK && d.Allowed
	}
	a, errA := e.liveShape(ctx, env)
	b, errB := e.liveShape(ctx, against)
	switch {
	case errors.Is(errA, ErrNotFound) && errors.Is(errB, ErrNotFound):
		return rep, nil
	case errors.Is(errA, ErrNotFound) || errors.Is(errB, ErrNotFound):
		// Nothing runs on one side: compare the configured shapes only.
		a, errA = e.configShape(env)
		b, errB = e.configShape(against)
	}
	if errA != nil {
		return DriftReport{}, errA
	}
	if errB != nil {
		return DriftReport{}, errB
	}
	if only := missingFrom(a.vars, b.vars); len(only) > 0 {
		add("vars", fmt.Sprintf("set in %s only: %s", env, strings.Join(only, ", ")))
	}
	if only := missingFrom(b.vars, a.vars); len(only) > 0 {
		add("vars", fmt.Sprintf("set in %s only: %s", against, strings.Join(only, ", ")))
	}
	if d := commandDiff(a.command, b.command); d != "" {
		add("command", d)
	}
	if a.instances != b.instances {
		add("instances", fmt.Sprintf("%d in %s, %d in %s", a.instances, env, b.instances, against))
	}
	return rep, nil
}

// shape is what drift compares of an environment.
type shape struct {
	vars      []string
	command   []string
	instances int
}

// liveShape is the shape of the stable release running in env.
func (e *Engine) liveShape(ctx context.Context, env string) (shape, error) {
	state, err := e.liveState(ctx, e.specs.App(), env)
	if err != nil {
		return shape{}, err
	}
	rel, err := e.store.GetRelease(ctx, e.specs.App(), state.Stable)
	if err != nil {
		return shape{}, err
	}
	sh, err := e.specShape(env, rel)
	if err != nil {
		return shape{}, err
	}
	sh.instances = len(state.Instances)
	return sh, nil
}

// configShape is the shape env would have, from the config alone.
func (e *Engine) configShape(env string) (shape, error) {
	return e.specShape(env, Release{App: e.specs.App(), Version: "VERSION"})
}

func (e *Engine) specShape(env string, rel Release) (shape, error) {
	st, err := e.specs.Spec(env)
	if err != nil {
		return shape{}, err
	}
	names := map[string]bool{}
	for k := range st.Vars {
		names[k] = true
	}
	for k := range rel.Vars {
		names[k] = true
	}
	for k := range st.Run.Env {
		names["env:"+k] = true
	}
	sh := shape{vars: sortedKeys(names), instances: st.Instances}
	// The command's shape: each argument as the config writes it, with
	// the values of variables left out, so that no secret is compared or
	// shown.
	sh.command = append(sh.command, st.Run.Command...)
	return sh, nil
}

func missingFrom(a, b []string) []string {
	var out []string
	for _, x := range a {
		if !slices.Contains(b, x) {
			out = append(out, x)
		}
	}
	return out
}

var anyVar = regexp.MustCompile(`\$\{[A-Za-z_][A-Za-z0-9_]*\}`)

func commandDiff(a, b []string) string {
	if len(a) != len(b) {
		return fmt.Sprintf("%d arguments against %d", len(a), len(b))
	}
	for i := range a {
		if anyVar.ReplaceAllString(a[i], "$") != anyVar.ReplaceAllString(b[i], "$") {
			return fmt.Sprintf("argument %d differs", i)
		}
	}
	return ""
}
