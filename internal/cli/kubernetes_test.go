package cli

import (
	"context"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/shipgate/shipgate/internal/api"
	"github.com/shipgate/shipgate/internal/auth"
	"github.com/shipgate/shipgate/internal/rollout"
)

// fakeLeaver answers shipgate kubernetes leave as the server would: a
// report, or for env "busy" the conflict of a rollout in progress.
type fakeLeaver struct{ got []rollout.LeaveRequest }

func (f *fakeLeaver) Leave(_ context.Context, req rollout.LeaveRequest) (rollout.LeaveReport, error) {
	f.got = append(f.got, req)
	if req.Env == "busy" {
		return rollout.LeaveReport{}, fmt.Errorf("rollout 7 of deploy v2 in shop/busy is still at step 2/5: wait for it or roll it back, then leave: %w", rollout.ErrConflict)
	}
	return rollout.LeaveReport{App: req.App, Env: req.Env, Live: "v2", Route: "shop/shop", RemovedRules: []string{"shipgate-production-main"},
		LostTraffic:     []string{"requests to / (rule shipgate-production-main, now to shop-v2=100): no rule of yours matches them"},
		DeletedReleases: []string{"v0"}, KeptReleases: []string{"v2: live"}}, nil
}

func TestCLI_KubernetesLeave(t *testing.T) {
	secret, err := auth.NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	l := &fakeLeaver{}
	srv := httptest.NewServer(api.NewHandler(newScriptedService(), tokenMap{auth.Hash(secret): {Name: "root", Role: auth.RoleAdmin}}, api.HandlerOptions{App: "shop", Kubernetes: l}))
	t.Cleanup(srv.Close)
	e := &env{svc: newScriptedService(), url: srv.URL, token: secret, data: t.TempDir(), getenv: map[string]string{}}

	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no env", []string{"kubernetes", "leave", "--reason", "x"}, "--env is required"},
		{"no reason", []string{"kubernetes", "leave", "--env", "production"}, "--reason is required"},
	} {
		r := e.run(t, tc.args...)
		r.wantCode(t, ExitInvalid)
		if !strings.Contains(r.stderr, tc.want) {
			t.Errorf("%s: stderr %q, want %q", tc.name, r.stderr, tc.want)
		}
	}
	if len(l.got) != 0 {
		t.Fatalf("invalid commands reached the server: %+v", l.got)
	}

	r := e.run(t, "kubernetes", "leave", "--env", "production", "--reason", "moving on", "--force", "--delete-releases")
	r.wantCode(t, ExitOK)
	for _, want := range []string{
		"Shipgate left shop production: took its rules out of HTTPRoute shop/shop (shipgate-production-main); yours are unchanged",
		"warning: forced: requests to / (rule shipgate-production-main, now to shop-v2=100): no rule of yours matches them",
		"live release: v2 (its Deployment and Service keep running)",
		"deleted release v0",
		"kept release v2: live",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("stdout does not contain %q:\n%s", want, r.stdout)
		}
	}
	if want := (rollout.LeaveRequest{App: "shop", Env: "production", Reason: "moving on", Force: true, DeleteReleases: true, Actor: "user:root"}); len(l.got) != 1 || l.got[0] != want {
		t.Errorf("the server got %+v, want %+v", l.got, want)
	}

	r = e.run(t, "kubernetes", "leave", "shop", "--env", "production", "--reason", "moving on", "-o", "json")
	r.wantCode(t, ExitOK)
	var rep rollout.LeaveReport
	decodeOne(t, r.stdout, &rep)
	if rep.Live != "v2" || rep.Route != "shop/shop" {
		t.Errorf("-o json: %+v", rep)
	}

	r = e.run(t, "kubernetes", "leave", "--env", "busy", "--reason", "moving on")
	r.wantCode(t, ExitFailure)
	if !strings.Contains(r.stderr, "rollout 7 of deploy v2 in shop/busy") {
		t.Errorf("leave mid-rollout: stderr %q, want the rollout named", r.stderr)
	}
}
