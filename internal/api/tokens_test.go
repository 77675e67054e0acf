package api_test

// Tests of the token routes: the real handler on the real SQLite store,
// over real HTTP, with the recordingService behind the rollout routes.

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"github.com/shipgate/shipgate/internal/api"
	"github.com/shipgate/shipgate/internal/api/apitest"
	"github.com/shipgate/shipgate/internal/audit"
	"github.com/shipgate/shipgate/internal/auth"
	"github.com/shipgate/shipgate/internal/rollout"
)

// tokenEnv is an API server on a real store with the admin token the
// server makes at first start, and the log it wrote.
type tokenEnv struct {
	srv   *apitest.Server
	svc   *recordingService
	admin *api.Client
	// adminSecret is the secret of the admin token named "admin".
	adminSecret string
	log         *syncBuffer
}

func startTokenAPI(t *testing.T) *tokenEnv {
	t.Helper()
	e := &tokenEnv{svc: &recordingService{}, log: &syncBuffer{}}
	logger := slog.New(slog.NewTextHandler(e.log, &slog.HandlerOptions{Level: slog.LevelDebug}))
	e.srv = apitest.Start(t, apitest.Options{Service: e.svc, Logger: logger, App: "shop", Flags: true})
	e.adminSecret = e.srv.Token(t, "admin", auth.RoleAdmin)
	e.admin = e.srv.Client(e.adminSecret)
	return e
}

// create makes a token with the admin token and returns its secret.
func (e *tokenEnv) create(t *testing.T, name string, role auth.Role) string {
	t.Helper()
	nt, err := e.admin.CreateToken(t.Context(), api.TokenRequest{Name: name, Role: role})
	if err != nil {
		t.Fatalf("create token %s: %v", name, err)
	}
	if nt.Name != name || nt.Role != role || !strings.HasPrefix(nt.Secret, "sgt_") {
		t.Fatalf("created token = %+v, want %s with role %s and an sgt_ secret", nt, name, role)
	}
	return nt.Secret
}

// send sends a request with the token secret and returns the answer and
// its body.
func (e *tokenEnv) send(t *testing.T, method, path, secret, body string) (*http.Response, string) {
	t.Helper()
	resp, data := send(t, method, e.srv.URL+path, secret, body)
	return resp, string(data)
}

func statusOf(t *testing.T, err error) int {
	t.Helper()
	if err == nil {
		return http.StatusOK
	}
	return asAPIError(t, err).Status
}

func TestTokensAPI_Roles(t *testing.T) {
	e := startTokenAPI(t)
	ctx := t.Context()
	deployer := e.srv.Client(e.create(t, "ci", auth.RoleDeployer))
	viewer := e.srv.Client(e.create(t, "dash", auth.RoleViewer))
	deploy := rollout.DeployRequest{App: "shop", Version: "1.2.0"}

	// The deployer deploys, as itself...
	if _, err := deployer.Deploy(ctx, deploy); err != nil {
		t.Fatalf("deployer deploy: %v", err)
	}
	if got, want := e.svc.deploys[0].Actor, "user:ci"; got != want {
		t.Fatalf("deploy actor = %q, want %q", got, want)
	}
	if _, err := deployer.Rollback(ctx, rollout.RollbackRequest{App: "shop", Reason: "test"}); err != nil {
		t.Fatalf("deployer rollback: %v", err)
	}
	// ...but manages no token.
	_, listErr := deployer.ListTokens(ctx)
	_, createErr := deployer.CreateToken(ctx, api.TokenRequest{Name: "x", Role: auth.RoleAdmin})
	revokeErr := deployer.RevokeToken(ctx, "dash")
	for name, err := range map[string]error{"list": listErr, "create": createErr, "revoke": revokeErr} {
		if got, want := statusOf(t, err), http.StatusForbidden; got != want {
			t.Errorf("deployer %s tokens: status %d, want %d", name, got, want)
		}
	}

	// The viewer reads, and may not deploy.
	if _, err := viewer.Status(ctx, "shop"); err != nil {
		t.Fatalf("viewer status: %v", err)
	}
	_, err := viewer.Deploy(ctx, deploy)
	if got, want := statusOf(t, err), http.StatusForbidden; got != want {
		t.Fatalf("viewer deploy: status %d, want %d", got, want)
	}
	if got, want := len(e.svc.deploys), 1; got != want {
		t.Fatalf("deploys = %d, want %d: a refused deploy reached the service", got, want)
	}

	// A revoked token stops working at once.
	if err := e.admin.RevokeToken(ctx, "ci"); err != nil {
		t.Fatalf("revoke: %v", err)
	}
	_, err = deployer.Deploy(ctx, deploy)
	if got, want := statusOf(t, err), http.StatusUnauthorized; got != want {
		t.Fatalf("revoked token deploy: status %d, want %d", got, want)
	}
	_, err = deployer.Status(ctx, "shop")
	if got, want := statusOf(t, err), http.StatusUnauthorized; got != want {
		t.Fatalf("revoked token status: status %d, want %d", got, want)
	}
	if got, want := statusOf(t, e.admin.RevokeToken(ctx, "ci")), http.StatusNotFound; got != want {
		t.Fatalf("second revoke: status %d, want %d", got, want)
	}
	list, err := e.admin.ListTokens(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := tokenNames(list), "admin:admin dash:viewer"; got != want {
		t.Fatalf("tokens = %s, want %s", got, want)
	}
}

func tokenNames(list []auth.Token) string {
	var names []string
	for _, tok := range list {
		names = append(names, tok.Name+":"+string(tok.Role))
	}
	return strings.Join(names, " ")
}

// TestTokensAPI_SecretShownOnce: the secret is in the create answer, and
// neither it nor its hash is in the list, the log or the audit log.
func TestTokensAPI_SecretShownOnce(t *testing.T) {
	e := startTokenAPI(t)
	resp, body := e.send(t, http.MethodPost, "/v1/tokens", e.adminSecret, `{"name":"ci","role":"deployer"}`)
	if got, want := resp.StatusCode, http.StatusCreated; got != want {
		t.Fatalf("create: status %d, want %d: %s", got, want, body)
	}
	if got, want := resp.Header.Get("Cache-Control"), "no-store"; got != want {
		t.Fatalf("create: Cache-Control %q, want %q", got, want)
	}
	var nt api.NewToken
	if err := json.Unmarshal([]byte(body), &nt); err != nil || !strings.HasPrefix(nt.Secret, "sgt_") {
		t.Fatalf("create answer %s: %v, want a secret", body, err)
	}
	// Use it, so that the log has lines about it.
	if _, err := e.srv.Client(nt.Secret).Deploy(t.Context(), rollout.DeployRequest{App: "shop", Version: "1.0.0"}); err != nil {
		t.Fatal(err)
	}

	resp, list := e.send(t, http.MethodGet, "/v1/tokens", e.adminSecret, "")
	if got, want := resp.StatusCode, http.StatusOK; got != want {
		t.Fatalf("list: status %d, want %d", got, want)
	}
	var tokens []map[string]any
	if err := json.Unmarshal([]byte(list), &tokens); err != nil {
		t.Fatal(err)
	}
	for _, tok := range tokens {
		for key := range tok {
			if key != "name" && key != "role" && key != "created_at" {
				t.Errorf("list answer has the field %q: %s", key, list)
			}
		}
	}
	events, err := e.srv.Store.ListAudit(t.Context(), audit.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	auditJSON, err := json.Marshal(events)
	if err != nil {
		t.Fatal(err)
	}
	logs := e.log.String()
	if !strings.Contains(logs, "user:ci") || !strings.Contains(logs, "/v1/tokens") {
		t.Fatalf("the log has no line about the token:\n%s", logs)
	}
	for _, secret := range []string{nt.Secret, e.adminSecret} {
		for where, text := range map[string]string{"list": list, "log": logs, "audit log": string(auditJSON)} {
			if strings.Contains(text, secret) {
				t.Errorf("a secret is in the %s:\n%s", where, text)
			}
			if strings.Contains(text, auth.Hash(secret)) {
				t.Errorf("a secret's hash is in the %s:\n%s", where, text)
			}
		}
	}
}

func TestTokensAPI_Audit(t *testing.T) {
	e := startTokenAPI(t)
	ctx := t.Context()
	e.create(t, "ci", auth.RoleDeployer)
	if err := e.admin.RevokeToken(ctx, "ci"); err != nil {
		t.Fatal(err)
	}
	// Refused changes are not recorded.
	e.create(t, "dash", auth.RoleViewer)
	if _, err := e.admin.CreateToken(ctx, api.TokenRequest{Name: "dash", Role: auth.RoleAdmin}); statusOf(t, err) != http.StatusConflict {
		t.Fatalf("create of an existing name: %v, want 409", err)
	}
	if err := e.admin.RevokeToken(ctx, "nobody"); statusOf(t, err) != http.StatusNotFound {
		t.Fatalf("revoke of an unknown token: %v, want 404", err)
	}

	events, err := e.srv.Store.ListAudit(ctx, audit.Filter{Subject: "token/"})
	if err != nil {
		t.Fatal(err)
	}
	want := []struct{ action, subject, role string }{
		{api.ActionTokenCreate, "token/dash", "viewer"},
		{api.ActionTokenRevoke, "token/ci", "deployer"},
		{api.ActionTokenCreate, "token/ci", "deployer"},
	}
	if got := len(events); got != len(want) {
		t.Fatalf("audit events = %+v, want %d", events, len(want))
	}
	for i, w := range want {
		ev := events[i]
		if ev.Actor != "user:admin" || ev.Action != w.action || ev.Subject != w.subject || ev.Data["role"] != w.role {
			t.Errorf("event %d = %+v, want actor user:admin, %s of %s with role %s", i, ev, w.action, w.subject, w.role)
		}
	}
	chain, err := e.srv.Store.AuditChain(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := audit.Verify(chain); err != nil {
		t.Fatalf("audit chain: %v", err)
	}
}

func TestTokensAPI_InvalidRequest(t *testing.T) {
	e := startTokenAPI(t)
	for _, tc := range []struct {
		name, body, field, message string
	}{
		{"no name", `{"role":"viewer"}`, "name", "is required"},
		{"bad name", `{"name":"../ci","role":"viewer"}`, "name", "must start with a letter or digit"},
		{"long name", `{"name":"` + strings.Repeat("a", 65) + `","role":"viewer"}`, "name", "at most 64"},
		{"no role", `{"name":"ci"}`, "role", "is required: viewer, deployer or admin"},
		{"unknown role", `{"name":"ci","role":"root"}`, "role", `not "root"`},
		{"flag-client role", `{"name":"shop","role":"flag-client"}`, "role", "shipgate flags keys create"},
		{"role not a string", `{"name":"ci","role":3}`, "role", "must be a string"},
		{"own secret", `{"name":"ci","role":"viewer","secret":"sgt_mine"}`, "secret", "is not a known field"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := e.send(t, http.MethodPost, "/v1/tokens", e.adminSecret, tc.body)
			var eb struct{ Error api.APIError }
			if err := json.Unmarshal([]byte(body), &eb); err != nil {
				t.Fatalf("error body %q: %v", body, err)
			}
			if resp.StatusCode != http.StatusBadRequest || eb.Error.Field != tc.field || !strings.Contains(eb.Error.Message, tc.message) {
				t.Fatalf("got %d %+v, want 400 naming %s with %q", resp.StatusCode, eb.Error, tc.field, tc.message)
			}
		})
	}
	list, err := e.admin.ListTokens(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if got, want := tokenNames(list), "admin:admin"; got != want {
		t.Fatalf("tokens after invalid requests = %s, want %s", got, want)
	}
}

// TestTokensAPI_RevokeSelf: no token revokes itself; the admin token is
// told how to replace it. Another admin token may revoke it.
func TestTokensAPI_RevokeSelf(t *testing.T) {
	e := startTokenAPI(t)
	ctx := t.Context()
	ae := asAPIError(t, e.admin.RevokeToken(ctx, "admin"))
	if ae.Status != http.StatusConflict || ae.Code != "conflict" ||
		!strings.Contains(ae.Message, "cannot revoke itself") || !strings.Contains(ae.Message, "data dir") {
		t.Fatalf("admin revokes itself: %d %s %q, want 409 conflict saying how to replace it", ae.Status, ae.Code, ae.Message)
	}
	if _, err := e.admin.ListTokens(ctx); err != nil {
		t.Fatalf("the admin token stopped working: %v", err)
	}

	ops := e.srv.Client(e.create(t, "ops", auth.RoleAdmin))
	if ae := asAPIError(t, ops.RevokeToken(ctx, "ops")); ae.Status != http.StatusConflict || !strings.Contains(ae.Message, "cannot revoke itself") {
		t.Fatalf("ops revokes itself: %d %q, want 409", ae.Status, ae.Message)
	}
	if err := ops.RevokeToken(ctx, "admin"); err != nil {
		t.Fatalf("ops revokes admin: %v", err)
	}
	if _, err := e.admin.ListTokens(ctx); statusOf(t, err) != http.StatusUnauthorized {
		t.Fatalf("revoked admin token: %v, want 401", err)
	}
}

// TestTokensAPI_FlagClientKeys: flag client keys are made by the flag
// routes, audited like tokens, listed and revoked with them.
func TestTokensAPI_FlagClientKeys(t *testing.T) {
	e := startTokenAPI(t)
	ctx := t.Context()
	key, err := e.admin.CreateFlagKey(ctx, "shop")
	if err != nil {
		t.Fatal(err)
	}
	list, err := e.admin.ListTokens(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := tokenNames(list), "admin:admin shop:flag-client"; got != want {
		t.Fatalf("tokens = %s, want %s", got, want)
	}
	events, err := e.srv.Store.ListAudit(ctx, audit.Filter{Subject: "token/shop", Action: api.ActionTokenCreate})
	if err != nil || len(events) != 1 || events[0].Data["role"] != "flag-client" {
		t.Fatalf("audit of the key = %+v, %v; want one token.create with role flag-client", events, err)
	}
	if err := e.admin.RevokeToken(ctx, "shop"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.srv.Store.TokenByHash(ctx, auth.Hash(key.Secret)); err == nil {
		t.Fatal("the revoked key is still stored")
	}
}
