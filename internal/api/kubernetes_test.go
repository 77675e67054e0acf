package api_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/shipgate/shipgate/internal/api"
	"github.com/shipgate/shipgate/internal/api/apitest"
	"github.com/shipgate/shipgate/internal/auth"
	"github.com/shipgate/shipgate/internal/rollout"
)

// leaver records the leave requests it gets; a request for env "busy"
// conflicts, as one with a rollout in progress does.
type leaver struct {
	mu   sync.Mutex
	reqs []rollout.LeaveRequest
}

func (l *leaver) Leave(_ context.Context, req rollout.LeaveRequest) (rollout.LeaveReport, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.reqs = append(l.reqs, req)
	if req.Env == "busy" {
		return rollout.LeaveReport{}, fmt.Errorf("rollout 7 of deploy v2 in shop/busy is still at step 2/5 (weight 25%%): %w", rollout.ErrConflict)
	}
	return rollout.LeaveReport{App: req.App, Env: req.Env, Live: "v2", Route: "shop/shop", RemovedRules: []string{"shipgate-production-main"}}, nil
}

// TestKubernetesAPI_Leave: POST /v1/kubernetes/leaves is for admin
// tokens only, needs the environment and a reason (400 naming the
// field), passes the token's name as the actor, answers the report, and
// a conflict (a rollout in progress) is 409 with its message.
func TestKubernetesAPI_Leave(t *testing.T) {
	l := &leaver{}
	srv := apitest.Start(t, apitest.Options{Service: &recordingService{}, App: "shop", Kubernetes: l})
	ctx := t.Context()
	req := rollout.LeaveRequest{App: "shop", Env: "production", Reason: "moving on", Force: true, DeleteReleases: true}
	for _, role := range []auth.Role{auth.RoleViewer, auth.RoleDeployer} {
		_, err := srv.Client(srv.Token(t, "t-"+string(role), role)).LeaveKubernetes(ctx, req)
		if got := statusOf(t, err); got != http.StatusForbidden {
			t.Errorf("leave with a %s token: %d, want 403", role, got)
		}
	}
	admin := srv.Client(srv.Token(t, "root", auth.RoleAdmin))
	for field, bad := range map[string]rollout.LeaveRequest{
		"env":    {App: "shop", Reason: "x"},
		"reason": {App: "shop", Env: "production", Reason: " "},
		"app":    {Env: "production", Reason: "x"},
	} {
		_, err := admin.LeaveKubernetes(ctx, bad)
		if e := asAPIError(t, err); e.Status != http.StatusBadRequest || e.Field != field {
			t.Errorf("leave without %s: %+v, want 400 naming %s", field, e, field)
		}
	}
	l.mu.Lock()
	n := len(l.reqs)
	l.mu.Unlock()
	if n != 0 {
		t.Fatalf("refused requests reached the service: %d", n)
	}
	rep, err := admin.LeaveKubernetes(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Live != "v2" || rep.Route != "shop/shop" || len(rep.RemovedRules) != 1 {
		t.Errorf("report %+v", rep)
	}
	want := req
	want.Actor = "user:root"
	l.mu.Lock()
	got := l.reqs
	l.mu.Unlock()
	if len(got) != 1 || got[0] != want {
		t.Errorf("the service got %+v, want %+v", got, want)
	}
	busy := req
	busy.Env = "busy"
	_, err = admin.LeaveKubernetes(ctx, busy)
	if e := asAPIError(t, err); e.Status != http.StatusConflict || !strings.Contains(e.Message, "rollout 7 of deploy v2") {
		t.Errorf("leave mid-rollout: %+v, want 409 with the rollout named", e)
	}
	var _ api.KubernetesService = l
}
