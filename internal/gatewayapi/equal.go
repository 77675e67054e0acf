package gatewayapi

import (
	"k8s.io/apimachinery/pkg/api/equality"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// equalRules compares rules as the API server keeps them: it fills in
// defaults (a match's path, a backend's group, kind and weight), so a
// rule read back is compared with those defaults applied to both sides.
func equalRules(a, b []gwv1.HTTPRouteRule) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !equality.Semantic.DeepEqual(normalize(a[i]), normalize(b[i])) {
			return false
		}
	}
	return true
}

func normalize(r gwv1.HTTPRouteRule) gwv1.HTTPRouteRule {
	r = *r.DeepCopy()
	for i := range r.Matches {
		m := &r.Matches[i]
		if m.Path == nil {
			t, v := gwv1.PathMatchPathPrefix, "/"
			m.Path = &gwv1.HTTPPathMatch{Type: &t, Value: &v}
		}
		for j := range m.Headers {
			if m.Headers[j].Type == nil {
				t := gwv1.HeaderMatchExact
				m.Headers[j].Type = &t
			}
		}
	}
	for i := range r.BackendRefs {
		b := &r.BackendRefs[i]
		if b.Group == nil {
			g := gwv1.Group("")
			b.Group = &g
		}
		if b.Kind == nil {
			k := gwv1.Kind("Service")
			b.Kind = &k
		}
		if b.Weight == nil {
			w := int32(1)
			b.Weight = &w
		}
	}
	return r
}
