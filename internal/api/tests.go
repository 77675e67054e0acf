package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/shipgate/shipgate/internal/auth"
	"github.com/shipgate/shipgate/internal/rollout"
	"github.com/shipgate/shipgate/internal/testsignal"
)

// This file holds the test signal routes: CI records the JUnit reports of
// a release's CI run; anyone lists the flaky tests.

// TestService records test runs and lists flaky tests.
type TestService interface {
	Record(ctx context.Context, u testsignal.Upload) (testsignal.RunSummary, error)
	Flaky(ctx context.Context, app string) ([]testsignal.Flaky, error)
	Trend(ctx context.Context, app string, weeks int) ([]testsignal.Week, error)
}

// TestUploadRequest records a CI run's test results for a release.
type TestUploadRequest struct {
	// Commit is the commit CI built.
	Commit string `json:"commit"`
	// CIDuration is how long the CI run took, as a Go duration ("12m30s").
	CIDuration string `json:"ci_duration,omitempty"`
	// Reports are JUnit XML documents.
	Reports []string `json:"reports"`
}

// maxTestUploadBytes caps the body of a test upload: JUnit reports of a
// big suite are far larger than any other request.
const maxTestUploadBytes = 4 * testsignal.MaxReportSize

type testHandler struct {
	*handler
	svc TestService
}

// mountTests adds the test signal routes.
func mountTests(mux *http.ServeMux, h *handler, svc TestService) {
	t := &testHandler{handler: h, svc: svc}
	mux.Handle("POST /v1/apps/{app}/releases/{version}/tests", h.require(auth.RoleDeployer, t.record))
	mux.Handle("GET /v1/apps/{app}/tests/flaky", h.require(auth.RoleViewer, t.flaky))
	mux.Handle("GET /v1/apps/{app}/tests/trend", h.require(auth.RoleViewer, t.trend))
}

// checkApp refuses an app the server does not manage: the service says
// which it manages when it can (a server with several apps), else the
// handler's one app.
func (t *testHandler) checkApp(app string) error {
	if c, ok := t.svc.(interface{ CheckApp(app string) error }); ok {
		return c.CheckApp(app)
	}
	if t.app != "" && app != t.app {
		return fmt.Errorf("app %q: this server manages %q: %w", app, t.app, rollout.ErrNotFound)
	}
	return nil
}

func (t *testHandler) record(w http.ResponseWriter, r *http.Request) {
	app, version := r.PathValue("app"), r.PathValue("version")
	if err := t.checkApp(app); err != nil {
		t.writeError(w, r, err)
		return
	}
	if !versionPattern.MatchString(version) {
		t.writeError(w, r, invalid("version", fmt.Sprintf("%q is not a version", version)))
		return
	}
	var req TestUploadRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxTestUploadBytes))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		t.writeError(w, r, decodeError(err))
		return
	}
	u := testsignal.Upload{App: app, Version: version, Commit: req.Commit, Actor: actorFrom(r.Context())}
	if req.CIDuration != "" {
		d, err := time.ParseDuration(req.CIDuration)
		if err != nil || d < 0 {
			t.writeError(w, r, invalid("ci_duration", fmt.Sprintf("%q is not a duration like 12m30s", req.CIDuration)))
			return
		}
		u.CIDuration = d
	}
	for _, rep := range req.Reports {
		u.Reports = append(u.Reports, []byte(rep))
	}
	sum, err := t.svc.Record(r.Context(), u)
	var fe *testsignal.FieldError
	if errors.As(err, &fe) {
		err = &rollout.FieldError{Field: fe.Field, Message: fe.Message}
	}
	t.respond(w, r, http.StatusCreated, sum, err)
}

func (t *testHandler) flaky(w http.ResponseWriter, r *http.Request) {
	app := r.PathValue("app")
	if err := t.checkApp(app); err != nil {
		t.writeError(w, r, err)
		return
	}
	list, err := t.svc.Flaky(r.Context(), app)
	t.respond(w, r, http.StatusOK, orEmpty(list), err)
}

// maxTrendWeeks bounds the weeks of a CI time trend.
const maxTrendWeeks = 104

func (t *testHandler) trend(w http.ResponseWriter, r *http.Request) {
	app := r.PathValue("app")
	if err := t.checkApp(app); err != nil {
		t.writeError(w, r, err)
		return
	}
	weeks := 8
	if v := r.URL.Query().Get("weeks"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxTrendWeeks {
			t.writeError(w, r, invalid("weeks", "must be an integer from 1 to "+strconv.Itoa(maxTrendWeeks)))
			return
		}
		weeks = n
	}
	list, err := t.svc.Trend(r.Context(), app, weeks)
	t.respond(w, r, http.StatusOK, orEmpty(list), err)
}

// TestTrend returns an app's CI time per week, oldest first.
func (c *Client) TestTrend(ctx context.Context, app string, weeks int) ([]testsignal.Week, error) {
	var list []testsignal.Week
	err := c.do(ctx, http.MethodGet, "/v1/apps/"+url.PathEscape(app)+"/tests/trend?weeks="+strconv.Itoa(weeks), nil, &list)
	return list, err
}

// RecordTests records the JUnit reports of a release's CI run.
func (c *Client) RecordTests(ctx context.Context, app, version string, req TestUploadRequest) (testsignal.RunSummary, error) {
	var sum testsignal.RunSummary
	err := c.do(ctx, http.MethodPost, releasePath(app, version)+"/tests", req, &sum)
	return sum, err
}

// FlakyTests lists an app's flaky tests, oldest first.
func (c *Client) FlakyTests(ctx context.Context, app string) ([]testsignal.Flaky, error) {
	var list []testsignal.Flaky
	err := c.do(ctx, http.MethodGet, "/v1/apps/"+url.PathEscape(app)+"/tests/flaky", nil, &list)
	return list, err
}
