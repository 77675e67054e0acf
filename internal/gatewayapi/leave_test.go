package gatewayapi

import (
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
	gwfake "sigs.k8s.io/gateway-api/pkg/client/clientset/versioned/fake"

	"github.com/shipgate/shipgate/internal/rollout"
)

// TestCovers checks which rules of the user's serve the requests a rule
// of Shipgate's matched: what `shipgate kubernetes leave` refuses to drop
// without --force.
func TestCovers(t *testing.T) {
	prefix, exact, regex := gwv1.PathMatchPathPrefix, gwv1.PathMatchExact, gwv1.PathMatchRegularExpression
	path := func(typ gwv1.PathMatchType, v string) *gwv1.HTTPPathMatch {
		return &gwv1.HTTPPathMatch{Type: &typ, Value: &v}
	}
	zero, one := int32(0), int32(1)
	backend := func(w *int32) []gwv1.HTTPBackendRef {
		return []gwv1.HTTPBackendRef{{BackendRef: gwv1.BackendRef{BackendObjectReference: gwv1.BackendObjectReference{Name: "shop"}, Weight: w}}}
	}
	get := gwv1.HTTPMethodGet
	header := gwv1.HTTPHeaderMatch{Name: "X-Shipgate-Preview", Value: "true"}
	shipgate := func(p string, hs ...gwv1.HTTPHeaderMatch) gwv1.HTTPRouteMatch {
		return gwv1.HTTPRouteMatch{Path: path(prefix, p), Headers: hs}
	}
	for _, tt := range []struct {
		name string
		user gwv1.HTTPRouteRule
		m    gwv1.HTTPRouteMatch
		want bool
	}{
		{"no matches is every path", gwv1.HTTPRouteRule{BackendRefs: backend(nil)}, shipgate("/"), true},
		{"prefix /", gwv1.HTTPRouteRule{Matches: []gwv1.HTTPRouteMatch{{Path: path(prefix, "/")}}, BackendRefs: backend(&one)}, shipgate("/shop"), true},
		{"same prefix", gwv1.HTTPRouteRule{Matches: []gwv1.HTTPRouteMatch{{Path: path(prefix, "/shop/")}}, BackendRefs: backend(nil)}, shipgate("/shop"), true},
		{"parent prefix", gwv1.HTTPRouteRule{Matches: []gwv1.HTTPRouteMatch{{Path: path(prefix, "/shop")}}, BackendRefs: backend(nil)}, shipgate("/shop/api"), true},
		{"not a segment", gwv1.HTTPRouteRule{Matches: []gwv1.HTTPRouteMatch{{Path: path(prefix, "/sh")}}, BackendRefs: backend(nil)}, shipgate("/shop"), false},
		{"narrower prefix", gwv1.HTTPRouteRule{Matches: []gwv1.HTTPRouteMatch{{Path: path(prefix, "/admin")}}, BackendRefs: backend(nil)}, shipgate("/"), false},
		{"exact path", gwv1.HTTPRouteRule{Matches: []gwv1.HTTPRouteMatch{{Path: path(exact, "/")}}, BackendRefs: backend(nil)}, shipgate("/"), false},
		{"regex path", gwv1.HTTPRouteRule{Matches: []gwv1.HTTPRouteMatch{{Path: path(regex, ".*")}}, BackendRefs: backend(nil)}, shipgate("/"), false},
		{"method", gwv1.HTTPRouteRule{Matches: []gwv1.HTTPRouteMatch{{Method: &get}}, BackendRefs: backend(nil)}, shipgate("/"), false},
		{"query", gwv1.HTTPRouteRule{Matches: []gwv1.HTTPRouteMatch{{QueryParams: []gwv1.HTTPQueryParamMatch{{Name: "a", Value: "b"}}}}, BackendRefs: backend(nil)}, shipgate("/"), false},
		{"header the request lacks", gwv1.HTTPRouteRule{Matches: []gwv1.HTTPRouteMatch{{Headers: []gwv1.HTTPHeaderMatch{header}}}, BackendRefs: backend(nil)}, shipgate("/"), false},
		{"header the request has", gwv1.HTTPRouteRule{Matches: []gwv1.HTTPRouteMatch{{Headers: []gwv1.HTTPHeaderMatch{{Name: "x-shipgate-preview", Value: "true"}}}}, BackendRefs: backend(nil)}, shipgate("/", header), true},
		{"weight 0", gwv1.HTTPRouteRule{BackendRefs: backend(&zero)}, shipgate("/"), false},
		{"no backend", gwv1.HTTPRouteRule{}, shipgate("/"), false},
		{"redirect", gwv1.HTTPRouteRule{Filters: []gwv1.HTTPRouteFilter{{Type: gwv1.HTTPRouteFilterRequestRedirect, RequestRedirect: &gwv1.HTTPRequestRedirectFilter{}}}}, shipgate("/"), true},
		{"second match covers", gwv1.HTTPRouteRule{Matches: []gwv1.HTTPRouteMatch{{Path: path(prefix, "/admin")}, {Path: path(prefix, "/")}}, BackendRefs: backend(nil)}, shipgate("/"), true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := covers(tt.user, tt.m); got != tt.want {
				t.Errorf("covers = %v, want %v", got, tt.want)
			}
		})
	}
}

// TestLostTraffic checks what leaving says would lose its backend: each
// match of Shipgate's serving rules that no rule of the user's covers,
// with where it goes now.
func TestLostTraffic(t *testing.T) {
	rt := &Router{cfg: Config{Env: "production", PathPrefix: "/", PreviewHeader: DefaultPreviewHeader, ServicePort: 8080, Base: "shop", Namespace: "shop", Route: "shop"}}
	own, err := rt.rules(routesWithPreview())
	if err != nil {
		t.Fatal(err)
	}
	route := &gwv1.HTTPRoute{}
	route.Namespace, route.Name = "shop", "shop"
	prefix, admin := gwv1.PathMatchPathPrefix, "/admin"
	user := []gwv1.HTTPRouteRule{{
		Matches:     []gwv1.HTTPRouteMatch{{Path: &gwv1.HTTPPathMatch{Type: &prefix, Value: &admin}}},
		BackendRefs: []gwv1.HTTPBackendRef{{BackendRef: gwv1.BackendRef{BackendObjectReference: gwv1.BackendObjectReference{Name: "admin"}}}},
	}}
	lost := lostTraffic(route, own, user, false)
	want := []string{
		"requests to / with X-Shipgate-Preview: true (rule shipgate-production-preview, now to shop-v3=1): no rule of yours matches them",
		"requests to / (rule shipgate-production-main, now to shop-v2=100): no rule of yours matches them",
	}
	if strings.Join(lost, "\n") != strings.Join(want, "\n") {
		t.Errorf("lost:\n%s\nwant:\n%s", strings.Join(lost, "\n"), strings.Join(want, "\n"))
	}
	// A catch-all rule of the user's serves all of it.
	user = append(user, gwv1.HTTPRouteRule{BackendRefs: user[0].BackendRefs})
	if lost := lostTraffic(route, own, user, false); len(lost) != 0 {
		t.Errorf("lost with a catch-all rule of the user's: %q, want nothing", lost)
	}
}

func routesWithPreview() rollout.Routes {
	return rollout.Routes{Stable: rollout.Backend{Version: "v2"}, Preview: rollout.Backend{Version: "v3"}}
}

// TestRouter_Leave_HandsOverRoute: a route Shipgate created to which the
// team has since added a rule of its own is not deleted: Shipgate's rules,
// annotation and labels go, the team's rule stays, and nothing is lost
// when that rule serves the path.
func TestRouter_Leave_HandsOverRoute(t *testing.T) {
	ctx := t.Context()
	c := gwfake.NewSimpleClientset()
	rt := newRouter(t, c, "shop")
	if err := rt.SetRoutes(ctx, rollout.Routes{Stable: rollout.Backend{Version: "v1"}}); err != nil {
		t.Fatal(err)
	}
	r := getRoute(t, c, "shop")
	port := gwv1.PortNumber(8080)
	theirs := gwv1.HTTPRouteRule{BackendRefs: []gwv1.HTTPBackendRef{{BackendRef: gwv1.BackendRef{BackendObjectReference: gwv1.BackendObjectReference{Name: "shop-v1", Port: &port}}}}}
	r.Spec.Rules = append(r.Spec.Rules, theirs)
	if _, err := c.GatewayV1().HTTPRoutes("shop").Update(ctx, r, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	res, err := rt.Leave(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	if res.Deleted || len(res.Lost) != 0 || len(res.UserBackends) != 1 || res.UserBackends[0] != "shop-v1" {
		t.Errorf("Leave: %+v, want the route kept, nothing lost, the team's backend shop-v1", res)
	}
	r = getRoute(t, c, "shop")
	if !equalRules(r.Spec.Rules, []gwv1.HTTPRouteRule{theirs}) {
		t.Errorf("rules after Leave: %s, want the team's only", describe(r.Spec.Rules))
	}
	if _, ok := r.Labels["app.kubernetes.io/managed-by"]; ok || r.Annotations[AnnotationRules] != "" {
		t.Errorf("labels %v, annotations %v: want Shipgate's gone", r.Labels, r.Annotations)
	}
}
