package rollout

import (
	"context"
	"errors"
)

var errTODO = errors.New("not implemented yet")

// CreateRelease records a release and its CI checks.
func (e *Engine) CreateRelease(ctx context.Context, req ReleaseRequest) (Release, error) {
	return Release{}, errTODO
}

// GetRelease returns a release.
func (e *Engine) GetRelease(ctx context.Context, app, version string) (Release, error) {
	return e.store.GetRelease(ctx, app, version)
}

// Approve approves the rollout waiting for approval in an environment.
func (e *Engine) Approve(ctx context.Context, req ApproveRequest) (Rollout, error) {
	return Rollout{}, errTODO
}

// Plan returns what a deploy would do, without doing anything.
func (e *Engine) Plan(ctx context.Context, req DeployRequest) (PlanView, error) {
	return PlanView{}, errTODO
}

// Drift compares an environment with another.
func (e *Engine) Drift(ctx context.Context, app, env, against string) (DriftReport, error) {
	return DriftReport{}, errTODO
}

// Drill starts a rollback drill and returns its rollout.
func (e *Engine) Drill(ctx context.Context, req DrillRequest) (Rollout, error) {
	return Rollout{}, errTODO
}
