package rollout_test

// shipgate kubernetes leave, on kubetest's real API server (pods are
// SIMULATED by kwok and the HTTPRoute's status is written by a stand-in
// controller: see runtimes_test.go), through the server's own factory.

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/shipgate/shipgate/internal/audit"
	"github.com/shipgate/shipgate/internal/clock/clocktest"
	"github.com/shipgate/shipgate/internal/config"
	kube "github.com/shipgate/shipgate/internal/kubernetes"
	"github.com/shipgate/shipgate/internal/rollout"
)

// TestEngine_KubernetesLeave: leaving is refused while a rollout runs
// (naming it), refused while the team's own rules would leave the
// requests to / with no backend (naming them, the route unchanged), and
// once the team has a rule of its own for / it takes Shipgate's rules and
// annotation out of the team's HTTPRoute, leaves the team's rules and
// backends exactly as they were, deletes a leftover release of
// Shipgate's but not the live one nor the adopted Deployment, is audited
// with who and why, and sticks: a restarted engine does not put the rules
// back.
func TestEngine_KubernetesLeave(t *testing.T) {
	clk := clocktest.New(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
	k := newKubeKind(t, clk).(*kubeKind)
	ctx := t.Context()
	createTeamRoute(ctx, t, k)
	cfg := kubeConfigOf(t, k, strategyCases[0].yaml, func(env string) string { return env })
	r := newRig(t, k, clk, cfg)
	leave := func(force, del bool) (rollout.LeaveReport, error) {
		return r.eng.Leave(ctx, rollout.LeaveRequest{App: "shop", Env: "production", Reason: "moving to another tool", Force: force, DeleteReleases: del, Actor: "user:root"})
	}
	route := func() *gwv1.HTTPRoute {
		t.Helper()
		rt, err := k.c.Gateway.GatewayV1().HTTPRoutes(k.ns).Get(ctx, "shop", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return rt
	}

	if ro := r.deploy("v1", nil); ro.Phase != rollout.PhaseSucceeded {
		t.Fatalf("v1: %s (%s)", ro.Phase, ro.Reason)
	}
	ro, err := r.eng.Deploy(ctx, rollout.DeployRequest{App: "shop", Env: "production", Version: "v2", Actor: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	r.until("v2 at its first weight", func() bool { ro := r.get(ro.ID); return ro.Weight > 0 || ro.Phase.Final() })
	_, err = leave(false, false)
	if !errors.Is(err, rollout.ErrConflict) || !strings.Contains(err.Error(), "rollout 2 of deploy v2") {
		t.Fatalf("leave while v2 rolls out: %v, want a conflict naming rollout 2 of v2", err)
	}
	if ro := r.final(ro.ID); ro.Phase != rollout.PhaseSucceeded {
		t.Fatalf("v2: %s (%s)", ro.Phase, ro.Reason)
	}

	// The team's rules serve /admin only: leaving would leave / with no
	// backend. Refused, naming it; nothing changed.
	before := route()
	_, err = leave(false, false)
	if !errors.Is(err, rollout.ErrConflict) || !strings.Contains(err.Error(), "requests to / (rule shipgate-production-main, now to shop-v2=100): no rule of yours matches them") {
		t.Fatalf("leave with no rule of the team's for /: %v, want a refusal naming the requests to /", err)
	}
	if after := route(); after.ResourceVersion != before.ResourceVersion {
		t.Fatalf("the refused leave changed the route: %s", describeRules(after.Spec.Rules))
	}

	// The team points a rule of its own at the live release, and a
	// release of Shipgate's was left behind (a server killed before its
	// scale-down, say).
	team := route()
	prefix, root := gwv1.PathMatchPathPrefix, "/"
	port := gwv1.PortNumber(8080)
	team.Spec.Rules = append(team.Spec.Rules, gwv1.HTTPRouteRule{
		Matches:     []gwv1.HTTPRouteMatch{{Path: &gwv1.HTTPPathMatch{Type: &prefix, Value: &root}}},
		BackendRefs: []gwv1.HTTPBackendRef{{BackendRef: gwv1.BackendRef{BackendObjectReference: gwv1.BackendObjectReference{Name: gwv1.ObjectName(kube.ObjectName("shop", "v2")), Port: &port}}}},
	})
	team, err = k.c.Gateway.GatewayV1().HTTPRoutes(k.ns).Update(ctx, team, metav1.UpdateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var teamRules []gwv1.HTTPRouteRule
	for _, rule := range team.Spec.Rules {
		if rule.Name == nil || !strings.HasPrefix(string(*rule.Name), "shipgate-") {
			teamRules = append(teamRules, rule)
		}
	}
	if _, err := r.env.Runtime.Ensure(ctx, rollout.InstanceSpec{App: "shop", Env: "production", Version: "v0", Image: "registry.example/shop:v0", Count: 1, StartTimeout: 30 * time.Second}); err != nil {
		t.Fatal(err)
	}

	rep, err := leave(false, true)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Live != "v2" || rep.RouteDeleted || strings.Join(rep.RemovedRules, ",") != "shipgate-production-main" || len(rep.LostTraffic) != 0 ||
		strings.Join(rep.DeletedReleases, ",") != "v0" || len(rep.KeptReleases) != 1 || !strings.HasPrefix(rep.KeptReleases[0], "v2: live") {
		t.Errorf("leave: %+v, want live v2, the main rule removed, v0 deleted, v2 kept", rep)
	}
	got := route()
	if !equality.Semantic.DeepEqual(got.Spec.Rules, teamRules) {
		t.Errorf("after leaving, the route's rules are %s, want exactly the team's %s", describeRules(got.Spec.Rules), describeRules(teamRules))
	}
	if v, ok := got.Annotations["shipgate.dev/rules"]; ok {
		t.Errorf("after leaving, the route still has shipgate.dev/rules=%q", v)
	}
	if err := k.gone(ctx, "v0"); err != nil {
		t.Errorf("the leftover release v0: %v", err)
	}
	for _, name := range []string{"shop", kube.ObjectName("shop", "v2")} {
		if _, err := k.c.Clientset.AppsV1().Deployments(k.ns).Get(ctx, name, metav1.GetOptions{}); err != nil {
			t.Errorf("Deployment %s after leaving: %v, want it kept", name, err)
		}
	}
	evs, err := r.store.ListAudit(ctx, audit.Filter{Action: audit.ActionLeave})
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 1 || evs[0].Actor != "user:root" || evs[0].Reason != "moving to another tool" || evs[0].Subject != "shop/production" ||
		evs[0].Data["live"] != "v2" || evs[0].Data["removed_rules"] != "shipgate-production-main" || evs[0].Data["deleted_releases"] != "v0" {
		t.Errorf("audit events %s: %+v, want one by user:root with the reason, the live release, the rule and v0", audit.ActionLeave, evs)
	}
	st, err := r.eng.Status(ctx, "shop")
	if err != nil || len(st.Envs) != 1 || st.Envs[0].State != nil {
		t.Errorf("status after leaving: %+v, %v; want nothing live in production (Shipgate forgot it)", st, err)
	}

	// A restarted server does not put Shipgate's rules back.
	r.restart(cfg)
	if got := route(); !equality.Semantic.DeepEqual(got.Spec.Rules, teamRules) {
		t.Errorf("after a restart, the route's rules are %s, want the team's only", describeRules(got.Spec.Rules))
	}
	// Leaving again has nothing to take out, and is no error.
	if _, err := leave(false, false); err != nil {
		t.Errorf("leave again: %v", err)
	}
}

func describeRules(rules []gwv1.HTTPRouteRule) string {
	var out []string
	for _, r := range rules {
		name := "(unnamed)"
		if r.Name != nil {
			name = string(*r.Name)
		}
		var bs []string
		for _, b := range r.BackendRefs {
			bs = append(bs, string(b.Name))
		}
		out = append(out, name+"->"+strings.Join(bs, ","))
	}
	return "[" + strings.Join(out, " ") + "]"
}

// TestEngine_LeaveRefusals: leaving needs an environment and a reason
// (errors naming the field), and an environment of local processes has
// nothing to hand back: refused, naming env, nothing recorded.
func TestEngine_LeaveRefusals(t *testing.T) {
	clk := clocktest.New(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
	k := newLocalKind(t, clk)
	cfg, err := config.Parse(filepath.Join(t.TempDir(), "shipgate.yaml"), fmt.Appendf(nil, bothYAML, shopBin, 1, k.envYAML(), strategyCases[0].yaml))
	if err != nil {
		t.Fatal(err)
	}
	r := newRig(t, k, clk, cfg)
	ctx := t.Context()
	for _, tt := range []struct {
		req         rollout.LeaveRequest
		field, want string
	}{
		{rollout.LeaveRequest{App: "shop", Reason: "x"}, "env", "is required"},
		{rollout.LeaveRequest{App: "shop", Env: "production"}, "reason", "is required"},
		{rollout.LeaveRequest{App: "shop", Env: "production", Reason: "x"}, "env", "production does not run on Kubernetes"},
	} {
		_, err := r.eng.Leave(ctx, tt.req)
		var fe *rollout.FieldError
		if !errors.As(err, &fe) || fe.Field != tt.field || !strings.Contains(fe.Message, tt.want) {
			t.Errorf("leave %+v: %v, want a FieldError on %s saying %q", tt.req, err, tt.field, tt.want)
		}
	}
	if evs, err := r.store.ListAudit(ctx, audit.Filter{Action: audit.ActionLeave}); err != nil || len(evs) != 0 {
		t.Errorf("audit after refused leaves: %+v, %v; want none", evs, err)
	}
}
