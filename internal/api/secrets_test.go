package api_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/shipgate/shipgate/internal/api"
	"github.com/shipgate/shipgate/internal/auth"
	"github.com/shipgate/shipgate/internal/rollout"
)

// secretService answers a release with a secret variable.
type secretService struct{ *recordingService }

func (s secretService) GetRelease(_ context.Context, app, version string) (rollout.Release, error) {
	return rollout.Release{App: app, Version: version, Vars: map[string]string{"DB_PASSWORD": "hunter2", "FAIL_RATE": "0.5"}}, nil
}

// TestHandler_ReleaseVarsAreSecrets is defect 12 of issue 10: a viewer
// token read release variable values. Only admin tokens read them; every
// other role sees the names with each value redacted.
func TestHandler_ReleaseVarsAreSecrets(t *testing.T) {
	secrets := map[auth.Role]string{}
	tokens := tokenMap{}
	for _, role := range []auth.Role{auth.RoleViewer, auth.RoleDeployer, auth.RoleAdmin} {
		secrets[role] = newSecret(t)
		tokens[auth.Hash(secrets[role])] = auth.Token{Name: string(role), Role: role}
	}
	svc := &recordingService{}
	srv := httptest.NewServer(api.NewHandler(secretService{svc}, tokens, api.HandlerOptions{App: "shop"}))
	t.Cleanup(srv.Close)

	for role, secret := range secrets {
		c := api.NewClient(srv.URL, secret, srv.Client())
		rel, err := c.GetRelease(t.Context(), "shop", "1.1.0")
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]string{"DB_PASSWORD": "hunter2", "FAIL_RATE": "0.5"}
		if role != auth.RoleAdmin {
			want = map[string]string{"DB_PASSWORD": api.RedactedValue, "FAIL_RATE": api.RedactedValue}
		}
		if len(rel.Vars) != len(want) || rel.Vars["DB_PASSWORD"] != want["DB_PASSWORD"] || rel.Vars["FAIL_RATE"] != want["FAIL_RATE"] {
			t.Errorf("%s reads vars %v, want %v", role, rel.Vars, want)
		}
		// The answer to the one who created the release is redacted too.
		if role == auth.RoleViewer {
			continue
		}
		rel, err = c.CreateRelease(t.Context(), rollout.ReleaseRequest{App: "shop", Version: "2.0.0", Vars: map[string]string{"API_KEY": "sk_live_1"}})
		if err != nil {
			t.Fatal(err)
		}
		if got, wantKey := rel.Vars["API_KEY"], map[bool]string{true: "sk_live_1", false: api.RedactedValue}[role == auth.RoleAdmin]; got != wantKey {
			t.Errorf("%s creating a release reads API_KEY=%q, want %q", role, got, wantKey)
		}
	}
}

// TestHandler_RefusesBadVariableNames checks that the names the config
// refuses, and the loader's, are refused on deploy, plan and release
// create, naming the variable.
func TestHandler_RefusesBadVariableNames(t *testing.T) {
	f := newFixture(t)
	for _, name := range []string{"VERSION", "PORT", "APP", "ENV", "LD_PRELOAD", "DYLD_INSERT_LIBRARIES", "../x", "1X", ""} {
		for _, path := range []string{"/v1/deploys", "/v1/plans", "/v1/releases"} {
			body := `{"app":"shop","version":"1.1.0","vars":{"` + name + `":"x"}}`
			resp, ae := f.raw(t, http.MethodPost, path, f.deployer, body)
			if resp.StatusCode != http.StatusBadRequest || ae == nil || ae.Field != "vars."+name {
				t.Errorf("POST %s with var %q: %d %+v, want 400 naming vars.%s", path, name, resp.StatusCode, ae, name)
			}
		}
	}
	if n := len(f.svc.deploys) + len(f.svc.plans) + len(f.svc.releases); n != 0 {
		t.Fatalf("the service got %d requests with bad variable names", n)
	}
	// A good name goes through.
	if resp, ae := f.raw(t, http.MethodPost, "/v1/deploys", f.deployer, `{"app":"shop","version":"1.1.0","vars":{"FAIL_RATE":"0.5"}}`); resp.StatusCode != http.StatusAccepted {
		t.Fatalf("deploy with FAIL_RATE: %d %+v", resp.StatusCode, ae)
	}
}

// specService answers rollouts whose frozen plan holds a literal run.env
// value and a reference to a variable.
type specService struct{ *recordingService }

func specRollout() rollout.Rollout {
	return rollout.Rollout{ID: 7, App: "shop", Env: "production", Version: "1.1.0",
		Spec: &rollout.Spec{Name: "production", Run: rollout.RunSpec{Env: map[string]string{"SMTP_PASSWORD": "s3cret", "DB_URL": "${DB_URL}"}}}}
}

func (specService) GetRollout(context.Context, int64) (rollout.Rollout, error) {
	return specRollout(), nil
}

func (specService) History(context.Context, string, string, int) ([]rollout.Rollout, error) {
	return []rollout.Rollout{specRollout()}, nil
}

func (specService) Status(context.Context, string) (rollout.AppStatus, error) {
	ro := specRollout()
	return rollout.AppStatus{App: "shop", Envs: []rollout.EnvStatus{{Env: "production", Active: &ro}}}, nil
}

// TestHandler_FrozenRunEnvIsASecret: the config's literal run.env values,
// frozen into each rollout's spec, are read by admins only; references to
// variables show no value and stay.
func TestHandler_FrozenRunEnvIsASecret(t *testing.T) {
	tokens := tokenMap{}
	secrets := map[auth.Role]string{}
	for _, role := range []auth.Role{auth.RoleViewer, auth.RoleAdmin} {
		secrets[role] = newSecret(t)
		tokens[auth.Hash(secrets[role])] = auth.Token{Name: string(role), Role: role}
	}
	srv := httptest.NewServer(api.NewHandler(specService{&recordingService{}}, tokens, api.HandlerOptions{App: "shop"}))
	t.Cleanup(srv.Close)
	for role, secret := range secrets {
		c := api.NewClient(srv.URL, secret, srv.Client())
		want := map[bool]string{true: "s3cret", false: api.RedactedValue}[role == auth.RoleAdmin]
		ro, err := c.GetRollout(t.Context(), 7)
		if err != nil {
			t.Fatal(err)
		}
		hist, err := c.History(t.Context(), "shop", "", 10)
		if err != nil || len(hist) != 1 {
			t.Fatalf("history: %v %v", hist, err)
		}
		st, err := c.Status(t.Context(), "shop")
		if err != nil || len(st.Envs) != 1 || st.Envs[0].Active == nil {
			t.Fatalf("status: %+v %v", st, err)
		}
		for where, r := range map[string]rollout.Rollout{"rollout": ro, "history": hist[0], "status": *st.Envs[0].Active} {
			env := r.Spec.Run.Env
			if env["SMTP_PASSWORD"] != want || env["DB_URL"] != "${DB_URL}" {
				t.Errorf("%s reads the %s's run.env %v, want SMTP_PASSWORD=%q and the reference kept", role, where, env, want)
			}
		}
	}
}
