// Package gatewayapi routes an environment's traffic with a Kubernetes
// Gateway API HTTPRoute: weighted backendRefs to one Service per release,
// a header-matching rule for internal users and one for previews. It is
// the TrafficRouter of an environment on Kubernetes; measuring the
// traffic is a MetricSource's business (Prometheus).
//
// Shipgate edits only its own rules of the route, which carry names
// starting with "shipgate-<env>-" and are listed in the route's
// shipgate.dev/rules annotation. A route that does not exist is created
// and owned by Shipgate; a route that exists is the user's, and its other
// rules, backends, parents and hostnames are left exactly as they are.
package gatewayapi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
	gwclient "sigs.k8s.io/gateway-api/pkg/client/clientset/versioned"

	"github.com/shipgate/shipgate/internal/kubernetes"
	"github.com/shipgate/shipgate/internal/rollout"
)

// AnnotationRules lists, comma-separated, the names of the route's rules
// that Shipgate owns.
const AnnotationRules = "shipgate.dev/rules"

// DefaultPreviewHeader is the header whose value "true" sends a request
// to the preview release (blue-green's green before the switch).
const DefaultPreviewHeader = "X-Shipgate-Preview"

// Config configures a Router for one environment of one app.
type Config struct {
	// Namespace is where the route and the releases' Services are.
	Namespace string
	// Route is the HTTPRoute's name.
	Route string
	// Gateway is the parent Gateway a route Shipgate creates attaches to.
	Gateway string
	// GatewayNamespace is the Gateway's namespace; empty means Namespace.
	GatewayNamespace string
	// Base is the prefix of the releases' Service names, as the runtime
	// makes them: <Base>-<version>.
	Base string
	// ServicePort is the port of the releases' Services.
	ServicePort int
	// App and Env name what the route serves, for the labels of a route
	// Shipgate creates and the names of its rules.
	App, Env string
	// PathPrefix is the path Shipgate's rules match; empty means "/".
	PathPrefix string
	// PreviewHeader is the header that selects the preview release;
	// empty means DefaultPreviewHeader.
	PreviewHeader string
	// OnChange, when set, is told every change the router makes to the
	// cluster, in words, for the audit log.
	OnChange func(ctx context.Context, change string)
	// Logger receives what the router does. Nil discards it.
	Logger *slog.Logger
}

// Router is a TrafficRouter on one HTTPRoute. It keeps no state: every
// SetRoutes recomputes Shipgate's rules from the Routes it is given and
// puts them in place of whatever rules of Shipgate's the route has, so a
// restarted server, or two calls in quick succession, leave no orphans.
type Router struct {
	client gwclient.Interface
	cfg    Config
	log    *slog.Logger
}

var _ rollout.TrafficRouter = (*Router)(nil)

// New returns a Router.
func New(client gwclient.Interface, cfg Config) (*Router, error) {
	switch {
	case cfg.Namespace == "":
		return nil, errors.New("gatewayapi: namespace is required")
	case cfg.Route == "":
		return nil, errors.New("gatewayapi: route name is required")
	case cfg.Base == "":
		return nil, errors.New("gatewayapi: the Services' base name is required")
	case cfg.ServicePort <= 0 || cfg.ServicePort > 65535:
		return nil, fmt.Errorf("gatewayapi: service_port %d is not a port", cfg.ServicePort)
	case cfg.Env == "":
		return nil, errors.New("gatewayapi: environment is required")
	}
	if cfg.PathPrefix == "" {
		cfg.PathPrefix = "/"
	}
	if cfg.PreviewHeader == "" {
		cfg.PreviewHeader = DefaultPreviewHeader
	}
	if cfg.GatewayNamespace == "" {
		cfg.GatewayNamespace = cfg.Namespace
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Router{client: client, cfg: cfg, log: log}, nil
}

// RulePrefix is what the names of Shipgate's rules of this environment
// start with.
func (rt *Router) RulePrefix() string { return "shipgate-" + slugEnv(rt.cfg.Env) + "-" }

// Rule names, after RulePrefix.
const (
	ruleMain     = "main"
	ruleInternal = "internal"
	rulePreview  = "preview"
)

// SetRoutes puts Shipgate's rules for r in the route, in front of the
// user's rules (the first of two equal matches wins), replacing the ones
// it had. It creates the route when there is none.
func (rt *Router) SetRoutes(ctx context.Context, r rollout.Routes) error {
	rules, err := rt.rules(r)
	if err != nil {
		return err
	}
	routes := rt.client.GatewayV1().HTTPRoutes(rt.cfg.Namespace)
	var what string
	err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cur, err := routes.Get(ctx, rt.cfg.Route, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			route := rt.newRoute(rules)
			if _, err := routes.Create(ctx, route, metav1.CreateOptions{}); err != nil {
				if apierrors.IsAlreadyExists(err) {
					// Someone made it meanwhile: edit theirs as a conflict would.
					return apierrors.NewConflict(gwv1.Resource("httproutes"), rt.cfg.Route, err)
				}
				return err
			}
			what = fmt.Sprintf("created HTTPRoute %s/%s on Gateway %s/%s: %s", rt.cfg.Namespace, rt.cfg.Route, rt.cfg.GatewayNamespace, rt.cfg.Gateway, describe(rules))
			return nil
		}
		if err != nil {
			return err
		}
		next := cur.DeepCopy()
		next.Spec.Rules = append(slices.Clone(rules), rt.userRules(cur)...)
		if next.Annotations == nil {
			next.Annotations = map[string]string{}
		}
		next.Annotations[AnnotationRules] = strings.Join(ruleNames(rules), ",")
		if equalRules(cur.Spec.Rules, next.Spec.Rules) && cur.Annotations[AnnotationRules] == next.Annotations[AnnotationRules] {
			what = ""
			return nil
		}
		if _, err := routes.Update(ctx, next, metav1.UpdateOptions{}); err != nil {
			return err
		}
		what = fmt.Sprintf("set Shipgate's rules of HTTPRoute %s/%s: %s", rt.cfg.Namespace, rt.cfg.Route, describe(rules))
		return nil
	})
	if err != nil {
		return fmt.Errorf("gatewayapi: set HTTPRoute %s/%s: %w", rt.cfg.Namespace, rt.cfg.Route, err)
	}
	if what != "" {
		rt.log.Info("gateway api change", "change", what)
		if rt.cfg.OnChange != nil {
			rt.cfg.OnChange(ctx, what)
		}
	}
	return nil
}

// VerifyRoutes returns nil once the route holds Shipgate's rules for r
// and every parent Gateway's controller has accepted the route's current
// generation with all its references resolved. While a controller has
// not caught up it returns an error wrapping rollout.ErrNotReady; when a
// parent refused the route, or someone else changed Shipgate's rules, it
// returns another error.
func (rt *Router) VerifyRoutes(ctx context.Context, r rollout.Routes) error {
	want, err := rt.rules(r)
	if err != nil {
		return err
	}
	cur, err := rt.client.GatewayV1().HTTPRoutes(rt.cfg.Namespace).Get(ctx, rt.cfg.Route, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return fmt.Errorf("gatewayapi: HTTPRoute %s/%s does not exist", rt.cfg.Namespace, rt.cfg.Route)
	}
	if err != nil {
		return fmt.Errorf("gatewayapi: read HTTPRoute %s/%s: %w", rt.cfg.Namespace, rt.cfg.Route, err)
	}
	if got := rt.ownRules(cur); !equalRules(got, want) {
		return fmt.Errorf("gatewayapi: HTTPRoute %s/%s does not hold Shipgate's rules as set (someone changed them?): want %s, have %s", rt.cfg.Namespace, rt.cfg.Route, describe(want), describe(got))
	}
	if len(cur.Spec.ParentRefs) == 0 {
		return fmt.Errorf("gatewayapi: HTTPRoute %s/%s has no parentRefs: no Gateway serves it", rt.cfg.Namespace, rt.cfg.Route)
	}
	for _, pref := range cur.Spec.ParentRefs {
		if err := rt.parentReady(cur, pref); err != nil {
			return err
		}
	}
	return nil
}

// parentReady checks one parent's status of the route's generation.
func (rt *Router) parentReady(route *gwv1.HTTPRoute, pref gwv1.ParentReference) error {
	name := parentName(route.Namespace, pref)
	for _, ps := range route.Status.Parents {
		if !sameParent(route.Namespace, ps.ParentRef, pref) {
			continue
		}
		acc := meta.FindStatusCondition(ps.Conditions, string(gwv1.RouteConditionAccepted))
		res := meta.FindStatusCondition(ps.Conditions, string(gwv1.RouteConditionResolvedRefs))
		switch {
		case acc == nil || acc.ObservedGeneration < route.Generation:
			return fmt.Errorf("gatewayapi: HTTPRoute %s/%s generation %d not yet accepted by %s: %w", route.Namespace, route.Name, route.Generation, name, rollout.ErrNotReady)
		case acc.Status != metav1.ConditionTrue:
			return fmt.Errorf("gatewayapi: %s did not accept HTTPRoute %s/%s: %s: %s", name, route.Namespace, route.Name, acc.Reason, acc.Message)
		case res == nil || res.ObservedGeneration < route.Generation:
			return fmt.Errorf("gatewayapi: HTTPRoute %s/%s generation %d: references not yet resolved by %s: %w", route.Namespace, route.Name, route.Generation, name, rollout.ErrNotReady)
		case res.Status != metav1.ConditionTrue:
			// A Service created a moment ago may not be in the
			// controller's cache yet: not ready, and the engine's bound
			// turns a lasting one into a failed step with this reason.
			return fmt.Errorf("gatewayapi: HTTPRoute %s/%s: %s cannot resolve its references: %s: %s: %w", route.Namespace, route.Name, name, res.Reason, res.Message, rollout.ErrNotReady)
		}
		return nil
	}
	return fmt.Errorf("gatewayapi: HTTPRoute %s/%s has no status from %s yet: %w", route.Namespace, route.Name, name, rollout.ErrNotReady)
}

func (rt *Router) newRoute(rules []gwv1.HTTPRouteRule) *gwv1.HTTPRoute {
	ns := gwv1.Namespace(rt.cfg.GatewayNamespace)
	group := gwv1.Group(gwv1.GroupName)
	kind := gwv1.Kind("Gateway")
	return &gwv1.HTTPRoute{
		ObjectMeta: metav1.ObjectMeta{
			Name:      rt.cfg.Route,
			Namespace: rt.cfg.Namespace,
			Labels: map[string]string{
				kubernetes.LabelManagedBy: kubernetes.ManagedBy,
				kubernetes.LabelApp:       labelOK(rt.cfg.App),
				kubernetes.LabelEnv:       labelOK(rt.cfg.Env),
			},
			Annotations: map[string]string{AnnotationRules: strings.Join(ruleNames(rules), ",")},
		},
		Spec: gwv1.HTTPRouteSpec{
			CommonRouteSpec: gwv1.CommonRouteSpec{ParentRefs: []gwv1.ParentReference{{Group: &group, Kind: &kind, Namespace: &ns, Name: gwv1.ObjectName(rt.cfg.Gateway)}}},
			Rules:           rules,
		},
	}
}

// isOwn reports whether a rule is Shipgate's: named with this
// environment's prefix, or listed in the route's annotation.
func (rt *Router) isOwn(route *gwv1.HTTPRoute, rule gwv1.HTTPRouteRule) bool {
	if rule.Name == nil {
		return false
	}
	n := string(*rule.Name)
	if strings.HasPrefix(n, rt.RulePrefix()) {
		return true
	}
	return slices.Contains(strings.Split(route.Annotations[AnnotationRules], ","), n)
}

func (rt *Router) ownRules(route *gwv1.HTTPRoute) []gwv1.HTTPRouteRule {
	var out []gwv1.HTTPRouteRule
	for _, r := range route.Spec.Rules {
		if rt.isOwn(route, r) {
			out = append(out, r)
		}
	}
	return out
}

func (rt *Router) userRules(route *gwv1.HTTPRoute) []gwv1.HTTPRouteRule {
	var out []gwv1.HTTPRouteRule
	for _, r := range route.Spec.Rules {
		if !rt.isOwn(route, r) {
			out = append(out, r)
		}
	}
	return out
}

// rules are Shipgate's rules for r: preview and internal users first
// (their header matches win over the main rule anyway), then the weighted
// main rule.
func (rt *Router) rules(r rollout.Routes) ([]gwv1.HTTPRouteRule, error) {
	var out []gwv1.HTTPRouteRule
	if r.Preview.Version != "" {
		m := rt.pathMatch()
		m.Headers = []gwv1.HTTPHeaderMatch{{Name: gwv1.HTTPHeaderName(rt.cfg.PreviewHeader), Value: "true"}}
		out = append(out, rt.rule(rulePreview, []gwv1.HTTPRouteMatch{m}, rt.backend(r.Preview.Version, 1)))
	}
	if r.Match != nil && r.Canary.Version != "" {
		ms, err := rt.internalMatches(r.Match)
		if err != nil {
			return nil, err
		}
		out = append(out, rt.rule(ruleInternal, ms, rt.backend(r.Canary.Version, 1)))
	}
	w := r.Weight
	if w < 0 || w > 100 {
		return nil, fmt.Errorf("gatewayapi: weight %d is not a percentage", w)
	}
	var backends []gwv1.HTTPBackendRef
	switch {
	case r.Stable.Version != "" && r.Canary.Version != "" && r.Canary.Version != r.Stable.Version:
		backends = append(backends, rt.backend(r.Stable.Version, percent(100-w)), rt.backend(r.Canary.Version, percent(w)))
	case r.Stable.Version != "":
		backends = append(backends, rt.backend(r.Stable.Version, 100))
	case r.Canary.Version != "":
		backends = append(backends, rt.backend(r.Canary.Version, 100))
	}
	if len(backends) > 0 {
		out = append(out, rt.rule(ruleMain, []gwv1.HTTPRouteMatch{rt.pathMatch()}, backends...))
	}
	return out, nil
}

func (rt *Router) internalMatches(m *rollout.Match) ([]gwv1.HTTPRouteMatch, error) {
	var out []gwv1.HTTPRouteMatch
	add := func(h gwv1.HTTPHeaderMatch) {
		pm := rt.pathMatch()
		pm.Headers = []gwv1.HTTPHeaderMatch{h}
		out = append(out, pm)
	}
	if m.Header != "" {
		if len(m.Values) == 0 {
			re := gwv1.HeaderMatchRegularExpression
			add(gwv1.HTTPHeaderMatch{Type: &re, Name: gwv1.HTTPHeaderName(m.Header), Value: ".*"})
		}
		for _, v := range m.Values {
			add(gwv1.HTTPHeaderMatch{Name: gwv1.HTTPHeaderName(m.Header), Value: v})
		}
	}
	if m.Cookie != "" {
		// Gateway API has no cookie match: a regular expression on the
		// Cookie header (Extended support in the Gateway API).
		vals := ".*"
		if len(m.Values) > 0 {
			q := make([]string, len(m.Values))
			for i, v := range m.Values {
				q[i] = regexp.QuoteMeta(v)
			}
			vals = "(" + strings.Join(q, "|") + ")"
		}
		re := gwv1.HeaderMatchRegularExpression
		add(gwv1.HTTPHeaderMatch{Type: &re, Name: "Cookie", Value: `(^|.*;\s*)` + regexp.QuoteMeta(m.Cookie) + "=" + vals + `(;.*|$)`})
	}
	if len(out) == 0 {
		return nil, errors.New("gatewayapi: internal users must be matched by a header or a cookie: an HTTPRoute cannot match a list of user keys")
	}
	if len(out) > 64 {
		return nil, fmt.Errorf("gatewayapi: %d header values for internal users; an HTTPRoute rule holds at most 64 matches", len(out))
	}
	return out, nil
}

func (rt *Router) pathMatch() gwv1.HTTPRouteMatch {
	t := gwv1.PathMatchPathPrefix
	v := rt.cfg.PathPrefix
	return gwv1.HTTPRouteMatch{Path: &gwv1.HTTPPathMatch{Type: &t, Value: &v}}
}

func (rt *Router) rule(name string, matches []gwv1.HTTPRouteMatch, backends ...gwv1.HTTPBackendRef) gwv1.HTTPRouteRule {
	n := gwv1.SectionName(rt.RulePrefix() + name)
	return gwv1.HTTPRouteRule{Name: &n, Matches: matches, BackendRefs: backends}
}

// ServiceName is the Service of a release, as the runtime names it.
func (rt *Router) ServiceName(version string) string {
	return kubernetes.ObjectName(rt.cfg.Base, version)
}

func (rt *Router) backend(version string, weight int32) gwv1.HTTPBackendRef {
	port := gwv1.PortNumber(portNumber(rt.cfg.ServicePort))
	w := weight
	return gwv1.HTTPBackendRef{BackendRef: gwv1.BackendRef{
		BackendObjectReference: gwv1.BackendObjectReference{Name: gwv1.ObjectName(rt.ServiceName(version)), Port: &port},
		Weight:                 &w,
	}}
}

func ruleNames(rules []gwv1.HTTPRouteRule) []string {
	out := make([]string, 0, len(rules))
	for _, r := range rules {
		out = append(out, string(*r.Name))
	}
	return out
}

// Weights returns, for each backend Service of Shipgate's main rule of
// route, its weight: what a test or `status` reads back.
func (rt *Router) Weights(route *gwv1.HTTPRoute) map[string]int32 {
	out := map[string]int32{}
	for _, r := range rt.ownRules(route) {
		if r.Name == nil || string(*r.Name) != rt.RulePrefix()+ruleMain {
			continue
		}
		for _, b := range r.BackendRefs {
			w := int32(1)
			if b.Weight != nil {
				w = *b.Weight
			}
			out[string(b.Name)] = w
		}
	}
	return out
}

// describe says what rules send where, for the audit log and errors.
func describe(rules []gwv1.HTTPRouteRule) string {
	if len(rules) == 0 {
		return "no rules"
	}
	var parts []string
	for _, r := range rules {
		var bs []string
		for _, b := range r.BackendRefs {
			w := int32(1)
			if b.Weight != nil {
				w = *b.Weight
			}
			bs = append(bs, fmt.Sprintf("%s=%d", b.Name, w))
		}
		name := ""
		if r.Name != nil {
			name = string(*r.Name)
		}
		parts = append(parts, fmt.Sprintf("%s[%d matches] -> %s", name, len(r.Matches), strings.Join(bs, ",")))
	}
	return strings.Join(parts, "; ")
}

func parentName(routeNS string, p gwv1.ParentReference) string {
	ns := routeNS
	if p.Namespace != nil {
		ns = string(*p.Namespace)
	}
	kind := "Gateway"
	if p.Kind != nil {
		kind = string(*p.Kind)
	}
	s := fmt.Sprintf("%s %s/%s", kind, ns, p.Name)
	if p.SectionName != nil {
		s += " section " + string(*p.SectionName)
	}
	return s
}

func sameParent(routeNS string, a, b gwv1.ParentReference) bool {
	return parentName(routeNS, a) == parentName(routeNS, b)
}

func slugEnv(env string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(env) {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			b.WriteRune(r)
		} else {
			b.WriteByte('-')
		}
	}
	return b.String()
}

func labelOK(s string) string {
	if len(s) <= 63 && regexp.MustCompile(`^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$`).MatchString(s) {
		return s
	}
	return "invalid"
}

// percent is a weight of 0 to 100 as the API's int32, clamped.
func percent(w int) int32 {
	switch {
	case w < 0:
		return 0
	case w > 100:
		return 100
	}
	return int32(w)
}

// portNumber is a port New checked (1 to 65535) as the API's int32.
func portNumber(p int) int32 {
	if p < 0 || p > 65535 {
		return 0
	}
	return int32(p)
}
