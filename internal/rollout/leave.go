package rollout

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/shipgate/shipgate/internal/audit"
)

// Leave hands an environment's routing back to its owner (shipgate
// kubernetes leave): the environment's Leaver takes Shipgate's rules out,
// and the engine forgets what is live there, so that a restarted server
// does not put them back. It is refused while a rollout of the
// environment is active, naming it: what the rollout would do next
// assumes Shipgate routes. A later deploy to the environment is a first
// deploy, which takes the routing back.
func (e *Engine) Leave(ctx context.Context, req LeaveRequest) (LeaveReport, error) {
	if req.Env == "" {
		return LeaveReport{}, &FieldError{Field: "env", Message: "is required: name the environment to leave"}
	}
	env, err := e.checkTarget(req.App, req.Env)
	if err != nil {
		return LeaveReport{}, err
	}
	if strings.TrimSpace(req.Reason) == "" {
		return LeaveReport{}, &FieldError{Field: "reason", Message: "is required: say why Shipgate leaves " + env}
	}
	en, err := e.env(env)
	if err != nil {
		return LeaveReport{}, err
	}
	if en.Leaver == nil {
		return LeaveReport{}, &FieldError{Field: "env", Message: fmt.Sprintf("%s does not run on Kubernetes: its router is Shipgate's own, there is no route of yours to hand back (stop it with shipgate down)", env)}
	}

	// Under a claim of env no deploy or rollback of the app starts
	// meanwhile.
	busy, _, err := e.rec.claim(ctx, env, false)
	if err != nil {
		return LeaveReport{}, err
	}
	if busy != nil {
		return LeaveReport{}, fmt.Errorf("rollout %d of %s %s in %s/%s is still %s: wait for it or roll it back, then leave: %w", busy.ID, busy.Kind, busy.Version, busy.App, busy.Env, describe(*busy), ErrConflict)
	}
	defer e.rec.unclaim()
	state, err := e.liveState(ctx, req.App, env)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return LeaveReport{}, err
	}
	req.Env, req.Live = env, state.Stable
	rep, err := en.Leaver.Leave(ctx, req)
	if err != nil {
		return rep, err
	}
	rep.App, rep.Env, rep.Live = req.App, env, state.Stable
	now := e.clock.Now()
	ev := audit.Event{
		Time: now, Actor: req.Actor, Action: audit.ActionLeave, Subject: req.App + "/" + env,
		Reason: req.Reason, Outcome: "ok", Data: map[string]string{"live": state.Stable, "route": rep.Route},
	}
	if rep.RouteDeleted {
		ev.Data["route_deleted"] = "true"
	}
	if len(rep.RemovedRules) > 0 {
		ev.Data["removed_rules"] = strings.Join(rep.RemovedRules, ",")
	}
	if len(rep.LostTraffic) > 0 {
		ev.Data["lost_traffic"] = strings.Join(rep.LostTraffic, "; ")
		ev.Data["force"] = "true"
	}
	if len(rep.DeletedReleases) > 0 {
		ev.Data["deleted_releases"] = strings.Join(rep.DeletedReleases, ",")
	}
	// What is live is forgotten: a restarted server finds nothing to
	// route in env, and does not put Shipgate's rules back.
	c := Change{Env: &EnvState{App: req.App, Env: env, UpdatedAt: now}, Audit: []audit.Event{ev}}
	if err := e.store.Commit(ctx, c); err != nil {
		return rep, fmt.Errorf("record leaving %s: %w", env, err)
	}
	e.log.Info("left environment", "env", env, "route", rep.Route, "live", state.Stable)
	return rep, nil
}
