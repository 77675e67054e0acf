package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shipgate/shipgate/internal/api"
	"github.com/shipgate/shipgate/internal/audit"
	"github.com/shipgate/shipgate/internal/auth"
	"github.com/shipgate/shipgate/internal/rollout"
)

// recordingService is a Service that records what it was asked and answers
// from canned values. These tests are about the transport (routing, auth,
// decoding, error mapping); the rollout engine has its own tests, and the
// end-to-end tests drive this API with the real engine.
type recordingService struct {
	mu         sync.Mutex
	deploys    []rollout.DeployRequest
	rollbacks  []rollout.RollbackRequest
	statusFor  []string
	history    []historyCall
	filters    []audit.Filter
	releases   []rollout.ReleaseRequest
	approvals  []rollout.ApproveRequest
	promotions []rollout.PromoteRequest
	pauses     []string
	plans      []rollout.DeployRequest
	drifts     []driftCall
	drills     []rollout.DrillRequest
	// err, when set, is returned by every method.
	err error
}

type historyCall struct {
	app, env string
	limit    int
}

var _ api.Service = (*recordingService)(nil)

func (s *recordingService) Deploy(_ context.Context, req rollout.DeployRequest) (rollout.Rollout, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return rollout.Rollout{}, s.err
	}
	s.deploys = append(s.deploys, req)
	return rollout.Rollout{ID: 7, App: req.App, Env: "production", Kind: rollout.KindDeploy, Version: req.Version, Phase: rollout.PhaseRunning, Actor: req.Actor}, nil
}

func (s *recordingService) Rollback(_ context.Context, req rollout.RollbackRequest) (rollout.Rollout, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return rollout.Rollout{}, s.err
	}
	s.rollbacks = append(s.rollbacks, req)
	return rollout.Rollout{ID: 8, App: req.App, Env: "production", Kind: rollout.KindRollback, Version: "1.0.0", Phase: rollout.PhaseRunning, Actor: req.Actor, Reason: req.Reason}, nil
}

func (s *recordingService) Status(_ context.Context, app string) (rollout.AppStatus, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return rollout.AppStatus{}, s.err
	}
	s.statusFor = append(s.statusFor, app)
	return rollout.AppStatus{App: app, Envs: []rollout.EnvStatus{{
		Env:    "production",
		Listen: "127.0.0.1:8080",
		State:  &rollout.EnvState{App: app, Env: "production", Stable: "1.0.0"},
	}}}, nil
}

func (s *recordingService) GetRollout(_ context.Context, id int64) (rollout.Rollout, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return rollout.Rollout{}, s.err
	}
	if id != 7 {
		return rollout.Rollout{}, fmt.Errorf("rollout %d: %w", id, rollout.ErrNotFound)
	}
	return rollout.Rollout{ID: 7, App: "shop", Version: "1.1.0", Phase: rollout.PhaseSucceeded}, nil
}

func (s *recordingService) History(_ context.Context, app, env string, limit int) ([]rollout.Rollout, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return nil, s.err
	}
	s.history = append(s.history, historyCall{app, env, limit})
	return []rollout.Rollout{{ID: 2, App: app, Version: "1.1.0"}, {ID: 1, App: app, Version: "1.0.0"}}, nil
}

func (s *recordingService) Audit(_ context.Context, f audit.Filter) ([]audit.Event, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return nil, s.err
	}
	s.filters = append(s.filters, f)
	return []audit.Event{{Seq: 1, Actor: "user:ci", Action: audit.ActionDeploy, Subject: "shop/production/1.1.0"}}, nil
}

func (s *recordingService) setErr(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.err = err
}

// tokenMap is a TokenStore over a map from secret hash to token.
type tokenMap map[string]auth.Token

func (m tokenMap) TokenByHash(_ context.Context, h string) (auth.Token, error) {
	if t, ok := m[h]; ok {
		return t, nil
	}
	return auth.Token{}, fmt.Errorf("token: %w", rollout.ErrNotFound)
}

// fixture is an API server over a recordingService with a deployer and a
// viewer token, and the log it wrote.
type fixture struct {
	svc      *recordingService
	srv      *httptest.Server
	deployer string // secret of the deployer token "ci"
	viewer   string // secret of the viewer token "dash"
	log      *syncBuffer
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{svc: &recordingService{}, log: &syncBuffer{}}
	f.deployer = newSecret(t)
	f.viewer = newSecret(t)
	tokens := tokenMap{
		auth.Hash(f.deployer): {Name: "ci", Role: auth.RoleDeployer},
		auth.Hash(f.viewer):   {Name: "dash", Role: auth.RoleViewer},
	}
	metrics := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "shipgate_up 1\n")
	})
	logger := slog.New(slog.NewTextHandler(f.log, &slog.HandlerOptions{Level: slog.LevelDebug}))
	f.srv = httptest.NewServer(api.NewHandler(f.svc, tokens, api.HandlerOptions{Logger: logger, Metrics: metrics, App: "shop"}))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fixture) client(token string) *api.Client {
	return api.NewClient(f.srv.URL, token, f.srv.Client())
}

// raw sends a request with a raw body and returns the status and the
// decoded error, if the body is one.
func (f *fixture) raw(t *testing.T, method, path, token, body string) (*http.Response, *api.APIError) {
	t.Helper()
	resp, data := send(t, method, f.srv.URL+path, token, body)
	var eb struct {
		Error *api.APIError `json:"error"`
	}
	if resp.StatusCode >= 400 {
		if err := json.Unmarshal(data, &eb); err != nil {
			t.Fatalf("%s %s: error body %q is not JSON: %v", method, path, data, err)
		}
	}
	return resp, eb.Error
}

// send sends a request with a raw body and, unless it is empty, the
// token, and returns the answer and its body.
func send(t *testing.T, method, url, token, body string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, data
}

func newSecret(t *testing.T) string {
	t.Helper()
	s, err := auth.NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func asAPIError(t *testing.T, err error) *api.APIError {
	t.Helper()
	var ae *api.APIError
	if !errors.As(err, &ae) {
		t.Fatalf("err = %v (%T), want *api.APIError", err, err)
	}
	return ae
}

func TestHandler_Deploy(t *testing.T) {
	f := newFixture(t)
	ro, err := f.client(f.deployer).Deploy(t.Context(), rollout.DeployRequest{
		App: "shop", Env: "production", Version: "1.1.0+build.7", Commit: "abc123", Vars: map[string]string{"COLOR": "blue"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := ro.ID, int64(7); got != want {
		t.Fatalf("rollout id = %d, want %d", got, want)
	}
	if got, want := len(f.svc.deploys), 1; got != want {
		t.Fatalf("deploys = %d, want %d", got, want)
	}
	got := f.svc.deploys[0]
	if got.App != "shop" || got.Env != "production" || got.Version != "1.1.0+build.7" || got.Commit != "abc123" || got.Vars["COLOR"] != "blue" {
		t.Fatalf("service got %+v, want the request as sent", got)
	}
	if got, want := got.Actor, "user:ci"; got != want {
		t.Fatalf("actor = %q, want %q", got, want)
	}

	resp, _ := f.raw(t, http.MethodPost, "/v1/deploys", f.deployer, `{"app":"shop","version":"1.2.0"}`)
	if got, want := resp.StatusCode, http.StatusAccepted; got != want {
		t.Fatalf("status = %d, want %d", got, want)
	}
	if got, want := resp.Header.Get("Location"), "/v1/rollouts/7"; got != want {
		t.Fatalf("Location = %q, want %q", got, want)
	}
}

func TestHandler_Rollback(t *testing.T) {
	f := newFixture(t)
	ro, err := f.client(f.deployer).Rollback(t.Context(), rollout.RollbackRequest{App: "shop", Env: "production", Reason: "checkout is slow"})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := ro.Kind, rollout.KindRollback; got != want {
		t.Fatalf("kind = %q, want %q", got, want)
	}
	if got, want := len(f.svc.rollbacks), 1; got != want {
		t.Fatalf("rollbacks = %d, want %d", got, want)
	}
	if got, want := f.svc.rollbacks[0], (rollout.RollbackRequest{App: "shop", Env: "production", Reason: "checkout is slow", Actor: "user:ci"}); got != want {
		t.Fatalf("service got %+v, want %+v", got, want)
	}
	resp, _ := f.raw(t, http.MethodPost, "/v1/rollbacks", f.deployer, `{"app":"shop","reason":"bad"}`)
	if got, want := resp.StatusCode, http.StatusAccepted; got != want {
		t.Fatalf("status = %d, want %d", got, want)
	}
}

func TestHandler_Reads(t *testing.T) {
	f := newFixture(t)
	c := f.client(f.viewer)
	ctx := t.Context()

	t.Run("status", func(t *testing.T) {
		st, err := c.Status(ctx, "shop")
		if err != nil {
			t.Fatal(err)
		}
		if got, want := st.Envs[0].State.Stable, "1.0.0"; got != want {
			t.Fatalf("stable = %q, want %q", got, want)
		}
	})
	t.Run("default app status", func(t *testing.T) {
		st, err := c.Status(ctx, "")
		if err != nil {
			t.Fatal(err)
		}
		if got, want := st.App, "shop"; got != want {
			t.Fatalf("app = %q, want %q (HandlerOptions.App)", got, want)
		}
	})
	t.Run("rollout", func(t *testing.T) {
		ro, err := c.GetRollout(ctx, 7)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := ro.Phase, rollout.PhaseSucceeded; got != want {
			t.Fatalf("phase = %q, want %q", got, want)
		}
	})
	t.Run("history", func(t *testing.T) {
		list, err := c.History(ctx, "shop", "staging", 5)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := len(list), 2; got != want {
			t.Fatalf("rollouts = %d, want %d", got, want)
		}
		if got, want := f.svc.history[len(f.svc.history)-1], (historyCall{"shop", "staging", 5}); got != want {
			t.Fatalf("service got %+v, want %+v", got, want)
		}
		if _, err := c.History(ctx, "shop", "", 0); err != nil {
			t.Fatal(err)
		}
		if got, want := f.svc.history[len(f.svc.history)-1].limit, 20; got != want {
			t.Fatalf("default limit = %d, want %d", got, want)
		}
	})
	t.Run("audit", func(t *testing.T) {
		events, err := c.Audit(ctx, audit.Filter{Subject: "shop/", Action: audit.ActionDeploy, Limit: 3})
		if err != nil {
			t.Fatal(err)
		}
		if got, want := events[0].Actor, "user:ci"; got != want {
			t.Fatalf("actor = %q, want %q", got, want)
		}
		if got, want := f.svc.filters[len(f.svc.filters)-1], (audit.Filter{Subject: "shop/", Action: audit.ActionDeploy, Limit: 3}); got != want {
			t.Fatalf("service got %+v, want %+v", got, want)
		}
	})
	t.Run("metrics", func(t *testing.T) {
		resp, _ := f.raw(t, http.MethodGet, "/metrics", f.viewer, "")
		if got, want := resp.StatusCode, http.StatusOK; got != want {
			t.Fatalf("status = %d, want %d", got, want)
		}
		resp, _ = f.raw(t, http.MethodGet, "/metrics", "", "")
		if got, want := resp.StatusCode, http.StatusUnauthorized; got != want {
			t.Fatalf("without token: status = %d, want %d", got, want)
		}
	})
	t.Run("health", func(t *testing.T) {
		// No token: load balancers and the CLI probe it anonymously.
		if err := f.client("").Health(ctx); err != nil {
			t.Fatal(err)
		}
	})
}

func TestHandler_Unauthorized(t *testing.T) {
	f := newFixture(t)
	for _, tc := range []struct {
		name, token string
	}{
		{"no token", ""},
		{"unknown token", "sgt_0000000000000000000000000000000000000000000000"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, apiErr := f.raw(t, http.MethodGet, "/v1/status", tc.token, "")
			if got, want := resp.StatusCode, http.StatusUnauthorized; got != want {
				t.Fatalf("status = %d, want %d", got, want)
			}
			if got := resp.Header.Get("WWW-Authenticate"); !strings.HasPrefix(got, "Bearer") {
				t.Fatalf("WWW-Authenticate = %q, want Bearer", got)
			}
			if got, want := apiErr.Code, "unauthorized"; got != want {
				t.Fatalf("code = %q, want %q", got, want)
			}
			_, err := f.client(tc.token).Deploy(t.Context(), rollout.DeployRequest{App: "shop", Version: "1.0.0"})
			if got, want := asAPIError(t, err).Status, http.StatusUnauthorized; got != want {
				t.Fatalf("client error status = %d, want %d", got, want)
			}
			if len(f.svc.deploys) != 0 {
				t.Fatalf("service was called without a valid token")
			}
		})
	}
}

func TestHandler_Forbidden(t *testing.T) {
	f := newFixture(t)
	_, err := f.client(f.viewer).Deploy(t.Context(), rollout.DeployRequest{App: "shop", Version: "1.0.0"})
	apiErr := asAPIError(t, err)
	if got, want := apiErr.Status, http.StatusForbidden; got != want {
		t.Fatalf("status = %d, want %d", got, want)
	}
	if got, want := apiErr.Code, "forbidden"; got != want {
		t.Fatalf("code = %q, want %q", got, want)
	}
	if !strings.Contains(apiErr.Message, "deployer") {
		t.Fatalf("message %q does not name the role needed", apiErr.Message)
	}
	if len(f.svc.deploys) != 0 {
		t.Fatalf("service was called for a viewer token")
	}
}

func TestHandler_InvalidRequest(t *testing.T) {
	f := newFixture(t)
	for _, tc := range []struct {
		name, method, path, body string
		wantStatus               int
		wantField                string
	}{
		{"unknown field", "POST", "/v1/deploys", `{"app":"shop","version":"1.0.0","verison":"x"}`, 400, "verison"},
		{"wrong type", "POST", "/v1/deploys", `{"app":"shop","version":110}`, 400, "version"},
		{"wrong type nested", "POST", "/v1/deploys", `{"app":"shop","version":"1.0.0","vars":{"N":1}}`, 400, "vars"},
		{"missing app", "POST", "/v1/deploys", `{"version":"1.0.0"}`, 400, "app"},
		{"missing version", "POST", "/v1/deploys", `{"app":"shop"}`, 400, "version"},
		{"bad version", "POST", "/v1/deploys", `{"app":"shop","version":"../etc"}`, 400, "version"},
		{"version too long", "POST", "/v1/deploys", `{"app":"shop","version":"` + strings.Repeat("1", 129) + `"}`, 400, "version"},
		{"malformed", "POST", "/v1/deploys", `{"app":`, 400, ""},
		{"empty body", "POST", "/v1/deploys", ``, 400, ""},
		{"not an object", "POST", "/v1/deploys", `[1]`, 400, ""},
		{"trailing data", "POST", "/v1/deploys", `{"app":"shop","version":"1.0.0"} {}`, 400, ""},
		{"too large", "POST", "/v1/deploys", `{"app":"shop","version":"1.0.0","commit":"` + strings.Repeat("a", 1<<20) + `"}`, 413, ""},
		{"missing reason", "POST", "/v1/rollbacks", `{"app":"shop"}`, 400, "reason"},
		{"blank reason", "POST", "/v1/rollbacks", `{"app":"shop","reason":"  "}`, 400, "reason"},
		{"rollback unknown field", "POST", "/v1/rollbacks", `{"app":"shop","reason":"x","force":true}`, 400, "force"},
		{"bad rollout id", "GET", "/v1/rollouts/abc", ``, 400, "id"},
		{"bad limit", "GET", "/v1/apps/shop/rollouts?limit=-1", ``, 400, "limit"},
		{"bad audit limit", "GET", "/v1/audit?limit=many", ``, 400, "limit"},
		{"hotfix without reason", "POST", "/v1/deploys", `{"app":"shop","version":"1.0.0","hotfix":true}`, 400, "reason"},
		{"hotfix blank reason", "POST", "/v1/deploys", `{"app":"shop","version":"1.0.0","hotfix":true,"reason":" "}`, 400, "reason"},
		{"release missing app", "POST", "/v1/releases", `{"version":"1.0.0"}`, 400, "app"},
		{"release missing version", "POST", "/v1/releases", `{"app":"shop"}`, 400, "version"},
		{"release bad version", "POST", "/v1/releases", `{"app":"shop","version":"-1"}`, 400, "version"},
		{"release bad check name", "POST", "/v1/releases", `{"app":"shop","version":"1.0.0","checks":{"unit tests":"passed"}}`, 400, "checks"},
		{"release bad check state", "POST", "/v1/releases", `{"app":"shop","version":"1.0.0","checks":{"e2e":"green"}}`, 400, "checks"},
		{"release check not a string", "POST", "/v1/releases", `{"app":"shop","version":"1.0.0","checks":{"e2e":true}}`, 400, "checks"},
		{"release bad commit time", "POST", "/v1/releases", `{"app":"shop","version":"1.0.0","commit_time":"yesterday"}`, 400, "commit_time"},
		{"release unknown field", "POST", "/v1/releases", `{"app":"shop","version":"1.0.0","sha":"abc"}`, 400, "sha"},
		{"get release bad version", "GET", "/v1/apps/shop/releases/_1.0", ``, 400, "version"},
		{"approval missing app", "POST", "/v1/approvals", `{"env":"production"}`, 400, "app"},
		{"approval unknown field", "POST", "/v1/approvals", `{"app":"shop","rollout":3}`, 400, "rollout"},
		{"plan missing version", "POST", "/v1/plans", `{"app":"shop"}`, 400, "version"},
		{"plan bad version", "POST", "/v1/plans", `{"app":"shop","version":"../x"}`, 400, "version"},
		{"plan hotfix without reason", "POST", "/v1/plans", `{"app":"shop","version":"1.0.0","hotfix":true}`, 400, "reason"},
		{"plan unknown field", "POST", "/v1/plans", `{"app":"shop","version":"1.0.0","dry_run":true}`, 400, "dry_run"},
		{"drift against itself", "GET", "/v1/apps/shop/drift?env=production&against=production", ``, 400, "against"},
		{"drill missing app", "POST", "/v1/drills", `{}`, 400, "app"},
		{"drill unknown field", "POST", "/v1/drills", `{"app":"shop","version":"1.0.0"}`, 400, "version"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, apiErr := f.raw(t, tc.method, tc.path, f.deployer, tc.body)
			if got, want := resp.StatusCode, tc.wantStatus; got != want {
				t.Fatalf("status = %d, want %d (%+v)", got, want, apiErr)
			}
			if got, want := apiErr.Code, "invalid"; got != want {
				t.Fatalf("code = %q, want %q", got, want)
			}
			if got, want := apiErr.Field, tc.wantField; got != want {
				t.Fatalf("field = %q, want %q (message %q)", got, want, apiErr.Message)
			}
			if apiErr.Message == "" {
				t.Fatalf("empty message")
			}
		})
	}
	if n := len(f.svc.deploys) + len(f.svc.rollbacks) + len(f.svc.releases) + len(f.svc.approvals) +
		len(f.svc.plans) + len(f.svc.drifts) + len(f.svc.drills); n != 0 {
		t.Fatalf("service was called %d times for invalid requests", n)
	}
}

func TestHandler_ActorFromToken(t *testing.T) {
	f := newFixture(t)
	// The body cannot name the actor: the field does not exist on the
	// wire, so trying is an unknown field and changes nothing...
	resp, apiErr := f.raw(t, http.MethodPost, "/v1/deploys", f.deployer, `{"app":"shop","version":"1.0.0","actor":"user:admin"}`)
	if got, want := resp.StatusCode, http.StatusBadRequest; got != want {
		t.Fatalf("status = %d, want %d", got, want)
	}
	if got, want := apiErr.Field, "actor"; got != want {
		t.Fatalf("field = %q, want %q", got, want)
	}
	// ...and a client that sets Actor in Go sends nothing of it.
	if _, err := f.client(f.deployer).Deploy(t.Context(), rollout.DeployRequest{App: "shop", Version: "1.0.0", Actor: "user:admin"}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.client(f.deployer).Rollback(t.Context(), rollout.RollbackRequest{App: "shop", Reason: "x", Actor: "user:admin"}); err != nil {
		t.Fatal(err)
	}
	if got, want := f.svc.deploys[0].Actor, "user:ci"; got != want {
		t.Fatalf("deploy actor = %q, want %q", got, want)
	}
	if got, want := f.svc.rollbacks[0].Actor, "user:ci"; got != want {
		t.Fatalf("rollback actor = %q, want %q", got, want)
	}
}

func TestHandler_ErrorMapping(t *testing.T) {
	f := newFixture(t)
	for _, tc := range []struct {
		name       string
		err        error
		wantStatus int
		wantCode   string
		wantField  string
	}{
		{"not found", fmt.Errorf("app %q: %w", "shop", rollout.ErrNotFound), 404, "not_found", ""},
		{"conflict", fmt.Errorf("rollout 3 of shop/production is running: %w", rollout.ErrConflict), 409, "conflict", ""},
		{"forbidden", fmt.Errorf("user:ci asked for this deploy: %w", rollout.ErrForbidden), 403, "forbidden", ""},
		{"invalid", fmt.Errorf("environment %q: %w", "qa", rollout.ErrInvalid), 400, "invalid", ""},
		{"field error", fmt.Errorf("deploy: %w", &rollout.FieldError{Field: "env", Message: "unknown environment \"qa\""}), 400, "invalid", "env"},
		{"gate", fmt.Errorf("deploy shop 1.0.0: %w", &rollout.GateError{Gate: "pipeline", Message: "1.0.0 has not succeeded in staging"}), 409, "gate", "pipeline"},
		{"internal", errors.New("open /var/lib/shipgate/db: disk I/O error"), 500, "internal", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f.svc.setErr(tc.err)
			_, err := f.client(f.deployer).Deploy(t.Context(), rollout.DeployRequest{App: "shop", Version: "1.0.0"})
			apiErr := asAPIError(t, err)
			if got, want := apiErr.Status, tc.wantStatus; got != want {
				t.Fatalf("status = %d, want %d", got, want)
			}
			if got, want := apiErr.Code, tc.wantCode; got != want {
				t.Fatalf("code = %q, want %q", got, want)
			}
			if got, want := apiErr.Field, tc.wantField; got != want {
				t.Fatalf("field = %q, want %q", got, want)
			}
		})
	}

	// The detail of an internal error is logged, never returned.
	f.svc.setErr(errors.New("open /var/lib/shipgate/db: disk I/O error"))
	_, err := f.client(f.viewer).Status(t.Context(), "shop")
	if apiErr := asAPIError(t, err); strings.Contains(apiErr.Message, "disk I/O") {
		t.Fatalf("internal detail leaked to the client: %q", apiErr.Message)
	}
	if !strings.Contains(f.log.String(), "disk I/O error") {
		t.Fatalf("internal detail not logged:\n%s", f.log)
	}

	f.svc.setErr(nil)
	_, err = f.client(f.viewer).GetRollout(t.Context(), 99)
	if got, want := asAPIError(t, err).Status, http.StatusNotFound; got != want {
		t.Fatalf("unknown rollout: status = %d, want %d", got, want)
	}
}

func TestHandler_LogsNoSecret(t *testing.T) {
	f := newFixture(t)
	bad := newSecret(t)
	ctx := t.Context()
	_, _ = f.client(f.deployer).Deploy(ctx, rollout.DeployRequest{App: "shop", Version: "1.0.0"})
	_, _ = f.client(f.deployer).Deploy(ctx, rollout.DeployRequest{App: "shop", Version: "../bad"})
	_, _ = f.client(f.viewer).Deploy(ctx, rollout.DeployRequest{App: "shop", Version: "1.0.0"})
	_, _ = f.client(bad).Status(ctx, "shop")
	f.svc.setErr(errors.New("boom"))
	_, _ = f.client(f.viewer).Status(ctx, "shop")

	logs := f.log.String()
	if !strings.Contains(logs, "user:ci") {
		t.Fatalf("request log does not name the actor:\n%s", logs)
	}
	for _, secret := range []string{f.deployer, f.viewer, bad} {
		if strings.Contains(logs, secret) {
			t.Fatalf("a token secret is in the log:\n%s", logs)
		}
		if strings.Contains(logs, auth.Hash(secret)) {
			t.Fatalf("a token hash is in the log:\n%s", logs)
		}
	}
}

func TestClient_ErrorWithoutAPIBody(t *testing.T) {
	f := newFixture(t)
	// A route the server does not have is answered by the mux in plain
	// text; the client still returns an *APIError with the status.
	resp, err := f.srv.Client().Get(f.srv.URL + "/v2/nothing")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	c := api.NewClient(f.srv.URL+"/v2", f.deployer, f.srv.Client())
	_, err = c.Status(t.Context(), "shop")
	if got, want := asAPIError(t, err).Status, http.StatusNotFound; got != want {
		t.Fatalf("status = %d, want %d", got, want)
	}
}

func TestClient_Unreachable(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	c := api.NewClient(url, "", &http.Client{Timeout: 2 * time.Second})
	err := c.Health(t.Context())
	if err == nil {
		t.Fatal("Health of a closed server = nil, want an error")
	}
	var ae *api.APIError
	if errors.As(err, &ae) {
		t.Fatalf("transport error came back as an APIError: %v", err)
	}
}
