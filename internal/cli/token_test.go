package cli

// Tests of `shipgate token` against the real token routes: the real
// handler on the real SQLite store, with the scripted rollout service.

import (
	"strings"
	"testing"
	"time"

	"github.com/shipgate/shipgate/internal/api/apitest"
	"github.com/shipgate/shipgate/internal/audit"
	"github.com/shipgate/shipgate/internal/auth"
)

// startTokenCLI returns an env whose token is the admin token "admin" of
// a server on a real store.
func startTokenCLI(t *testing.T) (*env, *apitest.Server) {
	t.Helper()
	svc := newScriptedService()
	srv := apitest.Start(t, apitest.Options{Service: svc, App: "shop"})
	admin := srv.Token(t, "admin", auth.RoleAdmin)
	return &env{svc: svc, url: srv.URL, token: admin, data: t.TempDir(), getenv: map[string]string{}}, srv
}

// secretOf returns the secret that token create printed on a line of its own.
func secretOf(t *testing.T, stdout string) string {
	t.Helper()
	for _, line := range strings.Split(stdout, "\n") {
		if strings.HasPrefix(line, "sgt_") {
			return line
		}
	}
	t.Fatalf("no secret in the output:\n%s", stdout)
	return ""
}

func TestTokenCommand_Lifecycle(t *testing.T) {
	e, srv := startTokenCLI(t)

	r := e.run(t, "token", "create", "ci", "--role", "deployer")
	r.wantCode(t, ExitOK)
	if want := "token ci made with the role deployer"; !strings.Contains(r.stdout, want) {
		t.Fatalf("stdout does not say %q:\n%s", want, r.stdout)
	}
	if want := "Store it now"; !strings.Contains(r.stdout, want) {
		t.Fatalf("stdout does not tell to store the secret:\n%s", r.stdout)
	}
	ci := secretOf(t, r.stdout)

	r = e.run(t, "token", "create", "dash", "--role", "viewer", "-o", "json")
	r.wantCode(t, ExitOK)
	var nt struct{ Name, Role, Secret string }
	decodeOne(t, r.stdout, &nt)
	if nt.Name != "dash" || nt.Role != "viewer" || !strings.HasPrefix(nt.Secret, "sgt_") {
		t.Fatalf("token create -o json = %+v", nt)
	}
	dash := nt.Secret

	// The deployer deploys and may not manage tokens; the viewer may not deploy.
	e.run(t, "--token", ci, "deploy", "shop", "1.1.0").wantCode(t, ExitOK)
	r = e.run(t, "--token", ci, "token", "list")
	r.wantCode(t, ExitFailure)
	if want := "needs the admin role"; !strings.Contains(r.stderr, want) {
		t.Fatalf("stderr does not say %q:\n%s", want, r.stderr)
	}
	e.run(t, "--token", dash, "deploy", "shop", "1.1.0").wantCode(t, ExitFailure)
	if got, want := len(e.svc.deploys), 1; got != want {
		t.Fatalf("deploys = %d, want %d", got, want)
	}

	r = e.run(t, "token", "list")
	r.wantCode(t, ExitOK)
	for _, want := range []string{"NAME", "admin", "ci", "deployer", "dash", "viewer"} {
		if !strings.Contains(r.stdout, want) {
			t.Fatalf("token list does not show %q:\n%s", want, r.stdout)
		}
	}
	r = e.run(t, "token", "list", "-o", "json")
	r.wantCode(t, ExitOK)
	var list []struct {
		Name      string    `json:"name"`
		Role      string    `json:"role"`
		CreatedAt time.Time `json:"created_at"`
	}
	decodeOne(t, r.stdout, &list)
	if len(list) != 3 || list[1].Name != "ci" || list[1].Role != "deployer" || list[1].CreatedAt.IsZero() {
		t.Fatalf("token list -o json = %+v", list)
	}
	for _, secret := range []string{ci, dash, e.token} {
		if strings.Contains(r.stdout, secret) {
			t.Fatalf("token list shows a secret:\n%s", r.stdout)
		}
	}

	r = e.run(t, "token", "revoke", "ci")
	r.wantCode(t, ExitOK)
	if got, want := r.stdout, "token ci revoked\n"; got != want {
		t.Fatalf("stdout = %q, want %q", got, want)
	}
	r = e.run(t, "--token", ci, "status")
	r.wantCode(t, ExitFailure)
	if want := "unknown token"; !strings.Contains(r.stderr, want) {
		t.Fatalf("stderr does not say %q:\n%s", want, r.stderr)
	}

	events, err := srv.Store.ListAudit(t.Context(), audit.Filter{Subject: "token/"})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, ev := range events {
		got = append(got, ev.Actor+" "+ev.Action+" "+ev.Subject+" "+ev.Data["role"])
	}
	want := "user:admin token.revoke token/ci deployer, user:admin token.create token/dash viewer, user:admin token.create token/ci deployer"
	if strings.Join(got, ", ") != want {
		t.Fatalf("audit events:\n got %s\nwant %s", strings.Join(got, ", "), want)
	}
}

func TestTokenCommand_Errors(t *testing.T) {
	e, _ := startTokenCLI(t)
	for _, tc := range []struct {
		name     string
		args     []string
		wantCode int
		want     string
	}{
		{"no role", []string{"token", "create", "ci"}, ExitInvalid, "--role is required"},
		{"unknown role", []string{"token", "create", "ci", "--role", "root"}, ExitInvalid, `role: must be viewer, deployer or admin, not "root"`},
		{"flag-client role", []string{"token", "create", "shop", "--role", "flag-client"}, ExitInvalid, "shipgate flags keys create"},
		{"bad name", []string{"token", "create", "../ci", "--role", "viewer"}, ExitInvalid, "name: must start with a letter or digit"},
		{"no name", []string{"token", "create", "--role", "viewer"}, ExitInvalid, "wrong number of arguments"},
		{"existing name", []string{"token", "create", "admin", "--role", "viewer"}, ExitFailure, "a token with this name exists"},
		{"revoke itself", []string{"token", "revoke", "admin"}, ExitFailure, "the admin token cannot revoke itself"},
		{"revoke unknown", []string{"token", "revoke", "nobody"}, ExitFailure, `no token is named "nobody"`},
		{"unknown subcommand", []string{"token", "delete", "ci"}, ExitInvalid, `unknown command "delete" for 'shipgate token'`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := e.run(t, tc.args...)
			r.wantCode(t, tc.wantCode)
			if !strings.Contains(r.stderr, tc.want) {
				t.Fatalf("stderr does not say %q:\n%s", tc.want, r.stderr)
			}
		})
	}
	// Nothing was made, and the admin token still works.
	r := e.run(t, "token", "list", "-o", "json")
	r.wantCode(t, ExitOK)
	if strings.Count(r.stdout, `"name"`) != 1 {
		t.Fatalf("tokens after refused commands:\n%s", r.stdout)
	}
}
