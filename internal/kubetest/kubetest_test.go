package kubetest_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/shipgate/shipgate/internal/kubetest"
)

// These tests run against a real API server, controller manager and
// scheduler. Pods are SIMULATED by kwok: no container runs. HTTPRoute
// status is written by kubetest's stand-in gateway controller: NO DATA
// PLANE routes anything.

func TestMain(m *testing.M) { os.Exit(kubetest.Main(m)) }

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return c
}

func deployment(name, image string, replicas int32) *appsv1.Deployment {
	labels := map[string]string{"app": name}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: image,
					Ports: []corev1.ContainerPort{{ContainerPort: 8080}}}}},
			},
		},
	}
}

func available(d *appsv1.Deployment) bool {
	for _, c := range d.Status.Conditions {
		if c.Type == appsv1.DeploymentAvailable {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// A 2-replica Deployment becomes Available: the controller manager makes
// the ReplicaSet and pods, the scheduler places them on the fake nodes, and
// kwok (simulated pods, no container) makes them Running and Ready with
// distinct IPs from their nodes' podCIDRs.
func TestSmoke_DeploymentAvailable(t *testing.T) {
	c := kubetest.Shared(t)
	ns := c.Namespace(t)
	ctx := ctx(t)
	start := time.Now()
	if _, err := c.Clientset.AppsV1().Deployments(ns).Create(ctx, deployment("shop", "registry.example/shop:v1", 2), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var d *appsv1.Deployment
	err := wait.PollUntilContextCancel(ctx, 20*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		var err error
		d, err = c.Clientset.AppsV1().Deployments(ns).Get(ctx, "shop", metav1.GetOptions{})
		return err == nil && available(d) && d.Status.ReadyReplicas == 2, err
	})
	if err != nil {
		t.Fatalf("deployment not Available with 2 ready replicas: %v; status %+v", err, d.Status)
	}
	t.Logf("2-replica Deployment Available %s after create (pods simulated by kwok)", time.Since(start).Round(time.Millisecond))
	pods, err := c.Clientset.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=shop"})
	if err != nil {
		t.Fatal(err)
	}
	if len(pods.Items) != 2 {
		t.Fatalf("%d pods, want 2", len(pods.Items))
	}
	ips := map[string]bool{}
	for _, p := range pods.Items {
		if p.Status.Phase != corev1.PodRunning || p.Status.PodIP == "" || !strings.HasPrefix(p.Spec.NodeName, "kwok-node-") {
			t.Errorf("pod %s: phase %s, IP %q, node %q", p.Name, p.Status.Phase, p.Status.PodIP, p.Spec.NodeName)
		}
		if ips[p.Status.PodIP] {
			t.Errorf("pod %s: IP %s already taken by another pod", p.Name, p.Status.PodIP)
		}
		ips[p.Status.PodIP] = true
		tolerated := false
		for _, tol := range p.Spec.Tolerations {
			tolerated = tolerated || tol.Key == kubetest.FakeNodeTaint
		}
		if !tolerated {
			t.Errorf("pod %s has no toleration for the fake nodes' taint (PodTolerationRestriction default): %+v", p.Name, p.Spec.Tolerations)
		}
	}
}

// An HTTPRoute attached to the cluster's Gateway is Accepted with its refs
// resolved, and one whose backend Service does not exist is not: the status
// comes from kubetest's stand-in controller (NO DATA PLANE runs), which
// still checks what it claims.
func TestSmoke_HTTPRouteAccepted(t *testing.T) {
	c := kubetest.Shared(t)
	ns := c.Namespace(t)
	ctx := ctx(t)
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "shop"}, Spec: corev1.ServiceSpec{
		Selector: map[string]string{"app": "shop"}, Ports: []corev1.ServicePort{{Port: 8080}}}}
	if _, err := c.Clientset.CoreV1().Services(ns).Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	gwNS := gatewayv1.Namespace(kubetest.GatewayNamespace)
	route := func(name, backend string) *gatewayv1.HTTPRoute {
		return &gatewayv1.HTTPRoute{
			ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec: gatewayv1.HTTPRouteSpec{
				CommonRouteSpec: gatewayv1.CommonRouteSpec{ParentRefs: []gatewayv1.ParentReference{{Name: kubetest.GatewayName, Namespace: &gwNS}}},
				Rules: []gatewayv1.HTTPRouteRule{{BackendRefs: []gatewayv1.HTTPBackendRef{{BackendRef: gatewayv1.BackendRef{
					BackendObjectReference: gatewayv1.BackendObjectReference{Name: gatewayv1.ObjectName(backend), Port: ptr(gatewayv1.PortNumber(8080))},
					Weight:                 ptr(int32(100)),
				}}}}},
			},
		}
	}
	routes := c.Gateway.GatewayV1().HTTPRoutes(ns)
	for _, r := range []*gatewayv1.HTTPRoute{route("shop", "shop"), route("broken", "missing")} {
		if _, err := routes.Create(ctx, r, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	waitConds := func(name string, want map[string]metav1.ConditionStatus) *gatewayv1.HTTPRoute {
		t.Helper()
		var r *gatewayv1.HTTPRoute
		err := wait.PollUntilContextCancel(ctx, 20*time.Millisecond, true, func(ctx context.Context) (bool, error) {
			var err error
			r, err = routes.Get(ctx, name, metav1.GetOptions{})
			if err != nil || len(r.Status.Parents) != 1 {
				return false, err
			}
			p := r.Status.Parents[0]
			for typ, st := range want {
				cnd := meta.FindStatusCondition(p.Conditions, typ)
				if cnd == nil || cnd.Status != st || cnd.ObservedGeneration != r.Generation {
					return false, nil
				}
			}
			return p.ControllerName == kubetest.GatewayControllerName, nil
		})
		if err != nil {
			t.Fatalf("route %s: conditions %v not reached: %v; status %+v", name, want, err, r.Status)
		}
		return r
	}
	waitConds("shop", map[string]metav1.ConditionStatus{"Accepted": metav1.ConditionTrue, "ResolvedRefs": metav1.ConditionTrue})
	broken := waitConds("broken", map[string]metav1.ConditionStatus{"Accepted": metav1.ConditionTrue, "ResolvedRefs": metav1.ConditionFalse})
	if r := meta.FindStatusCondition(broken.Status.Parents[0].Conditions, "ResolvedRefs").Reason; r != "BackendNotFound" {
		t.Errorf("broken route's ResolvedRefs reason %q, want BackendNotFound", r)
	}
	// Creating the missing Service resolves the route, and a new generation
	// of the route is observed.
	svc.Name = "missing"
	if _, err := c.Clientset.CoreV1().Services(ns).Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitConds("broken", map[string]metav1.ConditionStatus{"Accepted": metav1.ConditionTrue, "ResolvedRefs": metav1.ConditionTrue})
	r, err := routes.Get(ctx, "shop", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	r.Spec.Rules[0].BackendRefs[0].Weight = ptr(int32(50))
	if _, err := routes.Update(ctx, r, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if got := waitConds("shop", map[string]metav1.ConditionStatus{"Accepted": metav1.ConditionTrue}); got.Generation != r.Generation+1 {
		t.Errorf("generation %d after an update of %d", got.Generation, r.Generation)
	}
}

// A backend in another namespace is RefNotPermitted until a ReferenceGrant
// there allows it, as the Gateway API says (the stand-in controller, NO
// DATA PLANE).
func TestSmoke_HTTPRouteCrossNamespaceNeedsReferenceGrant(t *testing.T) {
	c := kubetest.Shared(t)
	ns, other := c.Namespace(t), c.Namespace(t)
	ctx := ctx(t)
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "shop"}, Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Port: 8080}}}}
	if _, err := c.Clientset.CoreV1().Services(other).Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	gwNS, otherNS := gatewayv1.Namespace(kubetest.GatewayNamespace), gatewayv1.Namespace(other)
	route := &gatewayv1.HTTPRoute{
		ObjectMeta: metav1.ObjectMeta{Name: "shop"},
		Spec: gatewayv1.HTTPRouteSpec{
			CommonRouteSpec: gatewayv1.CommonRouteSpec{ParentRefs: []gatewayv1.ParentReference{{Name: kubetest.GatewayName, Namespace: &gwNS}}},
			Rules: []gatewayv1.HTTPRouteRule{{BackendRefs: []gatewayv1.HTTPBackendRef{{BackendRef: gatewayv1.BackendRef{
				BackendObjectReference: gatewayv1.BackendObjectReference{Name: "shop", Namespace: &otherNS, Port: ptr(gatewayv1.PortNumber(8080))}}}}}},
		},
	}
	if _, err := c.Gateway.GatewayV1().HTTPRoutes(ns).Create(ctx, route, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	resolved := func(status metav1.ConditionStatus, reason string) {
		t.Helper()
		var got *metav1.Condition
		err := wait.PollUntilContextCancel(ctx, 20*time.Millisecond, true, func(ctx context.Context) (bool, error) {
			r, err := c.Gateway.GatewayV1().HTTPRoutes(ns).Get(ctx, "shop", metav1.GetOptions{})
			if err != nil || len(r.Status.Parents) != 1 {
				return false, err
			}
			got = meta.FindStatusCondition(r.Status.Parents[0].Conditions, "ResolvedRefs")
			return got != nil && got.Status == status && got.Reason == reason, nil
		})
		if err != nil {
			t.Fatalf("ResolvedRefs never %s/%s (last %+v): %v", status, reason, got, err)
		}
	}
	resolved(metav1.ConditionFalse, "RefNotPermitted")
	grant := &gatewayv1.ReferenceGrant{
		ObjectMeta: metav1.ObjectMeta{Name: "from-" + ns},
		Spec: gatewayv1.ReferenceGrantSpec{
			From: []gatewayv1.ReferenceGrantFrom{{Group: gatewayv1.GroupName, Kind: "HTTPRoute", Namespace: gatewayv1.Namespace(ns)}},
			To:   []gatewayv1.ReferenceGrantTo{{Group: "", Kind: "Service"}},
		},
	}
	if _, err := c.Gateway.GatewayV1().ReferenceGrants(other).Create(ctx, grant, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	resolved(metav1.ConditionTrue, "ResolvedRefs")
}

// A least-privilege ServiceAccount may do exactly what its Role grants:
// RBAC is really enforced by this API server.
func TestSmoke_LeastPrivilegeRefused(t *testing.T) {
	c := kubetest.Shared(t)
	ns, other := c.Namespace(t), c.Namespace(t)
	ctx := ctx(t)
	cfg := c.ServiceAccountConfig(t, ns, "reader", kubetest.Grant{Namespace: ns, Rules: []rbacv1.PolicyRule{{
		APIGroups: []string{"apps"}, Resources: []string{"deployments"}, Verbs: []string{"get", "list", "watch"}}}})
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cs.AppsV1().Deployments(ns).List(ctx, metav1.ListOptions{}); err != nil {
		t.Fatalf("granted list of deployments in %s refused: %v", ns, err)
	}
	forbidden := map[string]error{}
	_, forbidden["create deployment"] = cs.AppsV1().Deployments(ns).Create(ctx, deployment("x", "registry.example/x:v1", 1), metav1.CreateOptions{})
	_, forbidden["list deployments in another namespace"] = cs.AppsV1().Deployments(other).List(ctx, metav1.ListOptions{})
	_, forbidden["list secrets"] = cs.CoreV1().Secrets(ns).List(ctx, metav1.ListOptions{})
	_, forbidden["list nodes"] = cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	for what, err := range forbidden {
		if !apierrors.IsForbidden(err) {
			t.Errorf("%s: %v, want Forbidden", what, err)
		}
	}
	// The same identity through a kubeconfig file, with kubectl.
	kc, err := c.WriteKubeconfig("reader", cfg)
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(filepath.Join(c.BinDir, "kubectl"), "--kubeconfig", kc, "auth", "can-i", "delete", "deployments", "-n", ns).CombinedOutput()
	if err == nil || strings.TrimSpace(string(out)) != "no" {
		t.Errorf("kubectl auth can-i delete deployments as reader: %q (err %v), want no", out, err)
	}
}

// A pod whose image is under kubetest.UnpullableRegistry is simulated as
// ImagePullBackOff, one under kubetest.CrashingRegistry as CrashLoopBackOff
// (kubetest's kwok stages), and stays so: the Deployment never becomes
// Available.
func TestSmoke_FailingImages(t *testing.T) {
	for _, tc := range []struct {
		image, reason string
		phase         corev1.PodPhase
	}{
		{kubetest.UnpullableRegistry + "/shop:v3", "ImagePullBackOff", corev1.PodPending},
		{kubetest.CrashingRegistry + "/shop:v3", "CrashLoopBackOff", corev1.PodRunning},
	} {
		t.Run(tc.reason, func(t *testing.T) {
			c := kubetest.Shared(t)
			ns := c.Namespace(t)
			ctx := ctx(t)
			if _, err := c.Clientset.AppsV1().Deployments(ns).Create(ctx, deployment("bad", tc.image, 1), metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
			var reason string
			err := wait.PollUntilContextCancel(ctx, 20*time.Millisecond, true, func(ctx context.Context) (bool, error) {
				pods, err := c.Clientset.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=bad"})
				if err != nil || len(pods.Items) != 1 || len(pods.Items[0].Status.ContainerStatuses) != 1 {
					return false, err
				}
				if w := pods.Items[0].Status.ContainerStatuses[0].State.Waiting; w != nil {
					reason = w.Reason
				}
				return reason == tc.reason, nil
			})
			if err != nil {
				t.Fatalf("no %s (last reason %q): %v", tc.reason, reason, err)
			}
			time.Sleep(2 * time.Second) // kwok's pod-ready stage must not win later
			d, err := c.Clientset.AppsV1().Deployments(ns).Get(ctx, "bad", metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if available(d) || d.Status.ReadyReplicas != 0 {
				t.Errorf("deployment of a failing image: available %v, %d ready", available(d), d.Status.ReadyReplicas)
			}
			pods, err := c.Clientset.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=bad"})
			if err != nil {
				t.Fatal(err)
			}
			p := pods.Items[0]
			if w := p.Status.ContainerStatuses[0].State.Waiting; w == nil || w.Reason != tc.reason || p.Status.Phase != tc.phase {
				t.Errorf("pod no longer %s/%s after 2s: %+v", tc.phase, tc.reason, p.Status)
			}
		})
	}
}

// SetPodReady turns a simulated pod unready, as a failing readiness probe
// would, and the Deployment's ready count follows.
func TestSmoke_SetPodReady(t *testing.T) {
	c := kubetest.Shared(t)
	ns := c.Namespace(t)
	ctx := ctx(t)
	if _, err := c.Clientset.AppsV1().Deployments(ns).Create(ctx, deployment("shop", "registry.example/shop:v1", 1), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	readyReplicas := func(want int32) {
		t.Helper()
		if err := wait.PollUntilContextCancel(ctx, 20*time.Millisecond, true, func(ctx context.Context) (bool, error) {
			d, err := c.Clientset.AppsV1().Deployments(ns).Get(ctx, "shop", metav1.GetOptions{})
			return err == nil && d.Status.ReadyReplicas == want, err
		}); err != nil {
			t.Fatalf("ready replicas never %d: %v", want, err)
		}
	}
	readyReplicas(1)
	pods, err := c.Clientset.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=shop"})
	if err != nil || len(pods.Items) != 1 {
		t.Fatalf("pods: %v %v", pods, err)
	}
	if _, err := c.SetPodReady(ctx, ns, pods.Items[0].Name, false); err != nil {
		t.Fatal(err)
	}
	readyReplicas(0)
}

// A cluster of a test's own starts and stops without leaving a process.
func TestStart_StopLeavesNoProcess(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a second control plane")
	}
	c := kubetest.Start(t, kubetest.Options{Nodes: 1})
	t.Logf("second cluster started in %s", c.StartTime.Round(time.Millisecond))
	pids := c.Pids()
	if len(pids) != 5 {
		t.Fatalf("%d processes, want etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kwok", len(pids))
	}
	var rssKiB int
	for _, pid := range pids {
		b, _ := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "status"))
		for line := range strings.Lines(string(b)) {
			if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
				kib, _ := strconv.Atoi(f[1])
				rssKiB += kib
			}
		}
	}
	t.Logf("control plane resident: %d MiB", rssKiB/1024)
	c.Stop()
	for name, pid := range pids {
		if err := syscall.Kill(-pid, 0); err == nil || err != syscall.ESRCH {
			t.Errorf("%s's process group %d still exists after Stop (kill: %v)", name, pid, err)
		}
	}
}

func ptr[T any](v T) *T { return &v }
