package kubetest

import (
	"context"
	"fmt"
	"slices"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	corelisters "k8s.io/client-go/listers/core/v1"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
	gatewaylisters "sigs.k8s.io/gateway-api/pkg/client/listers/apis/v1"
)

// gwReconciler computes and writes the status the stand-in controller owns
// (see GatewayController). Its errors are logged, and retried on the next
// round.
type gwReconciler struct {
	c        *Cluster
	routes   gatewaylisters.HTTPRouteLister
	gateways gatewaylisters.GatewayLister
	classes  gatewaylisters.GatewayClassLister
	grants   gatewaylisters.ReferenceGrantLister
	services corelisters.ServiceLister
}

func (r *gwReconciler) logf(format string, args ...any) {
	// A conflict only means the informer's copy was stale: the next round
	// has the new one.
	if len(args) > 0 {
		if err, ok := args[len(args)-1].(error); ok && apierrors.IsConflict(err) {
			return
		}
	}
	if r.c.logf != nil {
		r.c.logf("stand-in gateway controller: "+format, args...)
	}
}

func (r *gwReconciler) reconcile(ctx context.Context) {
	classes, _ := r.classes.List(labels.Everything())
	ours := map[string]bool{}
	for _, gc := range classes {
		if gc.Spec.ControllerName != GatewayControllerName {
			continue
		}
		ours[gc.Name] = true
		st := gc.Status.DeepCopy()
		meta.SetStatusCondition(&st.Conditions, metav1.Condition{Type: string(gatewayv1.GatewayClassConditionStatusAccepted),
			Status: metav1.ConditionTrue, Reason: string(gatewayv1.GatewayClassReasonAccepted),
			Message: "accepted by kubetest's stand-in controller (no data plane)", ObservedGeneration: gc.Generation})
		if !equality.Semantic.DeepEqual(st, &gc.Status) {
			gc = gc.DeepCopy()
			gc.Status = *st
			if _, err := r.c.Gateway.GatewayV1().GatewayClasses().UpdateStatus(ctx, gc, metav1.UpdateOptions{}); err != nil && ctx.Err() == nil {
				r.logf("GatewayClass %s: %v", gc.Name, err)
			}
		}
	}
	routes, _ := r.routes.List(labels.Everything())
	attached := map[string]map[string]int32{} // gateway ns/name -> listener -> routes
	for _, route := range routes {
		st := r.routeStatus(route, ours, attached)
		if equality.Semantic.DeepEqual(st, &route.Status.RouteStatus) {
			continue
		}
		route = route.DeepCopy()
		route.Status.RouteStatus = *st
		if _, err := r.c.Gateway.GatewayV1().HTTPRoutes(route.Namespace).UpdateStatus(ctx, route, metav1.UpdateOptions{}); err != nil && ctx.Err() == nil {
			r.logf("HTTPRoute %s/%s: %v", route.Namespace, route.Name, err)
		}
	}
	gateways, _ := r.gateways.List(labels.Everything())
	for _, g := range gateways {
		if !ours[string(g.Spec.GatewayClassName)] {
			continue
		}
		st := g.Status.DeepCopy()
		for _, typ := range []gatewayv1.GatewayConditionType{gatewayv1.GatewayConditionAccepted, gatewayv1.GatewayConditionProgrammed} {
			meta.SetStatusCondition(&st.Conditions, metav1.Condition{Type: string(typ), Status: metav1.ConditionTrue,
				Reason: string(typ), ObservedGeneration: g.Generation,
				Message: "kubetest's stand-in controller: status only, no data plane runs"})
		}
		var ls []gatewayv1.ListenerStatus
		for _, l := range g.Spec.Listeners {
			old := findListener(g.Status.Listeners, l.Name)
			var conds []metav1.Condition
			if old != nil {
				conds = slices.Clone(old.Conditions)
			}
			for _, typ := range []gatewayv1.ListenerConditionType{gatewayv1.ListenerConditionAccepted,
				gatewayv1.ListenerConditionProgrammed, gatewayv1.ListenerConditionResolvedRefs} {
				meta.SetStatusCondition(&conds, metav1.Condition{Type: string(typ), Status: metav1.ConditionTrue,
					Reason: string(typ), ObservedGeneration: g.Generation})
			}
			ls = append(ls, gatewayv1.ListenerStatus{Name: l.Name, Conditions: conds,
				AttachedRoutes: attached[g.Namespace+"/"+g.Name][string(l.Name)],
				SupportedKinds: []gatewayv1.RouteGroupKind{{Group: ptr(gatewayv1.Group(gatewayv1.GroupName)), Kind: "HTTPRoute"}}})
		}
		st.Listeners = ls
		if equality.Semantic.DeepEqual(st, &g.Status) {
			continue
		}
		g = g.DeepCopy()
		g.Status = *st
		if _, err := r.c.Gateway.GatewayV1().Gateways(g.Namespace).UpdateStatus(ctx, g, metav1.UpdateOptions{}); err != nil && ctx.Err() == nil {
			r.logf("Gateway %s/%s: %v", g.Namespace, g.Name, err)
		}
	}
}

func findListener(ls []gatewayv1.ListenerStatus, name gatewayv1.SectionName) *gatewayv1.ListenerStatus {
	for i := range ls {
		if ls[i].Name == name {
			return &ls[i]
		}
	}
	return nil
}

// routeStatus is route's status with this controller's parent entries
// recomputed and the other controllers' entries kept.
func (r *gwReconciler) routeStatus(route *gatewayv1.HTTPRoute, ours map[string]bool, attached map[string]map[string]int32) *gatewayv1.RouteStatus {
	st := &gatewayv1.RouteStatus{}
	for _, p := range route.Status.Parents {
		if p.ControllerName != GatewayControllerName {
			st.Parents = append(st.Parents, p)
		}
	}
	resolved := r.resolvedRefs(route)
	resolved.ObservedGeneration = route.Generation
	for _, ref := range route.Spec.ParentRefs {
		if ref.Group != nil && *ref.Group != gatewayv1.GroupName || ref.Kind != nil && *ref.Kind != "Gateway" {
			continue
		}
		ns := route.Namespace
		if ref.Namespace != nil {
			ns = string(*ref.Namespace)
		}
		g, err := r.gateways.Gateways(ns).Get(string(ref.Name))
		if err != nil || !ours[string(g.Spec.GatewayClassName)] {
			continue // not a parent of ours: another controller's business
		}
		accepted := metav1.Condition{Type: string(gatewayv1.RouteConditionAccepted), Status: metav1.ConditionFalse,
			Reason: string(gatewayv1.RouteReasonNotAllowedByListeners), ObservedGeneration: route.Generation,
			Message: "no listener of the Gateway admits routes from namespace " + route.Namespace}
		for _, l := range g.Spec.Listeners {
			if ref.SectionName != nil && *ref.SectionName != l.Name || ref.Port != nil && *ref.Port != l.Port {
				continue
			}
			if !admits(l, g.Namespace, route.Namespace) {
				continue
			}
			accepted.Status, accepted.Reason = metav1.ConditionTrue, string(gatewayv1.RouteReasonAccepted)
			accepted.Message = "accepted by kubetest's stand-in controller: status only, no data plane routes traffic"
			key := g.Namespace + "/" + g.Name
			if attached[key] == nil {
				attached[key] = map[string]int32{}
			}
			attached[key][string(l.Name)]++
		}
		var old []metav1.Condition
		for _, p := range route.Status.Parents {
			if p.ControllerName == GatewayControllerName && equality.Semantic.DeepEqual(p.ParentRef, ref) {
				old = slices.Clone(p.Conditions)
			}
		}
		meta.SetStatusCondition(&old, accepted)
		meta.SetStatusCondition(&old, resolved)
		st.Parents = append(st.Parents, gatewayv1.RouteParentStatus{ParentRef: ref,
			ControllerName: GatewayControllerName, Conditions: old})
	}
	return st
}

func admits(l gatewayv1.Listener, gatewayNS, routeNS string) bool {
	from := gatewayv1.NamespacesFromSame
	if l.AllowedRoutes != nil && l.AllowedRoutes.Namespaces != nil && l.AllowedRoutes.Namespaces.From != nil {
		from = *l.AllowedRoutes.Namespaces.From
	}
	switch from {
	case gatewayv1.NamespacesFromAll:
		return true
	case gatewayv1.NamespacesFromSame:
		return gatewayNS == routeNS
	default: // Selector: not needed by the tests
		return false
	}
}

// resolvedRefs checks every backendRef of every rule.
func (r *gwReconciler) resolvedRefs(route *gatewayv1.HTTPRoute) metav1.Condition {
	for _, rule := range route.Spec.Rules {
		for _, b := range rule.BackendRefs {
			ref := b.BackendObjectReference
			if ref.Group != nil && *ref.Group != "" && *ref.Group != "core" || ref.Kind != nil && *ref.Kind != "Service" {
				return metav1.Condition{Type: string(gatewayv1.RouteConditionResolvedRefs), Status: metav1.ConditionFalse,
					Reason: string(gatewayv1.RouteReasonInvalidKind), Message: fmt.Sprintf("backendRef %s is not a Service", ref.Name)}
			}
			ns := route.Namespace
			if ref.Namespace != nil && string(*ref.Namespace) != route.Namespace {
				ns = string(*ref.Namespace)
				if !r.granted(route.Namespace, ns, string(ref.Name)) {
					return metav1.Condition{Type: string(gatewayv1.RouteConditionResolvedRefs), Status: metav1.ConditionFalse,
						Reason:  string(gatewayv1.RouteReasonRefNotPermitted),
						Message: fmt.Sprintf("backendRef %s/%s: no ReferenceGrant in %s allows HTTPRoutes from %s", ns, ref.Name, ns, route.Namespace)}
				}
			}
			svc, err := r.services.Services(ns).Get(string(ref.Name))
			if err != nil {
				return metav1.Condition{Type: string(gatewayv1.RouteConditionResolvedRefs), Status: metav1.ConditionFalse,
					Reason: string(gatewayv1.RouteReasonBackendNotFound), Message: fmt.Sprintf("Service %s/%s not found", ns, ref.Name)}
			}
			if ref.Port != nil && !slices.ContainsFunc(svc.Spec.Ports, func(p corev1.ServicePort) bool { return p.Port == *ref.Port }) {
				return metav1.Condition{Type: string(gatewayv1.RouteConditionResolvedRefs), Status: metav1.ConditionFalse,
					Reason: string(gatewayv1.RouteReasonBackendNotFound), Message: fmt.Sprintf("Service %s/%s has no port %d", ns, ref.Name, *ref.Port)}
			}
		}
	}
	return metav1.Condition{Type: string(gatewayv1.RouteConditionResolvedRefs), Status: metav1.ConditionTrue,
		Reason: string(gatewayv1.RouteReasonResolvedRefs), Message: "every backendRef is an existing Service"}
}

func (r *gwReconciler) granted(fromNS, toNS, name string) bool {
	grants, _ := r.grants.ReferenceGrants(toNS).List(labels.Everything())
	for _, g := range grants {
		from := slices.ContainsFunc(g.Spec.From, func(f gatewayv1.ReferenceGrantFrom) bool {
			return f.Group == gatewayv1.GroupName && f.Kind == "HTTPRoute" && string(f.Namespace) == fromNS
		})
		to := slices.ContainsFunc(g.Spec.To, func(t gatewayv1.ReferenceGrantTo) bool {
			return (t.Group == "" || t.Group == "core") && t.Kind == "Service" && (t.Name == nil || string(*t.Name) == name)
		})
		if from && to {
			return true
		}
	}
	return false
}
