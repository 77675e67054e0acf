package rollout_test

import (
	"context"
	"errors"
	"net/http"
	"testing"

	"github.com/shipgate/shipgate/internal/rollout"
)

// Defect 2: a first deploy that failed after going live left the
// environment "stable v1" with stopped instances, and the router sending
// users to them.
func TestEngine_FailedFirstDeployLeavesNothingLive(t *testing.T) {
	h := newHarness(t, `
post_smoke:
  - {path: /version, expect_body: "not what v1 says"}
`)
	r := h.final(h.deploy("v1", nil).ID)
	if r.Phase != rollout.PhaseRolledBack {
		t.Fatalf("phase = %s (%s), want rolled_back", r.Phase, r.Reason)
	}
	if st := h.envState(); st.Stable != "" || len(st.Instances) != 0 {
		t.Fatalf("env state = %+v, want nothing live", st)
	}
	st, err := h.eng.Status(context.Background(), "shop")
	if err != nil {
		t.Fatal(err)
	}
	if s := st.Envs[0].State; s != nil {
		t.Fatalf("status says %+v is live, want nothing", s)
	}
	if rt := h.router.Routes(); len(rt.Stable.Addrs)+len(rt.Canary.Addrs) != 0 {
		t.Fatalf("router still routes to %+v", rt)
	}
	resp, err := h.client.Get("http://" + h.router.Addr() + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode == http.StatusBadGateway {
		t.Fatalf("router answered 502: it sends users to a stopped instance")
	}
	if got := h.running(); len(got) != 0 {
		t.Fatalf("running = %v, want nothing", got)
	}
	// The next deploy is a first deploy again, not judged against a dead
	// stable release.
	next := h.deploy("v2", nil)
	if next.FromVersion != "" {
		t.Fatalf("next deploy is from %q, want from nothing", next.FromVersion)
	}
	if _, err := h.eng.Drill(context.Background(), rollout.DrillRequest{App: "shop", Env: "production"}); !errors.Is(err, rollout.ErrNotFound) && !errors.Is(err, rollout.ErrConflict) {
		t.Fatalf("drill with nothing live: %v, want refused", err)
	}
}
