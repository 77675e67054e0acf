// Package report builds Shipgate's DORA view and the Monday report from the
// store: it gathers rollouts, release changes and incidents into a
// dora.History, asks package dora for the numbers, and renders them as
// Markdown, HTML (with inline SVG charts) or JSON.
package report

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/shipgate/shipgate/internal/audit"
	"github.com/shipgate/shipgate/internal/dora"
	"github.com/shipgate/shipgate/internal/rollout"
)

// Store is what the report reads.
type Store interface {
	// ListRollouts returns rollouts newest first, at most limit.
	ListRollouts(ctx context.Context, app, env string, limit int) ([]rollout.Rollout, error)
	// ListAudit returns audit events matching f, newest first.
	ListAudit(ctx context.Context, f audit.Filter) ([]audit.Event, error)
	// ListChanges returns each release's commits and size.
	ListChanges(ctx context.Context) ([]dora.Change, error)
	// ListIncidents returns incidents ("" matches every app or env).
	ListIncidents(ctx context.Context, app, env string) ([]dora.Incident, error)
}

// kindExternal is the rollout kind of a deploy made outside Shipgate and
// recorded through the API (api.KindExternal).
const kindExternal rollout.Kind = "external"

// allRows is the limit that reads a whole table.
const allRows = 1 << 30

// Gather reads the whole record of app ("" for all) into a dora.History.
// Drills are left out: they are rehearsals, not deployments.
func Gather(ctx context.Context, st Store, app string) (dora.History, error) {
	rollouts, err := st.ListRollouts(ctx, app, "", allRows)
	if err != nil {
		return dora.History{}, fmt.Errorf("gather rollouts: %w", err)
	}
	changes, err := st.ListChanges(ctx)
	if err != nil {
		return dora.History{}, fmt.Errorf("gather changes: %w", err)
	}
	byRelease := make(map[string]dora.Change, len(changes))
	for _, c := range changes {
		byRelease[c.App+"\x00"+c.Version] = c
	}
	evidence, err := gateEvidence(ctx, st)
	if err != nil {
		return dora.History{}, err
	}
	var h dora.History
	for i := len(rollouts) - 1; i >= 0; i-- { // oldest first
		r := rollouts[i]
		kind := dora.Kind(r.Kind)
		switch r.Kind {
		case rollout.KindDeploy, rollout.KindRollback:
		case kindExternal: // a deploy made outside Shipgate, recorded
			kind = dora.KindDeploy
		default:
			continue
		}
		d := dora.Deploy{
			ID: r.ID, App: r.App, Env: r.Env, Kind: kind, Version: r.Version, FromVersion: r.FromVersion,
			Hotfix: r.Hotfix, StartedAt: r.CreatedAt, FirstTrafficAt: r.FirstTrafficAt, LiveAt: r.PromotedAt,
			RollbackStartedAt: r.RollbackStartedAt, TrafficRestoredAt: r.TrafficRestoredAt,
		}
		if !r.RollbackStartedAt.IsZero() && (r.Phase == rollout.PhaseRolledBack || r.Phase == rollout.PhaseFailed || r.Phase == rollout.PhaseRollingBack) {
			d.RolledBack = true
			// A recorded external rollback was a person's doing.
			d.ManualRollback = strings.HasPrefix(r.Reason, "rolled back by ") || r.Kind == kindExternal
			d.Reason = r.Reason
			if ev, ok := evidence[r.ID]; ok {
				d.Gate, d.Value, d.Threshold = ev.Data["gate"], ev.Data["value"], ev.Data["threshold"]
			}
		}
		if c, ok := byRelease[r.App+"\x00"+r.Version]; ok && kind == dora.KindDeploy {
			d.FirstCommitAt = c.FirstCommitAt()
			d.Size = c.Size
		}
		h.Deploys = append(h.Deploys, d)
	}
	if h.Incidents, err = st.ListIncidents(ctx, app, ""); err != nil {
		return dora.History{}, fmt.Errorf("gather incidents: %w", err)
	}
	return h, nil
}

// gateEvidence returns the automatic rollback event of each rollout, by
// rollout id: the gate, the value and the threshold that convicted it.
func gateEvidence(ctx context.Context, st Store) (map[int64]audit.Event, error) {
	events, err := st.ListAudit(ctx, audit.Filter{Action: audit.ActionRollbackAuto, Limit: allRows})
	if err != nil {
		return nil, fmt.Errorf("gather rollback evidence: %w", err)
	}
	out := make(map[int64]audit.Event, len(events))
	for _, e := range events {
		if id, err := strconv.ParseInt(e.Data["rollout"], 10, 64); err == nil {
			out[id] = e
		}
	}
	return out, nil
}
