package gatewayapi

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
	gwclient "sigs.k8s.io/gateway-api/pkg/client/clientset/versioned"
	gwfake "sigs.k8s.io/gateway-api/pkg/client/clientset/versioned/fake"

	"github.com/shipgate/shipgate/internal/rollout"
)

// The tests in this file run the router's rule editing on client-go's
// object tracker, which keeps objects as an API server would but has no
// defaulting, validation or gateway controller; the same scenarios run
// against a real kube-apiserver with the Gateway API CRDs in
// cluster_test.go.

func newRouter(t *testing.T, c gwclient.Interface, ns string) *Router {
	t.Helper()
	rt, err := New(c, Config{Namespace: ns, Route: "shop", Gateway: "public", Base: "shop", ServicePort: 8080, App: "shop", Env: "production"})
	if err != nil {
		t.Fatal(err)
	}
	return rt
}

// userRoute is a route a team made before Shipgate: a catch-all rule to
// their Service and an /admin rule with two backends.
func userRoute(ns string) *gwv1.HTTPRoute {
	prefix := gwv1.PathMatchPathPrefix
	root, admin := "/", "/admin"
	port := gwv1.PortNumber(8080)
	w1, w2 := int32(3), int32(1)
	name := gwv1.SectionName("admin")
	return &gwv1.HTTPRoute{
		ObjectMeta: metav1.ObjectMeta{Name: "shop", Namespace: ns, Labels: map[string]string{"team": "payments"}},
		Spec: gwv1.HTTPRouteSpec{
			CommonRouteSpec: gwv1.CommonRouteSpec{ParentRefs: []gwv1.ParentReference{{Name: "public"}}},
			Hostnames:       []gwv1.Hostname{"shop.example.com"},
			Rules: []gwv1.HTTPRouteRule{
				{
					Name:    &name,
					Matches: []gwv1.HTTPRouteMatch{{Path: &gwv1.HTTPPathMatch{Type: &prefix, Value: &admin}}},
					BackendRefs: []gwv1.HTTPBackendRef{
						{BackendRef: gwv1.BackendRef{BackendObjectReference: gwv1.BackendObjectReference{Name: "admin", Port: &port}, Weight: &w1}},
						{BackendRef: gwv1.BackendRef{BackendObjectReference: gwv1.BackendObjectReference{Name: "admin-next", Port: &port}, Weight: &w2}},
					},
				},
				{
					Matches:     []gwv1.HTTPRouteMatch{{Path: &gwv1.HTTPPathMatch{Type: &prefix, Value: &root}}},
					BackendRefs: []gwv1.HTTPBackendRef{{BackendRef: gwv1.BackendRef{BackendObjectReference: gwv1.BackendObjectReference{Name: "shop", Port: &port}}}},
				},
			},
		},
	}
}

func getRoute(t *testing.T, c gwclient.Interface, ns string) *gwv1.HTTPRoute {
	t.Helper()
	r, err := c.GatewayV1().HTTPRoutes(ns).Get(context.Background(), "shop", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func weights(rt *Router, r *gwv1.HTTPRoute) string {
	var parts []string
	for _, svc := range []string{"shop-v1", "shop-v2", "shop-v3"} {
		if w, ok := rt.Weights(r)[svc]; ok {
			parts = append(parts, svc+"="+strconv.Itoa(int(w)))
		}
	}
	return strings.Join(parts, " ")
}

func TestRouter_SetRoutes_UserRoute(t *testing.T) {
	ctx := context.Background()
	const ns = "shop"
	user := userRoute(ns)
	c := gwfake.NewSimpleClientset(user)
	rt := newRouter(t, c, ns)
	testUserRoute(ctx, t, c, rt, user)
}

// testUserRoute moves a canary through a user-owned route and back, and
// checks after each change that the user's rules, hostnames, parents and
// labels are exactly as they were and that Shipgate's rules hold the plan.
func testUserRoute(ctx context.Context, t *testing.T, c gwclient.Interface, rt *Router, user *gwv1.HTTPRoute) {
	t.Helper()
	ns := user.Namespace
	check := func(step, want string, ownRules int) {
		t.Helper()
		r := getRoute(t, c, ns)
		if got := weights(rt, r); got != want {
			t.Errorf("%s: weights %q, want %q", step, got, want)
		}
		if got := rt.userRules(r); !equalRules(got, user.Spec.Rules) {
			t.Errorf("%s: the user's rules changed:\n got %s\nwant %s", step, describe(got), describe(user.Spec.Rules))
		}
		if got := len(rt.ownRules(r)); got != ownRules {
			t.Errorf("%s: %d rules of Shipgate's, want %d: %s", step, got, ownRules, describe(r.Spec.Rules))
		}
		if !equality.Semantic.DeepEqual(r.Spec.Hostnames, user.Spec.Hostnames) || r.Labels["team"] != "payments" || len(r.Spec.ParentRefs) != 1 {
			t.Errorf("%s: the route's hostnames, labels or parents changed: %+v", step, r.ObjectMeta)
		}
		if got := r.Spec.Rules[0].Name; got == nil || !strings.HasPrefix(string(*got), "shipgate-production-") {
			t.Errorf("%s: Shipgate's rules are not first (the first of two equal matches wins)", step)
		}
	}
	stable := rollout.Backend{Version: "v1"}
	canary := rollout.Backend{Version: "v2"}
	set := func(r rollout.Routes) {
		t.Helper()
		if err := rt.SetRoutes(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	set(rollout.Routes{Stable: stable})
	check("stable only", "shop-v1=100", 1)
	set(rollout.Routes{Stable: stable, Canary: canary, Match: &rollout.Match{Header: "X-Internal", Values: []string{"yes"}}})
	check("internal users", "shop-v1=100 shop-v2=0", 2)
	for _, w := range []int{5, 25, 50} {
		set(rollout.Routes{Stable: stable, Canary: canary, Weight: w})
	}
	check("canary 50", "shop-v1=50 shop-v2=50", 1)
	// A failed gate: all traffic back to stable, twice in quick succession.
	set(rollout.Routes{Stable: stable, Canary: canary, Weight: 0})
	set(rollout.Routes{Stable: stable})
	check("rolled back", "shop-v1=100", 1)
	if got := getRoute(t, c, ns).Annotations[AnnotationRules]; got != "shipgate-production-main" {
		t.Errorf("annotation %s = %q, want only the main rule", AnnotationRules, got)
	}
	set(rollout.Routes{Stable: rollout.Backend{Version: "v2"}, Preview: rollout.Backend{Version: "v3"}})
	check("preview", "shop-v2=100", 2)

	res, err := rt.Leave(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	if res.Deleted || len(res.Lost) != 0 || strings.Join(res.Removed, ",") != "shipgate-production-preview,shipgate-production-main" {
		t.Errorf("Leave: %+v, want the preview and main rules removed, nothing lost (the user's / rule serves)", res)
	}
	r := getRoute(t, c, ns)
	if !equalRules(r.Spec.Rules, user.Spec.Rules) {
		t.Errorf("after Leave the route has %s, want the user's rules only", describe(r.Spec.Rules))
	}
	if _, ok := r.Annotations[AnnotationRules]; ok {
		t.Error("after Leave the route still has Shipgate's annotation")
	}
}

func TestRouter_SetRoutes_CreatesRoute(t *testing.T) {
	ctx := context.Background()
	c := gwfake.NewSimpleClientset()
	rt := newRouter(t, c, "shop")
	if err := rt.SetRoutes(ctx, rollout.Routes{Stable: rollout.Backend{Version: "v1"}, Canary: rollout.Backend{Version: "v2"}, Weight: 10}); err != nil {
		t.Fatal(err)
	}
	r := getRoute(t, c, "shop")
	if got, want := weights(rt, r), "shop-v1=90 shop-v2=10"; got != want {
		t.Errorf("weights %q, want %q", got, want)
	}
	if r.Labels["app.kubernetes.io/managed-by"] != "shipgate" {
		t.Errorf("labels %v: a route Shipgate creates is marked as its own", r.Labels)
	}
	if p := r.Spec.ParentRefs; len(p) != 1 || p[0].Name != "public" || p[0].Namespace == nil || *p[0].Namespace != "shop" {
		t.Errorf("parentRefs %+v, want the Gateway shop/public", p)
	}
	// Deleting it leaves every request it matched with no route of the
	// user's: refused without force, naming what loses its backend.
	_, err := rt.Leave(ctx, false)
	if !errors.Is(err, ErrWouldLoseTraffic) || !errors.Is(err, rollout.ErrConflict) || !strings.Contains(err.Error(), "requests to / (rule shipgate-production-main, now to shop-v1=90,shop-v2=10)") {
		t.Fatalf("Leave without force: %v, want a refusal naming the requests to / and where they go now", err)
	}
	if got := weights(rt, getRoute(t, c, "shop")); got != "shop-v1=90 shop-v2=10" {
		t.Fatalf("the refused Leave changed the route: %q", got)
	}
	res, err := rt.Leave(ctx, true)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Deleted || len(res.Lost) != 1 {
		t.Errorf("Leave with force: %+v, want the route deleted and the lost traffic said", res)
	}
	if _, err := c.GatewayV1().HTTPRoutes("shop").Get(ctx, "shop", metav1.GetOptions{}); err == nil {
		t.Error("Leave kept the route Shipgate created")
	}
}

func TestRouter_SetRoutes_Invalid(t *testing.T) {
	rt := newRouter(t, gwfake.NewSimpleClientset(), "shop")
	for _, tt := range []struct {
		name string
		r    rollout.Routes
		want string
	}{
		{"users only", rollout.Routes{Stable: rollout.Backend{Version: "v1"}, Canary: rollout.Backend{Version: "v2"}, Match: &rollout.Match{Users: []string{"ann"}}}, "cannot match a list of user keys"},
		{"weight", rollout.Routes{Stable: rollout.Backend{Version: "v1"}, Canary: rollout.Backend{Version: "v2"}, Weight: 120}, "weight 120 is not a percentage"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := rt.SetRoutes(context.Background(), tt.r)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("SetRoutes: %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

func TestRouter_VerifyRoutes(t *testing.T) {
	ctx := context.Background()
	c := gwfake.NewSimpleClientset()
	rt := newRouter(t, c, "shop")
	routes := rollout.Routes{Stable: rollout.Backend{Version: "v1"}, Canary: rollout.Backend{Version: "v2"}, Weight: 25}
	if err := rt.SetRoutes(ctx, routes); err != nil {
		t.Fatal(err)
	}
	setStatus := func(gen int64, accepted, resolved metav1.ConditionStatus, reason string) {
		t.Helper()
		r := getRoute(t, c, "shop")
		r.Generation = 2
		r.Status.Parents = []gwv1.RouteParentStatus{{
			ParentRef:      r.Spec.ParentRefs[0],
			ControllerName: "example.com/test",
			Conditions: []metav1.Condition{
				{Type: "Accepted", Status: accepted, Reason: reason, Message: "m", ObservedGeneration: gen},
				{Type: "ResolvedRefs", Status: resolved, Reason: reason, Message: "m", ObservedGeneration: gen},
			},
		}}
		if _, err := c.GatewayV1().HTTPRoutes("shop").Update(ctx, r, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if err := rt.VerifyRoutes(ctx, routes); !errors.Is(err, rollout.ErrNotReady) {
		t.Errorf("no status yet: %v, want ErrNotReady", err)
	}
	setStatus(1, metav1.ConditionTrue, metav1.ConditionTrue, "Accepted")
	if err := rt.VerifyRoutes(ctx, routes); !errors.Is(err, rollout.ErrNotReady) {
		t.Errorf("status of an older generation: %v, want ErrNotReady", err)
	}
	setStatus(2, metav1.ConditionTrue, metav1.ConditionFalse, "BackendNotFound")
	if err := rt.VerifyRoutes(ctx, routes); !errors.Is(err, rollout.ErrNotReady) || !strings.Contains(err.Error(), "BackendNotFound") {
		t.Errorf("unresolved refs: %v, want ErrNotReady naming BackendNotFound", err)
	}
	setStatus(2, metav1.ConditionFalse, metav1.ConditionTrue, "NotAllowedByListeners")
	if err := rt.VerifyRoutes(ctx, routes); err == nil || errors.Is(err, rollout.ErrNotReady) || !strings.Contains(err.Error(), "NotAllowedByListeners") {
		t.Errorf("refused: %v, want a lasting error naming NotAllowedByListeners", err)
	}
	setStatus(2, metav1.ConditionTrue, metav1.ConditionTrue, "Accepted")
	if err := rt.VerifyRoutes(ctx, routes); err != nil {
		t.Errorf("accepted: %v", err)
	}
	other := routes
	other.Weight = 50
	if err := rt.VerifyRoutes(ctx, other); err == nil || errors.Is(err, rollout.ErrNotReady) {
		t.Errorf("route holds 25%%, verify 50%%: %v, want a lasting error", err)
	}
}

// TestRouter_PreviewHeader: the preview rule matches exactly the
// configured header (route.preview_header) with the value "true" on the
// path prefix, sends to the preview release's Service only, comes before
// the main rule, and goes when the routes have no preview.
func TestRouter_PreviewHeader(t *testing.T) {
	ctx := t.Context()
	c := gwfake.NewSimpleClientset(userRoute("shop"))
	rt, err := New(c, Config{Namespace: "shop", Route: "shop", Gateway: "public", Base: "shop", ServicePort: 8080, App: "shop", Env: "production",
		PathPrefix: "/api", PreviewHeader: "X-Try-Green"})
	if err != nil {
		t.Fatal(err)
	}
	if err := rt.SetRoutes(ctx, rollout.Routes{Stable: rollout.Backend{Version: "v1"}, Canary: rollout.Backend{Version: "v2"}, Preview: rollout.Backend{Version: "v2"}}); err != nil {
		t.Fatal(err)
	}
	r := getRoute(t, c, "shop")
	first := r.Spec.Rules[0]
	if first.Name == nil || string(*first.Name) != "shipgate-production-preview" {
		t.Fatalf("first rule %s, want the preview rule", describe(r.Spec.Rules))
	}
	m := first.Matches
	if len(m) != 1 || len(m[0].Headers) != 1 || m[0].Headers[0].Name != "X-Try-Green" || m[0].Headers[0].Value != "true" || m[0].Headers[0].Type != nil ||
		m[0].Path == nil || *m[0].Path.Value != "/api" {
		t.Errorf("preview matches %+v, want exactly X-Try-Green: true on /api", m)
	}
	if b := first.BackendRefs; len(b) != 1 || b[0].Name != "shop-v2" || *b[0].Port != 8080 {
		t.Errorf("preview backends %+v, want shop-v2:8080 only", b)
	}
	if got := weights(rt, r); got != "shop-v1=100 shop-v2=0" {
		t.Errorf("users' weights %q with a preview, want shop-v1=100 shop-v2=0", got)
	}
	if err := rt.SetRoutes(ctx, rollout.Routes{Stable: rollout.Backend{Version: "v2"}}); err != nil {
		t.Fatal(err)
	}
	r = getRoute(t, c, "shop")
	if own := rt.ownRules(r); len(own) != 1 || string(*own[0].Name) != "shipgate-production-main" {
		t.Errorf("Shipgate's rules after the switch: %s, want the main rule only", describe(own))
	}
}
