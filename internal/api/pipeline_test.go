package api_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/shipgate/shipgate/internal/rollout"
)

// The pipeline methods of recordingService. Like the others they record
// the request and answer canned values: these tests are about the
// transport, not about the gates.

type driftCall struct {
	app, env, against string
}

func (s *recordingService) CreateRelease(_ context.Context, req rollout.ReleaseRequest) (rollout.Release, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return rollout.Release{}, s.err
	}
	s.releases = append(s.releases, req)
	return rollout.Release{App: req.App, Version: req.Version, Commit: req.Commit, CommitTime: req.CommitTime, Checks: req.Checks, Vars: req.Vars, CreatedAt: time.Date(2025, 3, 1, 14, 0, 0, 0, time.UTC)}, nil
}

func (s *recordingService) GetRelease(_ context.Context, app, version string) (rollout.Release, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return rollout.Release{}, s.err
	}
	if version != "1.1.0" {
		return rollout.Release{}, fmt.Errorf("release %s of %s: %w", version, app, rollout.ErrNotFound)
	}
	return rollout.Release{App: app, Version: version, Commit: "abc123", Checks: map[string]rollout.CheckState{"unit": rollout.CheckPassed}}, nil
}

func (s *recordingService) Pause(_ context.Context, req rollout.PauseRequest) (rollout.Rollout, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pauses = append(s.pauses, "pause "+req.Reason)
	return rollout.Rollout{ID: 3, App: req.App, Env: "production", Kind: rollout.KindDeploy, Version: "1.1.0", Phase: rollout.PhaseRunning, Paused: "paused by " + req.Actor}, nil
}

func (s *recordingService) Resume(_ context.Context, req rollout.PauseRequest) (rollout.Rollout, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pauses = append(s.pauses, "resume "+req.Reason)
	return rollout.Rollout{ID: 3, App: req.App, Env: "production", Kind: rollout.KindDeploy, Version: "1.1.0", Phase: rollout.PhaseRunning}, nil
}

func (s *recordingService) Retry(_ context.Context, req rollout.RetryRequest) (rollout.Rollout, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pauses = append(s.pauses, "retry "+req.Actor)
	return rollout.Rollout{ID: 4, App: req.App, Env: "production", Kind: rollout.KindDeploy, Version: "1.1.0", Phase: rollout.PhaseRunning}, nil
}

func (s *recordingService) Promote(_ context.Context, req rollout.PromoteRequest) (rollout.Rollout, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return rollout.Rollout{}, s.err
	}
	s.promotions = append(s.promotions, req)
	return rollout.Rollout{ID: 7, App: req.App, Env: "production", Kind: rollout.KindDeploy, Version: "1.1.0", Phase: rollout.PhaseRunning}, nil
}

func (s *recordingService) Approve(_ context.Context, req rollout.ApproveRequest) (rollout.Rollout, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return rollout.Rollout{}, s.err
	}
	s.approvals = append(s.approvals, req)
	return rollout.Rollout{ID: 7, App: req.App, Env: "production", Kind: rollout.KindDeploy, Version: "1.1.0", Phase: rollout.PhaseRunning,
		Approval: &rollout.Approval{By: req.Actor, Comment: req.Comment, Digest: "sha256:0"}}, nil
}

func (s *recordingService) Plan(_ context.Context, req rollout.DeployRequest) (rollout.PlanView, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return rollout.PlanView{}, s.err
	}
	s.plans = append(s.plans, req)
	return rollout.PlanView{App: req.App, Env: "production", Version: req.Version, From: "1.0.0", Strategy: "canary", Hotfix: req.Hotfix,
		Gates: []rollout.GateStatus{{Gate: "pipeline", OK: false, Detail: "not in staging yet", Bypassed: req.Hotfix}},
		Steps: []rollout.PlannedStep{{Kind: rollout.StepStart, Description: "start 2 instances", Rollback: "stop them"}}}, nil
}

func (s *recordingService) Drift(_ context.Context, app, env, against string) (rollout.DriftReport, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return rollout.DriftReport{}, s.err
	}
	s.drifts = append(s.drifts, driftCall{app, env, against})
	// No differences, and a nil slice: the API answers [] all the same.
	return rollout.DriftReport{App: app, Env: "production", Against: "staging", OK: true}, nil
}

func (s *recordingService) Drill(_ context.Context, req rollout.DrillRequest) (rollout.Rollout, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return rollout.Rollout{}, s.err
	}
	s.drills = append(s.drills, req)
	return rollout.Rollout{ID: 9, App: req.App, Env: "production", Kind: rollout.KindDrill, Version: "1.0.0", FromVersion: "1.1.0", Phase: rollout.PhaseRunning, Actor: req.Actor}, nil
}

func TestHandler_CreateRelease(t *testing.T) {
	f := newFixture(t)
	commitTime := time.Date(2025, 3, 1, 13, 58, 0, 0, time.UTC)
	rel, err := f.client(f.deployer).CreateRelease(t.Context(), rollout.ReleaseRequest{
		App: "shop", Version: "1.1.0", Commit: "abc123", CommitTime: commitTime,
		Checks: map[string]rollout.CheckState{"unit": rollout.CheckPassed, "e2e.chrome": rollout.CheckPending},
		Vars:   map[string]string{"COLOR": "blue"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := rel.Checks["e2e.chrome"], rollout.CheckPending; got != want {
		t.Fatalf("answered check = %q, want %q", got, want)
	}
	if got, want := len(f.svc.releases), 1; got != want {
		t.Fatalf("releases = %d, want %d", got, want)
	}
	got := f.svc.releases[0]
	if got.App != "shop" || got.Version != "1.1.0" || got.Commit != "abc123" || !got.CommitTime.Equal(commitTime) ||
		got.Checks["unit"] != rollout.CheckPassed || got.Checks["e2e.chrome"] != rollout.CheckPending || len(got.Checks) != 2 ||
		got.Vars["COLOR"] != "blue" {
		t.Fatalf("service got %+v, want the request as sent", got)
	}
	if got, want := got.Actor, "user:ci"; got != want {
		t.Fatalf("actor = %q, want %q", got, want)
	}

	resp, _ := f.raw(t, http.MethodPost, "/v1/releases", f.deployer, `{"app":"shop","version":"1.2.0","commit_time":"2025-03-01T15:58:00+02:00"}`)
	// 15:58 at UTC+2 is the commitTime above.
	if got, want := resp.StatusCode, http.StatusCreated; got != want {
		t.Fatalf("status = %d, want %d", got, want)
	}
	if got, want := resp.Header.Get("Location"), "/v1/apps/shop/releases/1.2.0"; got != want {
		t.Fatalf("Location = %q, want %q", got, want)
	}
	if got := f.svc.releases[1].CommitTime; !got.Equal(commitTime) {
		t.Fatalf("commit time = %s, want %s", got, commitTime)
	}
}

func TestHandler_GetRelease(t *testing.T) {
	f := newFixture(t)
	c := f.client(f.viewer)
	rel, err := c.GetRelease(t.Context(), "shop", "1.1.0")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := rel.Checks["unit"], rollout.CheckPassed; got != want {
		t.Fatalf("check unit = %q, want %q", got, want)
	}
	_, err = c.GetRelease(t.Context(), "shop", "9.9.9")
	if got, want := asAPIError(t, err).Status, http.StatusNotFound; got != want {
		t.Fatalf("unknown release: status = %d, want %d", got, want)
	}
	if !errors.Is(err, rollout.ErrNotFound) {
		t.Fatalf("unknown release: %v does not match rollout.ErrNotFound", err)
	}
}

func TestHandler_Approve(t *testing.T) {
	f := newFixture(t)
	ro, err := f.client(f.deployer).Approve(t.Context(), rollout.ApproveRequest{App: "shop", Env: "production", Comment: "dashboards look fine", Actor: "user:admin"})
	if err != nil {
		t.Fatal(err)
	}
	if ro.Approval == nil || ro.Approval.By != "user:ci" {
		t.Fatalf("approval = %+v, want one by user:ci", ro.Approval)
	}
	if got, want := f.svc.approvals, []rollout.ApproveRequest{{App: "shop", Env: "production", Comment: "dashboards look fine", Actor: "user:ci", Role: "deployer"}}; len(got) != 1 || got[0] != want[0] {
		t.Fatalf("service got %+v, want %+v", got, want)
	}
	resp, _ := f.raw(t, http.MethodPost, "/v1/approvals", f.deployer, `{"app":"shop"}`)
	if got, want := resp.StatusCode, http.StatusOK; got != want {
		t.Fatalf("status = %d, want %d", got, want)
	}
}

func TestHandler_Plan(t *testing.T) {
	f := newFixture(t)
	// A viewer may ask for a plan: it changes nothing.
	pv, err := f.client(f.viewer).Plan(t.Context(), rollout.DeployRequest{App: "shop", Version: "1.1.0", Hotfix: true, Reason: "checkout is down", Vars: map[string]string{"A": "1"}})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := len(pv.Gates), 1; got != want {
		t.Fatalf("gates = %d, want %d", got, want)
	}
	if !pv.Gates[0].Bypassed || pv.Steps[0].Rollback != "stop them" {
		t.Fatalf("plan = %+v, want the service's", pv)
	}
	got := f.svc.plans[0]
	if !got.Hotfix || got.Reason != "checkout is down" || got.Vars["A"] != "1" || got.Actor != "user:dash" {
		t.Fatalf("service got %+v, want the request as sent, by user:dash", got)
	}
	if len(f.svc.deploys) != 0 {
		t.Fatalf("a plan deployed")
	}
}

func TestHandler_Drift(t *testing.T) {
	f := newFixture(t)
	c := f.client(f.viewer)
	for _, tc := range []struct {
		env, against string
	}{
		{"production", "staging"},
		{"", ""},
	} {
		if _, err := c.Drift(t.Context(), "shop", tc.env, tc.against); err != nil {
			t.Fatal(err)
		}
		if got, want := f.svc.drifts[len(f.svc.drifts)-1], (driftCall{"shop", tc.env, tc.against}); got != want {
			t.Fatalf("service got %+v, want %+v", got, want)
		}
	}
	// No differences is an empty list, not null, for programs that iterate.
	resp, err := f.srv.Client().Do(mustRequest(t, http.MethodGet, f.srv.URL+"/v1/apps/shop/drift", f.viewer))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]json.RawMessage
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatal(err)
	}
	if got, want := string(body["differences"]), "[]"; got != want {
		t.Fatalf("differences = %s, want %s", got, want)
	}
}

func TestHandler_Drill(t *testing.T) {
	f := newFixture(t)
	ro, err := f.client(f.deployer).Drill(t.Context(), rollout.DrillRequest{App: "shop", Env: "production"})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := ro.Kind, rollout.KindDrill; got != want {
		t.Fatalf("kind = %q, want %q", got, want)
	}
	if got, want := f.svc.drills, []rollout.DrillRequest{{App: "shop", Env: "production", Actor: "user:ci"}}; len(got) != 1 || got[0] != want[0] {
		t.Fatalf("service got %+v, want %+v", got, want)
	}
	resp, _ := f.raw(t, http.MethodPost, "/v1/drills", f.deployer, `{"app":"shop"}`)
	if got, want := resp.StatusCode, http.StatusAccepted; got != want {
		t.Fatalf("status = %d, want %d", got, want)
	}
	if got, want := resp.Header.Get("Location"), "/v1/rollouts/9"; got != want {
		t.Fatalf("Location = %q, want %q", got, want)
	}
}

func TestHandler_PipelineRoles(t *testing.T) {
	f := newFixture(t)
	for _, tc := range []struct {
		method, path, body string
		viewerStatus       int
	}{
		{"POST", "/v1/releases", `{"app":"shop","version":"1.1.0"}`, http.StatusForbidden},
		{"POST", "/v1/approvals", `{"app":"shop"}`, http.StatusForbidden},
		{"POST", "/v1/drills", `{"app":"shop"}`, http.StatusForbidden},
		{"POST", "/v1/plans", `{"app":"shop","version":"1.1.0"}`, http.StatusOK},
		{"GET", "/v1/apps/shop/drift", ``, http.StatusOK},
		{"GET", "/v1/apps/shop/releases/1.1.0", ``, http.StatusOK},
	} {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			resp, _ := f.raw(t, tc.method, tc.path, f.viewer, tc.body)
			if got, want := resp.StatusCode, tc.viewerStatus; got != want {
				t.Fatalf("viewer: status = %d, want %d", got, want)
			}
			resp, _ = f.raw(t, tc.method, tc.path, "", tc.body)
			if got, want := resp.StatusCode, http.StatusUnauthorized; got != want {
				t.Fatalf("no token: status = %d, want %d", got, want)
			}
		})
	}
	if n := len(f.svc.releases) + len(f.svc.approvals) + len(f.svc.drills); n != 0 {
		t.Fatalf("service was called %d times for a viewer", n)
	}
}

func TestClient_GateError(t *testing.T) {
	f := newFixture(t)
	f.svc.setErr(fmt.Errorf("deploy shop 1.1.0: %w", &rollout.GateError{Gate: "checks", Message: "e2e failed"}))
	_, err := f.client(f.deployer).Deploy(t.Context(), rollout.DeployRequest{App: "shop", Version: "1.1.0"})
	apiErr := asAPIError(t, err)
	if got, want := apiErr.Message, "checks gate: e2e failed"; got != want {
		t.Fatalf("message = %q, want %q", got, want)
	}
	// The client's error reads as the engine's: one mention of the gate,
	// a *rollout.GateError inside, a conflict.
	if got, want := err.Error(), "checks gate: e2e failed"; got != want {
		t.Fatalf("error = %q, want %q", got, want)
	}
	var ge *rollout.GateError
	if !errors.As(err, &ge) {
		t.Fatalf("%v does not unwrap to a *rollout.GateError", err)
	}
	if got, want := *ge, (rollout.GateError{Gate: "checks", Message: "e2e failed"}); got != want {
		t.Fatalf("gate error = %+v, want %+v", got, want)
	}
	if !errors.Is(err, rollout.ErrConflict) {
		t.Fatalf("%v does not match rollout.ErrConflict", err)
	}
	var fe *rollout.FieldError
	if errors.As(err, &fe) {
		t.Fatalf("a gate error unwraps to a field error: %+v", fe)
	}
}

func mustRequest(t *testing.T, method, url, token string) *http.Request {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	return req
}
