package api

import (
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/shipgate/shipgate/internal/rollout"
)

// This file holds the routes of the release pipeline: releases with their
// CI checks, plans, drift, approvals and rollback drills.

// checkNamePattern is what a CI check's name may look like.
var checkNamePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

// releaseBody is the wire form of a rollout.ReleaseRequest. commit_time is
// read as a string and parsed here, because encoding/json reports a bad
// time without naming the field.
type releaseBody struct {
	rollout.ReleaseRequest
	CommitTime string `json:"commit_time,omitempty"`
}

// request returns the ReleaseRequest of the body.
func (b releaseBody) request() (rollout.ReleaseRequest, error) {
	req := b.ReleaseRequest
	if b.CommitTime != "" {
		t, err := time.Parse(time.RFC3339, b.CommitTime)
		if err != nil {
			return req, &rollout.FieldError{Field: "commit_time", Message: fmt.Sprintf("%q is not an RFC 3339 time such as 2025-03-01T14:02:00Z", b.CommitTime)}
		}
		req.CommitTime = t
	}
	return req, nil
}

func (h *handler) createRelease(w http.ResponseWriter, r *http.Request) {
	req, err := decodeRelease(w, r)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	req.Actor = actorFrom(r.Context())
	rel, err := h.svc.CreateRelease(r.Context(), req)
	if err == nil {
		w.Header().Set("Location", releasePath(rel.App, rel.Version))
	}
	h.respond(w, r, http.StatusCreated, rel, err)
}

// decodeRelease decodes and validates the body of POST /v1/releases.
func decodeRelease(w http.ResponseWriter, r *http.Request) (rollout.ReleaseRequest, error) {
	body, err := decodeJSON[releaseBody](w, r, nil)
	if err != nil {
		return rollout.ReleaseRequest{}, err
	}
	req, err := body.request()
	if err != nil {
		return req, err
	}
	return req, validateRelease(req)
}

func validateRelease(req rollout.ReleaseRequest) error {
	if err := requireApp(req.App); err != nil {
		return err
	}
	if err := validateVersion(req.Version); err != nil {
		return err
	}
	// Sorted, so that the same request always names the same check.
	for _, name := range slices.Sorted(maps.Keys(req.Checks)) {
		if !checkNamePattern.MatchString(name) {
			return &rollout.FieldError{Field: "checks", Message: fmt.Sprintf("check name %q must start with a letter or digit and hold only letters, digits, '.', '_' or '-'", name)}
		}
		switch st := req.Checks[name]; st {
		case rollout.CheckPassed, rollout.CheckFailed, rollout.CheckPending:
		default:
			return &rollout.FieldError{Field: "checks", Message: fmt.Sprintf("check %q has state %q; want passed, failed or pending", name, st)}
		}
	}
	return nil
}

// releasePath is the URL path of a release.
func releasePath(app, version string) string {
	return "/v1/apps/" + url.PathEscape(app) + "/releases/" + url.PathEscape(version)
}

func (h *handler) getRelease(w http.ResponseWriter, r *http.Request) {
	version := r.PathValue("version")
	if err := validateVersion(version); err != nil {
		h.writeError(w, r, err)
		return
	}
	rel, err := h.svc.GetRelease(r.Context(), r.PathValue("app"), version)
	h.respond(w, r, http.StatusOK, rel, err)
}

func (h *handler) approve(w http.ResponseWriter, r *http.Request) {
	req, err := decodeJSON(w, r, func(req rollout.ApproveRequest) error { return requireApp(req.App) })
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	req.Actor = actorFrom(r.Context())
	req.Role = string(tokenFrom(r.Context()).Role)
	ro, err := h.svc.Approve(r.Context(), req)
	h.respond(w, r, http.StatusOK, ro, err)
}

// promote ends the running bake of an environment as passed.
func (h *handler) promote(w http.ResponseWriter, r *http.Request) {
	req, err := decodeJSON(w, r, func(req rollout.PromoteRequest) error {
		if err := requireApp(req.App); err != nil {
			return err
		}
		if strings.TrimSpace(req.Reason) == "" {
			return &rollout.FieldError{Field: "reason", Message: "is required: say why the rest of the bake is skipped"}
		}
		return nil
	})
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	req.Actor = actorFrom(r.Context())
	ro, err := h.svc.Promote(r.Context(), req)
	h.respond(w, r, http.StatusOK, ro, err)
}

// pauseOrResume answers a pause (or, with resume, a resume) of the
// running bake.
func (h *handler) pauseOrResume(resume bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		req, err := decodeJSON(w, r, func(req rollout.PauseRequest) error {
			if err := requireApp(req.App); err != nil {
				return err
			}
			if strings.TrimSpace(req.Reason) == "" {
				return &rollout.FieldError{Field: "reason", Message: "is required: say why"}
			}
			return nil
		})
		if err != nil {
			h.writeError(w, r, err)
			return
		}
		req.Actor = actorFrom(r.Context())
		do := h.svc.Pause
		if resume {
			do = h.svc.Resume
		}
		ro, err := do(r.Context(), req)
		h.respond(w, r, http.StatusOK, ro, err)
	}
}

// plan answers what a deploy would do. It takes the deploy's own request
// and validation, so that a plan that passes means the same deploy is not
// refused for its input.
func (h *handler) plan(w http.ResponseWriter, r *http.Request) {
	req, err := decodeJSON(w, r, validateDeploy)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	// A gate may depend on who asks (an approver cannot approve their own
	// deploy), so the plan is made for the token's actor.
	req.Actor = actorFrom(r.Context())
	pv, err := h.svc.Plan(r.Context(), req)
	pv.Gates, pv.Steps = orEmpty(pv.Gates), orEmpty(pv.Steps)
	h.respond(w, r, http.StatusOK, pv, err)
}

func (h *handler) drift(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	env, against := q.Get("env"), q.Get("against")
	if against != "" && against == env {
		h.writeError(w, r, &rollout.FieldError{Field: "against", Message: fmt.Sprintf("must be another environment than env %q", env)})
		return
	}
	rep, err := h.svc.Drift(r.Context(), r.PathValue("app"), env, against)
	rep.Diffs = orEmpty(rep.Diffs)
	h.respond(w, r, http.StatusOK, rep, err)
}

// retry deploys again an environment's last deploy, rolled back or failed.
func (h *handler) retry(w http.ResponseWriter, r *http.Request) {
	req, err := decodeJSON(w, r, func(req rollout.RetryRequest) error { return requireApp(req.App) })
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	req.Actor = actorFrom(r.Context())
	ro, err := h.svc.Retry(r.Context(), req)
	h.respondStarted(w, r, ro, err)
}

func (h *handler) drill(w http.ResponseWriter, r *http.Request) {
	req, err := decodeJSON(w, r, func(req rollout.DrillRequest) error { return requireApp(req.App) })
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	req.Actor = actorFrom(r.Context())
	ro, err := h.svc.Drill(r.Context(), req)
	h.respondStarted(w, r, ro, err)
}
