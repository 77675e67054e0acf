package gatewayapi

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/shipgate/shipgate/internal/kubernetes"
	"github.com/shipgate/shipgate/internal/rollout"
)

// LeaveResult says what Leave did to the route, or would have done.
type LeaveResult struct {
	// Route is the route, namespace/name; Exists is false when there was
	// none (nothing to do).
	Route  string
	Exists bool
	// Deleted is true when the route was Shipgate's own, held no rule of
	// the user's, and is deleted.
	Deleted bool
	// Removed are the names of Shipgate's rules taken out.
	Removed []string
	// Lost says, for each request match of Shipgate's rules that no rule
	// of the user's matches afterwards, what loses its backend.
	Lost []string
	// UserBackends are the Services the user's rules send traffic to.
	UserBackends []string
}

// ErrWouldLoseTraffic is wrapped by Leave's error when, without force, it
// refused because some requests would match no rule of the user's.
var ErrWouldLoseTraffic = errors.New("requests would be left with no backend")

// Leave takes Shipgate's rules and its annotation out of the route, or
// deletes the route when Shipgate created it and it holds no rule of the
// user's (one that does is handed over: Shipgate's labels go too). When
// some requests that Shipgate's rules serve would match no rule of the
// user's afterwards, it changes nothing and returns an error wrapping
// ErrWouldLoseTraffic and rollout.ErrConflict that says which, unless
// force. The result says what it did, or would have done.
func (rt *Router) Leave(ctx context.Context, force bool) (LeaveResult, error) {
	routes := rt.client.GatewayV1().HTTPRoutes(rt.cfg.Namespace)
	res := LeaveResult{Route: rt.cfg.Namespace + "/" + rt.cfg.Route}
	var what string
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		res = LeaveResult{Route: res.Route}
		cur, err := routes.Get(ctx, rt.cfg.Route, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		if err != nil {
			return err
		}
		res.Exists = true
		own, user := rt.ownRules(cur), rt.userRules(cur)
		res.Removed = ruleNames(own)
		res.UserBackends = backendNames(user)
		ours := cur.Labels[kubernetes.LabelManagedBy] == kubernetes.ManagedBy
		res.Deleted = ours && len(user) == 0
		res.Lost = lostTraffic(cur, own, user, res.Deleted)
		if len(res.Lost) > 0 && !force {
			return fmt.Errorf("%w: %s; point a rule of yours at the live release's Service first, or leave with --force: %w", ErrWouldLoseTraffic, strings.Join(res.Lost, "; "), rollout.ErrConflict)
		}
		if res.Deleted {
			if err := routes.Delete(ctx, rt.cfg.Route, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{ResourceVersion: &cur.ResourceVersion}}); err != nil {
				return err
			}
			what = fmt.Sprintf("deleted HTTPRoute %s, which Shipgate created (rules %s)", res.Route, describe(own))
			return nil
		}
		_, hasNote := cur.Annotations[AnnotationRules]
		if len(own) == 0 && !hasNote && !ours {
			return nil // nothing of Shipgate's left
		}
		next := cur.DeepCopy()
		next.Spec.Rules = user
		delete(next.Annotations, AnnotationRules)
		if ours {
			// Shipgate created it, the user added rules: it is theirs now.
			for _, k := range []string{kubernetes.LabelManagedBy, kubernetes.LabelApp, kubernetes.LabelEnv} {
				delete(next.Labels, k)
			}
		}
		if _, err := routes.Update(ctx, next, metav1.UpdateOptions{}); err != nil {
			return err
		}
		what = fmt.Sprintf("took Shipgate's rules out of HTTPRoute %s (%s); left its %d rules of the user's: %s", res.Route, describe(own), len(user), describe(user))
		if ours {
			what += "; Shipgate's labels removed, the route is the user's now"
		}
		return nil
	})
	if err != nil {
		return res, fmt.Errorf("gatewayapi: leave HTTPRoute %s: %w", res.Route, err)
	}
	if what != "" {
		if len(res.Lost) > 0 {
			what += "; forced, with no rule of the user's for: " + strings.Join(res.Lost, "; ")
		}
		rt.log.Info("gateway api change", "change", what)
		if rt.cfg.OnChange != nil {
			rt.cfg.OnChange(ctx, what)
		}
	}
	return res, nil
}

// lostTraffic says which matches of Shipgate's rules no rule of the
// user's covers (all of them when the route goes), with where they are
// sent now.
func lostTraffic(route *gwv1.HTTPRoute, own, user []gwv1.HTTPRouteRule, deleted bool) []string {
	var out []string
	for _, r := range own {
		if !serves(r) {
			continue
		}
		for _, m := range matchesOf(r) {
			if !deleted && slices.ContainsFunc(user, func(u gwv1.HTTPRouteRule) bool { return covers(u, m) }) {
				continue
			}
			s := fmt.Sprintf("requests %s (rule %s, now to %s)", describeMatch(m), nameOf(r), describeBackends(r))
			if deleted {
				s += fmt.Sprintf(": HTTPRoute %s/%s, which Shipgate created, would be deleted", route.Namespace, route.Name)
				if len(route.Spec.Hostnames) > 0 {
					s += " with its hostnames " + joinHostnames(route.Spec.Hostnames)
				}
			} else {
				s += ": no rule of yours matches them"
			}
			out = append(out, s)
		}
	}
	return out
}

// serves reports whether a rule answers the requests it matches: it has a
// backend of some weight, or a redirect.
func serves(r gwv1.HTTPRouteRule) bool {
	for _, b := range r.BackendRefs {
		if b.Weight == nil || *b.Weight > 0 {
			return true
		}
	}
	for _, f := range r.Filters {
		if f.Type == gwv1.HTTPRouteFilterRequestRedirect {
			return true
		}
	}
	return false
}

// matchesOf is a rule's matches; a rule with none matches every path.
func matchesOf(r gwv1.HTTPRouteRule) []gwv1.HTTPRouteMatch {
	if len(r.Matches) == 0 {
		return []gwv1.HTTPRouteMatch{{}}
	}
	return r.Matches
}

// covers reports whether rule u, which must serve, matches every request
// m matches: some match of u asks for no more than m (a path prefix of
// m's, and only header matches m has). Conservative: an exact or regular
// expression path, a method or a query parameter never covers.
func covers(u gwv1.HTTPRouteRule, m gwv1.HTTPRouteMatch) bool {
	if !serves(u) {
		return false
	}
	for _, um := range matchesOf(u) {
		if um.Method != nil || len(um.QueryParams) > 0 || !pathCovers(um.Path, m.Path) {
			continue
		}
		if headersCovered(um.Headers, m.Headers) {
			return true
		}
	}
	return false
}

// pathCovers reports whether path match u matches every path m matches.
func pathCovers(u, m *gwv1.HTTPPathMatch) bool {
	up, ok := prefixOf(u)
	if !ok {
		return false
	}
	if up == "/" {
		return true
	}
	mp, ok := prefixOf(m)
	if !ok {
		if m != nil && m.Type != nil && *m.Type == gwv1.PathMatchExact && m.Value != nil {
			mp = *m.Value
		} else {
			return false
		}
	}
	up = strings.TrimSuffix(up, "/")
	return mp == up || strings.HasPrefix(mp, up+"/")
}

// prefixOf is a path match's prefix ("/" when it has none), and false
// when it is not a prefix match.
func prefixOf(p *gwv1.HTTPPathMatch) (string, bool) {
	if p == nil {
		return "/", true
	}
	if p.Type != nil && *p.Type != gwv1.PathMatchPathPrefix {
		return "", false
	}
	if p.Value == nil || *p.Value == "" {
		return "/", true
	}
	return *p.Value, true
}

// headersCovered reports whether every header match of u is one of m's.
func headersCovered(u, m []gwv1.HTTPHeaderMatch) bool {
	for _, h := range u {
		if !slices.ContainsFunc(m, func(x gwv1.HTTPHeaderMatch) bool {
			return strings.EqualFold(string(x.Name), string(h.Name)) && x.Value == h.Value && headerType(x) == headerType(h)
		}) {
			return false
		}
	}
	return true
}

func headerType(h gwv1.HTTPHeaderMatch) gwv1.HeaderMatchType {
	if h.Type == nil {
		return gwv1.HeaderMatchExact
	}
	return *h.Type
}

func describeMatch(m gwv1.HTTPRouteMatch) string {
	p, ok := prefixOf(m.Path)
	s := "to " + p
	if !ok && m.Path != nil && m.Path.Value != nil {
		s = "to " + *m.Path.Value
	}
	for _, h := range m.Headers {
		s += fmt.Sprintf(" with %s: %s", h.Name, h.Value)
	}
	return s
}

func describeBackends(r gwv1.HTTPRouteRule) string {
	var bs []string
	for _, b := range r.BackendRefs {
		w := int32(1)
		if b.Weight != nil {
			w = *b.Weight
		}
		bs = append(bs, fmt.Sprintf("%s=%d", b.Name, w))
	}
	return strings.Join(bs, ",")
}

func nameOf(r gwv1.HTTPRouteRule) string {
	if r.Name == nil {
		return "(unnamed)"
	}
	return string(*r.Name)
}

func joinHostnames(hs []gwv1.Hostname) string {
	out := make([]string, len(hs))
	for i, h := range hs {
		out[i] = string(h)
	}
	return strings.Join(out, ", ")
}

// backendNames are the Services rules send traffic to (of some weight).
func backendNames(rules []gwv1.HTTPRouteRule) []string {
	var out []string
	for _, r := range rules {
		for _, b := range r.BackendRefs {
			if (b.Weight == nil || *b.Weight > 0) && (b.Kind == nil || *b.Kind == "Service") && !slices.Contains(out, string(b.Name)) {
				out = append(out, string(b.Name))
			}
		}
	}
	return out
}
