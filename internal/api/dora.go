package api

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/shipgate/shipgate/internal/audit"
	"github.com/shipgate/shipgate/internal/auth"
	"github.com/shipgate/shipgate/internal/dora"
	"github.com/shipgate/shipgate/internal/report"
	"github.com/shipgate/shipgate/internal/rollout"
)

// This file holds the DORA routes: the numbers, the release changes they
// read (commits and size) and incidents linked to deploys.

// DORAService computes DORA numbers and the weekly report.
type DORAService interface {
	DORA(ctx context.Context, q report.Query) (report.View, error)
	Report(ctx context.Context, q report.WeekQuery) (report.Report, error)
}

// IncidentStore stores release changes and incidents, each change with
// its audit event in one transaction.
type IncidentStore interface {
	PutChangeAudited(ctx context.Context, c dora.Change, e audit.Event) error
	OpenIncidentAudited(ctx context.Context, in *dora.Incident, event func(dora.Incident) audit.Event) error
	ResolveIncidentAudited(ctx context.Context, id int64, resolvedAt time.Time, fixDeployID int64, event func(dora.Incident) audit.Event) (dora.Incident, error)
	ListIncidents(ctx context.Context, app, env string) ([]dora.Incident, error)
	GetRollout(ctx context.Context, id int64) (rollout.Rollout, error)
	// Commit stores an external deploy as a rollout with its audit event.
	Commit(ctx context.Context, c rollout.Change) error
}

// KindExternal is the kind of a rollout that records a deploy made outside
// Shipgate (POST /v1/deploys/external): DORA counts it as a deployment;
// the engine ignores it.
const KindExternal rollout.Kind = "external"

// ExternalDeployRequest records a deploy made outside Shipgate.
type ExternalDeployRequest struct {
	App     string `json:"app"`
	Env     string `json:"env"`
	Version string `json:"version"`
	// StartedAt is when it began; LiveAt when it served every user.
	StartedAt time.Time `json:"started_at"`
	LiveAt    time.Time `json:"live_at,omitzero"`
	// RolledBackAt is when it was found bad and undone; RestoredAt when
	// the old version served everyone again.
	RolledBackAt time.Time `json:"rolled_back_at,omitzero"`
	RestoredAt   time.Time `json:"restored_at,omitzero"`
	Hotfix       bool      `json:"hotfix,omitempty"`
	Reason       string    `json:"reason,omitempty"`
}

// ChangeRequest records what a release changed since the previous one.
type ChangeRequest struct {
	// Commits are the change's commits with their times; the oldest is
	// where lead time starts.
	Commits []dora.Commit `json:"commits,omitempty"`
	// Size, when set, is the files, lines and pull requests changed.
	Size *dora.Size `json:"size,omitempty"`
}

// IncidentRequest opens an incident.
type IncidentRequest struct {
	App string `json:"app"`
	Env string `json:"env"`
	// DeployID is the rollout that caused it; 0 when unknown.
	DeployID int64  `json:"deploy_id,omitempty"`
	Title    string `json:"title"`
	// OpenedAt is when the problem was detected; now when zero.
	OpenedAt time.Time `json:"opened_at,omitzero"`
}

// ResolveRequest resolves an incident.
type ResolveRequest struct {
	// FixDeployID is the deploy (a hotfix, usually) that fixed it.
	FixDeployID int64 `json:"fix_deploy_id,omitempty"`
	// ResolvedAt is when service was restored; now when zero.
	ResolvedAt time.Time `json:"resolved_at,omitzero"`
}

type doraHandler struct {
	*handler
	svc   DORAService
	store IncidentStore
}

// mountDORA adds the DORA, change and incident routes.
func mountDORA(mux *http.ServeMux, h *handler, svc DORAService, store IncidentStore) {
	d := &doraHandler{handler: h, svc: svc, store: store}
	if svc != nil {
		mux.Handle("GET /v1/dora", h.require(auth.RoleViewer, d.dora))
		mux.Handle("GET /v1/report", h.require(auth.RoleViewer, d.report))
	}
	if store != nil {
		mux.Handle("PUT /v1/apps/{app}/releases/{version}/change", h.require(auth.RoleDeployer, d.putChange))
		mux.Handle("POST /v1/incidents", h.require(auth.RoleDeployer, d.openIncident))
		mux.Handle("POST /v1/incidents/{id}/resolve", h.require(auth.RoleDeployer, d.resolveIncident))
		mux.Handle("GET /v1/incidents", h.require(auth.RoleViewer, d.listIncidents))
		mux.Handle("POST /v1/deploys/external", h.require(auth.RoleDeployer, d.externalDeploy))
	}
}

func (d *doraHandler) dora(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	since, err := report.ParseSince(q.Get("since"))
	if err != nil {
		d.writeError(w, r, &rollout.FieldError{Field: "since", Message: err.Error()})
		return
	}
	v, err := d.svc.DORA(r.Context(), report.Query{
		App: q.Get("app"), Env: q.Get("env"), Week: q.Get("week"), Since: since,
		Timezone: q.Get("timezone"), WeekStart: q.Get("week_start"),
	})
	d.respond(w, r, http.StatusOK, v, err)
}

func (d *doraHandler) report(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	rep, err := d.svc.Report(r.Context(), report.WeekQuery{
		App: q.Get("app"), Env: q.Get("env"), Week: q.Get("week"),
		Timezone: q.Get("timezone"), WeekStart: q.Get("week_start"),
	})
	d.respond(w, r, http.StatusOK, rep, err)
}

func (d *doraHandler) putChange(w http.ResponseWriter, r *http.Request) {
	app, version := r.PathValue("app"), r.PathValue("version")
	if err := validateVersion(version); err != nil {
		d.writeError(w, r, err)
		return
	}
	req, err := decodeJSON(w, r, validateChange)
	if err != nil {
		d.writeError(w, r, err)
		return
	}
	c := dora.Change{App: app, Version: version, Commits: req.Commits, Size: req.Size}
	e := audit.Event{Actor: actorFrom(r.Context()), Action: audit.ActionReleaseChange, Subject: app + "/" + version,
		Outcome: "ok", Data: map[string]string{"commits": strconv.Itoa(len(c.Commits))}}
	if first := c.FirstCommitAt(); !first.IsZero() {
		e.Data["first_commit_at"] = first.UTC().Format(time.RFC3339)
	}
	if c.Size != nil {
		e.Data["files"], e.Data["lines"], e.Data["prs"] = strconv.Itoa(c.Size.Files), strconv.Itoa(c.Size.Lines), strconv.Itoa(c.Size.PRs)
	}
	err = d.store.PutChangeAudited(r.Context(), c, e)
	d.respond(w, r, http.StatusOK, c, err)
}

func validateChange(req ChangeRequest) error {
	for i, c := range req.Commits {
		field := fmt.Sprintf("commits[%d]", i)
		if strings.TrimSpace(c.SHA) == "" {
			return &rollout.FieldError{Field: field + ".sha", Message: "is required"}
		}
		if c.Time.IsZero() {
			return &rollout.FieldError{Field: field + ".time", Message: "is required: the commit's time, RFC 3339"}
		}
	}
	if s := req.Size; s != nil && (s.Files < 0 || s.Lines < 0 || s.PRs < 0) {
		return &rollout.FieldError{Field: "size", Message: "files, lines and prs must be 0 or more"}
	}
	return nil
}

func (d *doraHandler) openIncident(w http.ResponseWriter, r *http.Request) {
	req, err := decodeJSON(w, r, validateIncident)
	if err != nil {
		d.writeError(w, r, err)
		return
	}
	if err := d.checkDeploy(r.Context(), "deploy_id", req.DeployID, req.App, req.Env); err != nil {
		d.writeError(w, r, err)
		return
	}
	in := dora.Incident{App: req.App, Env: req.Env, DeployID: req.DeployID, Title: req.Title, OpenedAt: req.OpenedAt}
	actor := actorFrom(r.Context())
	err = d.store.OpenIncidentAudited(r.Context(), &in, func(in dora.Incident) audit.Event {
		return incidentEvent(actor, audit.ActionIncidentOpen, in)
	})
	if err == nil {
		w.Header().Set("Location", "/v1/incidents/"+strconv.FormatInt(in.ID, 10))
	}
	d.respond(w, r, http.StatusCreated, in, err)
}

func incidentEvent(actor, action string, in dora.Incident) audit.Event {
	e := audit.Event{Actor: actor, Action: action, Subject: "incident/" + strconv.FormatInt(in.ID, 10),
		Reason: in.Title, Outcome: "ok", Data: map[string]string{"app": in.App, "env": in.Env}}
	if in.DeployID != 0 {
		e.Data["deploy"] = strconv.FormatInt(in.DeployID, 10)
	}
	if in.FixDeployID != 0 {
		e.Data["fix_deploy"] = strconv.FormatInt(in.FixDeployID, 10)
	}
	return e
}

func validateIncident(req IncidentRequest) error {
	if err := requireApp(req.App); err != nil {
		return err
	}
	if req.Env == "" {
		return &rollout.FieldError{Field: "env", Message: "is required"}
	}
	if strings.TrimSpace(req.Title) == "" {
		return &rollout.FieldError{Field: "title", Message: "is required: say what went wrong"}
	}
	if req.DeployID < 0 {
		return &rollout.FieldError{Field: "deploy_id", Message: "must be a rollout id"}
	}
	return nil
}

// checkDeploy checks that rollout id (when not 0) is a deploy of app in env.
func (d *doraHandler) checkDeploy(ctx context.Context, field string, id int64, app, env string) error {
	if id == 0 {
		return nil
	}
	ro, err := d.store.GetRollout(ctx, id)
	if err != nil {
		return &rollout.FieldError{Field: field, Message: fmt.Sprintf("rollout %d does not exist", id)}
	}
	if ro.App != app || ro.Env != env || (ro.Kind != rollout.KindDeploy && ro.Kind != KindExternal) {
		return &rollout.FieldError{Field: field, Message: fmt.Sprintf("rollout %d is a %s of %s in %s, not a deploy of %s in %s", id, ro.Kind, ro.App, ro.Env, app, env)}
	}
	return nil
}

func (d *doraHandler) resolveIncident(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id <= 0 {
		d.writeError(w, r, &rollout.FieldError{Field: "id", Message: fmt.Sprintf("%q is not an incident id", r.PathValue("id"))})
		return
	}
	req, err := decodeJSON[ResolveRequest](w, r, nil)
	if err != nil {
		d.writeError(w, r, err)
		return
	}
	if req.FixDeployID != 0 {
		ins, err := d.store.ListIncidents(r.Context(), "", "")
		if err != nil {
			d.writeError(w, r, err)
			return
		}
		for _, in := range ins {
			if in.ID == id {
				if err := d.checkDeploy(r.Context(), "fix_deploy_id", req.FixDeployID, in.App, in.Env); err != nil {
					d.writeError(w, r, err)
					return
				}
			}
		}
	}
	actor := actorFrom(r.Context())
	in, err := d.store.ResolveIncidentAudited(r.Context(), id, req.ResolvedAt, req.FixDeployID, func(in dora.Incident) audit.Event {
		return incidentEvent(actor, audit.ActionIncidentResolve, in)
	})
	d.respond(w, r, http.StatusOK, in, err)
}

func validateExternal(req ExternalDeployRequest) error {
	if err := requireApp(req.App); err != nil {
		return err
	}
	if req.Env == "" {
		return &rollout.FieldError{Field: "env", Message: "is required"}
	}
	if err := validateVersion(req.Version); err != nil {
		return err
	}
	switch {
	case req.StartedAt.IsZero():
		return &rollout.FieldError{Field: "started_at", Message: "is required: when the deploy began"}
	case !req.LiveAt.IsZero() && req.LiveAt.Before(req.StartedAt):
		return &rollout.FieldError{Field: "live_at", Message: "is before started_at"}
	case !req.RolledBackAt.IsZero() && req.RolledBackAt.Before(req.StartedAt):
		return &rollout.FieldError{Field: "rolled_back_at", Message: "is before started_at"}
	case !req.RestoredAt.IsZero() && req.RolledBackAt.IsZero():
		return &rollout.FieldError{Field: "restored_at", Message: "needs rolled_back_at"}
	case !req.RestoredAt.IsZero() && req.RestoredAt.Before(req.RolledBackAt):
		return &rollout.FieldError{Field: "restored_at", Message: "is before rolled_back_at"}
	}
	return nil
}

// externalDeploy records a deploy made outside Shipgate as a finished
// rollout of kind external, so that DORA counts it and incidents can name
// it; the engine never acts on it.
func (d *doraHandler) externalDeploy(w http.ResponseWriter, r *http.Request) {
	req, err := decodeJSON(w, r, validateExternal)
	if err != nil {
		d.writeError(w, r, err)
		return
	}
	actor := actorFrom(r.Context())
	ro := rollout.Rollout{App: req.App, Env: req.Env, Kind: KindExternal, Version: req.Version, Phase: rollout.PhaseSucceeded,
		Actor: actor, Reason: req.Reason, Hotfix: req.Hotfix, CreatedAt: req.StartedAt, UpdatedAt: req.StartedAt,
		FirstTrafficAt: req.StartedAt, PromotedAt: req.LiveAt, FinishedAt: req.LiveAt}
	if !req.RolledBackAt.IsZero() {
		ro.Phase, ro.RollbackStartedAt, ro.TrafficRestoredAt, ro.FinishedAt = rollout.PhaseRolledBack, req.RolledBackAt, req.RestoredAt, req.RestoredAt
	}
	e := audit.Event{Actor: actor, Action: audit.ActionDeployExternal, Subject: req.App + "/" + req.Env + "/" + req.Version,
		Reason: "deploy made outside Shipgate, recorded", Outcome: "ok", Data: map[string]string{"phase": string(ro.Phase)}}
	err = d.store.Commit(r.Context(), rollout.Change{Rollout: &ro, Audit: []audit.Event{e}})
	if err == nil {
		w.Header().Set("Location", "/v1/rollouts/"+strconv.FormatInt(ro.ID, 10))
	}
	d.respond(w, r, http.StatusCreated, ro, err)
}

// RecordExternalDeploy records a deploy made outside Shipgate.
func (c *Client) RecordExternalDeploy(ctx context.Context, req ExternalDeployRequest) (rollout.Rollout, error) {
	var out rollout.Rollout
	err := c.do(ctx, http.MethodPost, "/v1/deploys/external", req, &out)
	return out, err
}

func (d *doraHandler) listIncidents(w http.ResponseWriter, r *http.Request) {
	ins, err := d.store.ListIncidents(r.Context(), r.URL.Query().Get("app"), r.URL.Query().Get("env"))
	if ins == nil {
		ins = []dora.Incident{}
	}
	d.respond(w, r, http.StatusOK, ins, err)
}

// DORA returns the DORA numbers q asks for.
func (c *Client) DORA(ctx context.Context, q report.Query) (report.View, error) {
	v := url.Values{}
	for k, s := range map[string]string{"app": q.App, "env": q.Env, "week": q.Week, "timezone": q.Timezone, "week_start": q.WeekStart} {
		if s != "" {
			v.Set(k, s)
		}
	}
	if q.Since != 0 {
		v.Set("since", q.Since.String())
	}
	var out report.View
	err := c.do(ctx, http.MethodGet, withQuery("/v1/dora", v), nil, &out)
	return out, err
}

// Report returns the weekly report q asks for.
func (c *Client) Report(ctx context.Context, q report.WeekQuery) (report.Report, error) {
	v := url.Values{}
	for k, s := range map[string]string{"app": q.App, "env": q.Env, "week": q.Week, "timezone": q.Timezone, "week_start": q.WeekStart} {
		if s != "" {
			v.Set(k, s)
		}
	}
	var out report.Report
	err := c.do(ctx, http.MethodGet, withQuery("/v1/report", v), nil, &out)
	return out, err
}

// PutChange records the commits and size of a release's change.
func (c *Client) PutChange(ctx context.Context, app, version string, req ChangeRequest) (dora.Change, error) {
	var out dora.Change
	err := c.do(ctx, http.MethodPut, releasePath(app, version)+"/change", req, &out)
	return out, err
}

// OpenIncident opens an incident.
func (c *Client) OpenIncident(ctx context.Context, req IncidentRequest) (dora.Incident, error) {
	var out dora.Incident
	err := c.do(ctx, http.MethodPost, "/v1/incidents", req, &out)
	return out, err
}

// ResolveIncident resolves incident id.
func (c *Client) ResolveIncident(ctx context.Context, id int64, req ResolveRequest) (dora.Incident, error) {
	var out dora.Incident
	err := c.do(ctx, http.MethodPost, "/v1/incidents/"+strconv.FormatInt(id, 10)+"/resolve", req, &out)
	return out, err
}

// ListIncidents lists incidents of app in env ("" for all).
func (c *Client) ListIncidents(ctx context.Context, app, env string) ([]dora.Incident, error) {
	v := url.Values{}
	if app != "" {
		v.Set("app", app)
	}
	if env != "" {
		v.Set("env", env)
	}
	var out []dora.Incident
	err := c.do(ctx, http.MethodGet, withQuery("/v1/incidents", v), nil, &out)
	return out, err
}
