package kubernetes_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
	gwclient "sigs.k8s.io/gateway-api/pkg/client/clientset/versioned"
	"sigs.k8s.io/yaml"

	"github.com/shipgate/shipgate/internal/gatewayapi"
	kube "github.com/shipgate/shipgate/internal/kubernetes"
	"github.com/shipgate/shipgate/internal/kubetest"
	"github.com/shipgate/shipgate/internal/rollout"
)

// These tests run the Kubernetes runtime and the Gateway API router against
// a real kube-apiserver, controller manager and scheduler (kubetest). Two
// things are NOT real, because they cannot run on the test machines:
// pods are SIMULATED by kwok (no container runs, so no pod has logs), and
// HTTPRoute status is written by kubetest's stand-in gateway controller
// (NO DATA PLANE routes a request).

func TestMain(m *testing.M) { os.Exit(kubetest.Main(m)) }

const port = 8080

// env is one environment of the app "shop" on the cluster: the runtime,
// the router and the prober, as the server builds them.
type env struct {
	t       *testing.T
	ns      string
	cs      kubernetes.Interface
	gw      gwclient.Interface
	runtime *kube.Runtime
	router  *gatewayapi.Router
	prober  *kube.Prober
	changes []string
	mu      sync.Mutex
}

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// baseDeployment is the team's own Deployment that Shipgate adopts: its
// pod template is the base of every release.
func baseDeployment(ns string) *appsv1.Deployment {
	one := int32(1)
	labels := map[string]string{"app": "shop"}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "shop", Namespace: ns},
		Spec: appsv1.DeploymentSpec{
			Replicas: &one,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{
					Name: "app", Image: "registry.example/shop:v1",
					Env:   []corev1.EnvVar{{Name: "LOG_LEVEL", Value: "info"}, {Name: "FEATURE", Value: "old"}},
					Ports: []corev1.ContainerPort{{ContainerPort: port}},
				}}},
			},
		},
	}
}

func newEnv(t *testing.T, c *kubetest.Cluster, ns string, cfg *rest.Config, p int) *env {
	t.Helper()
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	gw, err := gwclient.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, ns: ns, cs: cs, gw: gw}
	onChange := func(_ context.Context, what string) {
		e.mu.Lock()
		defer e.mu.Unlock()
		e.changes = append(e.changes, what)
	}
	e.runtime, err = kube.New(cs, kube.Config{Namespace: ns, Deployment: "shop", ServicePort: p, OnChange: onChange})
	if err != nil {
		t.Fatal(err)
	}
	e.router, err = gatewayapi.New(gw, gatewayapi.Config{Namespace: ns, Route: "shop", Gateway: kubetest.GatewayName,
		GatewayNamespace: kubetest.GatewayNamespace, Base: "shop", ServicePort: p, App: "shop", Env: "production", OnChange: onChange})
	if err != nil {
		t.Fatal(err)
	}
	e.prober, err = kube.NewProber(cfg, ns)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func spec(version, image string, n int) rollout.InstanceSpec {
	return rollout.InstanceSpec{App: "shop", Env: "production", Version: version, Image: image, Count: n,
		Environ: map[string]string{"FEATURE": "new", "VERSION": version}, StartTimeout: 60 * time.Second}
}

func (e *env) ensure(ctx context.Context, s rollout.InstanceSpec) []rollout.Instance {
	e.t.Helper()
	insts, err := e.runtime.Ensure(ctx, s)
	if err != nil {
		e.t.Fatalf("Ensure %s: %v", s.Version, err)
	}
	if len(insts) != s.Count {
		e.t.Fatalf("Ensure %s: %d instances, want %d", s.Version, len(insts), s.Count)
	}
	return insts
}

// route sets the routes and waits until the gateway controller confirms
// them, as the engine does before a bake.
func (e *env) route(ctx context.Context, r rollout.Routes) {
	e.t.Helper()
	if err := e.router.SetRoutes(ctx, r); err != nil {
		e.t.Fatal(err)
	}
	err := wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, 20*time.Second, true, func(ctx context.Context) (bool, error) {
		err := e.router.VerifyRoutes(ctx, r)
		if errors.Is(err, rollout.ErrNotReady) {
			return false, nil
		}
		return err == nil, err
	})
	if err != nil {
		e.t.Fatalf("VerifyRoutes %+v: %v", r, err)
	}
}

// weights reads the route back from the API server.
func (e *env) weights(ctx context.Context) map[string]int32 {
	e.t.Helper()
	r, err := e.gw.GatewayV1().HTTPRoutes(e.ns).Get(ctx, "shop", metav1.GetOptions{})
	if err != nil {
		e.t.Fatal(err)
	}
	return e.router.Weights(r)
}

func (e *env) deployment(ctx context.Context, name string) *appsv1.Deployment {
	e.t.Helper()
	d, err := e.cs.AppsV1().Deployments(e.ns).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		e.t.Fatal(err)
	}
	return d
}

func (e *env) gone(ctx context.Context, name string) {
	e.t.Helper()
	if d := e.deployment(ctx, name); d != nil {
		e.t.Errorf("Deployment %s is still there (%d replicas)", name, *d.Spec.Replicas)
	}
	if _, err := e.cs.CoreV1().Services(e.ns).Get(ctx, name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		e.t.Errorf("Service %s: %v, want it gone", name, err)
	}
}

// canary runs a whole canary of v2 over v1 through the adapters, step by
// step as the engine's plan does, and checks the cluster after each step.
func canary(ctx context.Context, t *testing.T, e *env) {
	base, err := e.cs.AppsV1().Deployments(e.ns).Get(ctx, "shop", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	e.ensure(ctx, spec("v1", "registry.example/shop:v1", 2))
	e.route(ctx, rollout.Routes{Stable: rollout.Backend{Version: "v1"}})
	if got := e.weights(ctx); !equalWeights(got, map[string]int32{"shop-v1": 100}) {
		t.Fatalf("v1 live: weights %v", got)
	}

	insts := e.ensure(ctx, spec("v2", "registry.example/shop:v2", 2))
	if insts[0].Addr != "svc/shop-v2:"+strconv.Itoa(portOf(e)) {
		t.Errorf("instance address %q", insts[0].Addr)
	}
	d := e.deployment(ctx, "shop-v2")
	c := d.Spec.Template.Spec.Containers[0]
	if c.Image != "registry.example/shop:v2" {
		t.Errorf("canary image %q, want the release's", c.Image)
	}
	if got := envOf(c); got["FEATURE"] != "new" || got["LOG_LEVEL"] != "info" || got["VERSION"] != "v2" {
		t.Errorf("canary env %v: want the base template's with the release's variables over it", got)
	}
	for k, v := range map[string]string{"app.kubernetes.io/managed-by": "shipgate", "shipgate.dev/app": "shop", "shipgate.dev/env": "production", "shipgate.dev/version": "v2"} {
		if d.Labels[k] != v || d.Spec.Template.Labels[k] != v {
			t.Errorf("label %s: Deployment %q, pods %q, want %q", k, d.Labels[k], d.Spec.Template.Labels[k], v)
		}
	}
	if d.Spec.Template.Labels["app"] != "shop" {
		t.Errorf("the base template's own labels are lost: %v", d.Spec.Template.Labels)
	}

	plan := []int{5, 25, 50, 100}
	for _, w := range plan {
		e.route(ctx, rollout.Routes{Stable: rollout.Backend{Version: "v1"}, Canary: rollout.Backend{Version: "v2"}, Weight: w})
		want := map[string]int32{"shop-v1": int32(100 - w), "shop-v2": int32(w)}
		if got := e.weights(ctx); !equalWeights(got, want) {
			t.Errorf("step %d%%: weights read back %v, want %v", w, got, want)
		}
	}
	// Promote: the canary's Deployment becomes the stable one, the old one
	// is scaled down and removed.
	e.route(ctx, rollout.Routes{Stable: rollout.Backend{Version: "v2"}})
	if got := e.weights(ctx); !equalWeights(got, map[string]int32{"shop-v2": 100}) {
		t.Errorf("promoted: weights %v", got)
	}
	if err := e.runtime.Remove(ctx, rollout.ReleaseRef{App: "shop", Env: "production", Version: "v1"}); err != nil {
		t.Fatal(err)
	}
	e.gone(ctx, "shop-v1")
	if obs, err := e.runtime.Observe(ctx, rollout.ReleaseRef{App: "shop", Env: "production", Version: "v2"}); err != nil || len(obs) != 2 || obs[0].Status.State != rollout.InstanceRunning {
		t.Errorf("Observe v2: %+v, %v; want 2 running", obs, err)
	}
	after, err := e.cs.AppsV1().Deployments(e.ns).Get(ctx, "shop", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if after.ResourceVersion != base.ResourceVersion && after.Generation != base.Generation {
		t.Errorf("the adopted Deployment was changed (generation %d -> %d)", base.Generation, after.Generation)
	}
}

func portOf(e *env) int {
	a := e.runtime.Addr("x")
	n, _ := strconv.Atoi(a[strings.LastIndexByte(a, ':')+1:])
	return n
}

func envOf(c corev1.Container) map[string]string {
	m := map[string]string{}
	for _, e := range c.Env {
		m[e.Name] = e.Value
	}
	return m
}

func equalWeights(a, b map[string]int32) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func setup(t *testing.T) (*kubetest.Cluster, string, context.Context) {
	c := kubetest.Shared(t)
	ns := c.Namespace(t)
	ctx := ctxT(t, 3*time.Minute)
	if _, err := c.Clientset.AppsV1().Deployments(ns).Create(ctx, baseDeployment(ns), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	return c, ns, ctx
}

// A healthy v2 goes through every step of the plan; the HTTPRoute read back
// from the API server holds each step's weights; the old release's
// Deployment and Service are gone at the end; the adopted Deployment was
// not touched.
func TestRuntime_CanaryPromoted(t *testing.T) {
	c, ns, ctx := setup(t)
	e := newEnv(t, c, ns, c.Config, port)
	canary(ctx, t, e)
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, want := range []string{"created Deployment " + ns + "/shop-v2", "created Service " + ns + "/shop-v2", "created HTTPRoute " + ns + "/shop", "scaled Deployment " + ns + "/shop-v1 from 2 to 0", "deleted Deployment " + ns + "/shop-v1"} {
		if !slices.ContainsFunc(e.changes, func(s string) bool { return strings.HasPrefix(s, want) }) {
			t.Errorf("no change reported for the audit log starts with %q; got:\n%s", want, strings.Join(e.changes, "\n"))
		}
	}
}

// The same scenario as a ServiceAccount that has exactly the Role shipped
// in docs/kubernetes-rbac.yaml: the documented least privilege is enough.
func TestLeastPrivilege(t *testing.T) {
	c, ns, ctx := setup(t)
	data, err := os.ReadFile("../../docs/kubernetes-rbac.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var role rbacv1.Role
	if err := yaml.Unmarshal([]byte(strings.Split(string(data), "\n---\n")[0]), &role); err != nil {
		t.Fatal(err)
	}
	if len(role.Rules) == 0 {
		t.Fatal("docs/kubernetes-rbac.yaml has no rules")
	}
	cfg := c.ServiceAccountConfig(t, ns, "shipgate", kubetest.Grant{Namespace: ns, Rules: role.Rules})
	e := newEnv(t, c, ns, cfg, port)
	canary(ctx, t, e)
	// And nothing more: the server cannot read Secrets or touch another
	// namespace.
	if _, err := e.cs.CoreV1().Secrets(ns).List(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("list secrets: %v, want forbidden", err)
	}
	if _, err := e.cs.AppsV1().Deployments("default").List(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("list deployments in default: %v, want forbidden", err)
	}
}

// Rolling back a canary moves all traffic to stable before the canary is
// scaled to zero: the order is read from watch events of the HTTPRoute and
// the Deployment, which the API server delivers in etcd revision order.
func TestRuntime_RollbackOrder(t *testing.T) {
	c, ns, ctx := setup(t)
	e := newEnv(t, c, ns, c.Config, port)
	e.ensure(ctx, spec("v1", "registry.example/shop:v1", 2))
	e.ensure(ctx, spec("v3", "registry.example/shop:v3", 1))
	routes := rollout.Routes{Stable: rollout.Backend{Version: "v1"}, Canary: rollout.Backend{Version: "v3"}, Weight: 25}
	e.route(ctx, routes)

	events := watchOrder(ctx, t, e)
	// What the engine does on a failed gate: traffic first, then the canary.
	e.route(ctx, rollout.Routes{Stable: rollout.Backend{Version: "v1"}})
	if err := e.runtime.Remove(ctx, rollout.ReleaseRef{App: "shop", Env: "production", Version: "v3"}); err != nil {
		t.Fatal(err)
	}
	e.gone(ctx, "shop-v3")
	got := events("route:shop-v1=100", "deployment:shop-v3=0")
	stableAt, zeroAt := -1, -1
	for i, ev := range got {
		if ev == "route:shop-v1=100" && stableAt < 0 {
			stableAt = i
		}
		if ev == "deployment:shop-v3=0" && zeroAt < 0 {
			zeroAt = i
		}
	}
	if stableAt < 0 || zeroAt < 0 || stableAt > zeroAt {
		t.Errorf("events %v: want the route at 100%% stable before shop-v3 at 0 replicas", got)
	}
}

// watchOrder records, in the API server's order, the weights of the route
// and the replicas of the Deployments. The function it returns waits until
// every event in want has arrived (watch events come after the writes the
// test already saw), then stops watching.
func watchOrder(ctx context.Context, t *testing.T, e *env) func(want ...string) []string {
	t.Helper()
	rw, err := e.gw.GatewayV1().HTTPRoutes(e.ns).Watch(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	dw, err := e.cs.AppsV1().Deployments(e.ns).Watch(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	type ev struct {
		rv   int64
		what string
	}
	var mu sync.Mutex
	var got []ev
	var wg sync.WaitGroup
	collect := func(w watch.Interface, f func(watch.Event) string) {
		defer wg.Done()
		for x := range w.ResultChan() {
			if x.Type == watch.Bookmark || x.Type == watch.Error {
				continue
			}
			m, err := metaOf(x.Object)
			if err != nil {
				continue
			}
			rv, _ := strconv.ParseInt(m.GetResourceVersion(), 10, 64)
			if s := f(x); s != "" {
				mu.Lock()
				got = append(got, ev{rv, s})
				mu.Unlock()
			}
		}
	}
	wg.Add(2)
	go collect(rw, func(x watch.Event) string {
		r, ok := x.Object.(*gwv1.HTTPRoute)
		if !ok {
			return ""
		}
		var parts []string
		for k, v := range e.router.Weights(r) {
			parts = append(parts, fmt.Sprintf("%s=%d", k, v))
		}
		slices.Sort(parts)
		return "route:" + strings.Join(parts, ",")
	})
	go collect(dw, func(x watch.Event) string {
		d, ok := x.Object.(*appsv1.Deployment)
		if !ok || d.Name == "shop" {
			return ""
		}
		return fmt.Sprintf("deployment:%s=%d", d.Name, *d.Spec.Replicas)
	})
	return func(want ...string) []string {
		for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			mu.Lock()
			missing := slices.DeleteFunc(slices.Clone(want), func(w string) bool {
				return slices.ContainsFunc(got, func(g ev) bool { return g.what == w })
			})
			mu.Unlock()
			if len(missing) == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Errorf("no watch event %q within 20s", missing)
				break
			}
		}
		rw.Stop()
		dw.Stop()
		wg.Wait()
		// Two watches: order their events by resourceVersion, which is
		// the etcd revision of one etcd here.
		slices.SortStableFunc(got, func(a, b ev) int { return int(a.rv - b.rv) })
		out := make([]string, len(got))
		for i, g := range got {
			out[i] = g.what
		}
		return out
	}
}

func metaOf(o any) (metav1.Object, error) {
	m, ok := o.(metav1.Object)
	if !ok {
		return nil, errors.New("no metadata")
	}
	return m, nil
}

// A release whose image cannot be pulled fails its start with
// ImagePullBackOff, well within the start timeout, leaves nothing behind,
// and the route never names it. kubetest makes kwok fake ImagePullBackOff
// for images under its unpullable registry, and CrashLoopBackOff under its
// crashing one.
func TestRuntime_EnsureFails(t *testing.T) {
	c, ns, ctx := setup(t)
	e := newEnv(t, c, ns, c.Config, port)
	e.ensure(ctx, spec("v1", "registry.example/shop:v1", 1))
	e.route(ctx, rollout.Routes{Stable: rollout.Backend{Version: "v1"}})
	for _, tt := range []struct {
		version, image, want string
	}{
		{"v4", kubetest.UnpullableRegistry + "/shop:v4", "ImagePullBackOff"},
		{"v5", kubetest.CrashingRegistry + "/shop:v5", "CrashLoopBackOff"},
	} {
		t.Run(tt.want, func(t *testing.T) {
			s := spec(tt.version, tt.image, 2)
			start := time.Now()
			_, err := e.runtime.Ensure(ctx, s)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Ensure: %v, want an error naming %s", err, tt.want)
			}
			if !strings.Contains(err.Error(), "last log lines of pod") {
				t.Errorf("the error does not say what became of the pod's logs: %v", err)
			}
			if took := time.Since(start); took > s.StartTimeout {
				t.Errorf("took %s, longer than the start timeout", took)
			}
			t.Logf("Ensure failed after %s: %v", time.Since(start).Round(time.Millisecond), err)
			e.gone(ctx, "shop-"+tt.version)
			if w := e.weights(ctx); !equalWeights(w, map[string]int32{"shop-v1": 100}) {
				t.Errorf("weights %v: something routes to the failed release", w)
			}
		})
	}
}

// A pod no node can take is reported as Unschedulable when the start
// timeout ends.
func TestRuntime_Unschedulable(t *testing.T) {
	c := kubetest.Shared(t)
	ns := c.Namespace(t)
	ctx := ctxT(t, time.Minute)
	tmpl := baseDeployment(ns).Spec.Template
	tmpl.Spec.NodeSelector = map[string]string{"disk": "ssd"}
	rt, err := kube.New(c.Clientset, kube.Config{Namespace: ns, Template: &tmpl, Base: "shop", ServicePort: port})
	if err != nil {
		t.Fatal(err)
	}
	s := spec("v6", "registry.example/shop:v6", 1)
	s.StartTimeout = 3 * time.Second
	_, err = rt.Ensure(ctx, s)
	if err == nil || !strings.Contains(err.Error(), "Unschedulable") || !strings.Contains(err.Error(), "not available within 3s") {
		t.Fatalf("Ensure: %v, want not available within 3s, Unschedulable", err)
	}
	if d, err := c.Clientset.AppsV1().Deployments(ns).Get(ctx, "shop-v6", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("Deployment shop-v6 left behind: %v %v", d.Name, err)
	}
}

// A server that restarts has a new Runtime with nothing in memory: it finds
// the releases by their labels, and ensuring one again changes nothing and
// duplicates nothing.
func TestRuntime_Readopt(t *testing.T) {
	c, ns, ctx := setup(t)
	first := newEnv(t, c, ns, c.Config, port)
	first.ensure(ctx, spec("v1", "registry.example/shop:v1", 2))
	first.ensure(ctx, spec("v2", "registry.example/shop:v2", 1))
	internal := rollout.Routes{Stable: rollout.Backend{Version: "v1"}, Canary: rollout.Backend{Version: "v2"}, Match: &rollout.Match{Header: "X-Internal", Values: []string{"1"}}}
	first.route(ctx, internal)
	before := first.deployment(ctx, "shop-v1")

	second := newEnv(t, c, ns, c.Config, port) // the restarted server
	vs, err := second.runtime.Releases(ctx, "shop", "production")
	if err != nil || !slices.Equal(vs, []string{"v1", "v2"}) {
		t.Fatalf("Releases: %v, %v; want [v1 v2]", vs, err)
	}
	second.ensure(ctx, spec("v1", "registry.example/shop:v1", 2))
	after := second.deployment(ctx, "shop-v1")
	if after.UID != before.UID || after.Generation != before.Generation {
		t.Errorf("Deployment shop-v1 replaced or changed: uid %s -> %s, generation %d -> %d", before.UID, after.UID, before.Generation, after.Generation)
	}
	all, err := c.Clientset.AppsV1().Deployments(ns).List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/managed-by=shipgate"})
	if err != nil || len(all.Items) != 2 {
		t.Errorf("Shipgate's Deployments: %d, %v; want 2", len(all.Items), err)
	}
	second.route(ctx, internal) // the engine re-applies the routes of the step it resumes
	r, err := second.gw.GatewayV1().HTTPRoutes(ns).Get(ctx, "shop", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, rule := range r.Spec.Rules {
		names = append(names, string(*rule.Name))
	}
	if want := []string{"shipgate-production-internal", "shipgate-production-main"}; !slices.Equal(names, want) {
		t.Errorf("route rules after the restart %v, want %v (the header rule once, no duplicates)", names, want)
	}
}

// Objects that are not Shipgate's are never changed, even when their name
// is the one Shipgate would give a release.
func TestRuntime_NotOwned(t *testing.T) {
	c, ns, ctx := setup(t)
	e := newEnv(t, c, ns, c.Config, port)
	theirs := baseDeployment(ns)
	theirs.Name = "shop-v7"
	if _, err := c.Clientset.AppsV1().Deployments(ns).Create(ctx, theirs, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.runtime.Ensure(ctx, spec("v7", "registry.example/shop:v7", 1)); err == nil || !strings.Contains(err.Error(), "is not Shipgate's") {
		t.Errorf("Ensure over a Deployment that is not Shipgate's: %v", err)
	}
	if err := e.runtime.Remove(ctx, rollout.ReleaseRef{App: "shop", Env: "production", Version: "v7"}); err == nil {
		t.Error("Remove of a Deployment that is not Shipgate's succeeded")
	}
	if d := e.deployment(ctx, "shop-v7"); d == nil || d.Generation != 1 || d.Spec.Template.Spec.Containers[0].Image != "registry.example/shop:v1" {
		t.Errorf("their Deployment was changed: %+v", d)
	}
}

// Smoke checks reach a release through the API server's service proxy.
// Pods are simulated: the test gives the pod this machine's address as its
// IP (the API server does not proxy to loopback) and serves the app there
// itself.
func TestProber_ServiceProxy(t *testing.T) {
	c := kubetest.Shared(t)
	ns := c.Namespace(t)
	ctx := ctxT(t, time.Minute)
	ip := hostIP(t)
	ln, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		t.Skipf("cannot listen on %s: %v", ip, err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" {
			_, _ = w.Write([]byte("ok v1"))
			return
		}
		http.Error(w, "broken", http.StatusInternalServerError)
	}), ReadHeaderTimeout: time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	p := ln.Addr().(*net.TCPAddr).Port
	if _, err := c.Clientset.AppsV1().Deployments(ns).Create(ctx, baseDeployment(ns), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, c, ns, c.Config, p)
	insts := e.ensure(ctx, spec("v1", "registry.example/shop:v1", 1))
	if _, err := c.SetPodStatus(ctx, ns, insts[0].ID, func(s *corev1.PodStatus) {
		s.PodIP, s.PodIPs = ip, []corev1.PodIP{{IP: ip}}
	}); err != nil {
		t.Fatal(err)
	}
	check := rollout.SmokeCheck{Path: "/healthz", ExpectBody: "v1", Timeout: 2 * time.Second}
	err = wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 20*time.Second, true, func(ctx context.Context) (bool, error) {
		err := e.prober.Probe(ctx, insts[0].Addr, check)
		if err != nil {
			t.Logf("probe: %v", err)
		}
		return err == nil, nil
	})
	if err != nil {
		t.Fatalf("the smoke check never passed through the service proxy")
	}
	err = e.prober.Probe(ctx, insts[0].Addr, rollout.SmokeCheck{Path: "/pay"})
	if err == nil || !strings.Contains(err.Error(), `expected status 200, got 500`) || !strings.Contains(err.Error(), "broken") {
		t.Errorf("failing check: %v", err)
	}
	if err := e.prober.Probe(ctx, "10.0.0.1:8080", check); err == nil || !strings.Contains(err.Error(), "svc/NAME:PORT") {
		t.Errorf("bad address: %v", err)
	}
}

// hostIP is an address of this machine that is not loopback.
func hostIP(t *testing.T) string {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil && !n.IP.IsLoopback() && !n.IP.IsLinkLocalUnicast() {
			return n.IP.String()
		}
	}
	t.Skip("no non-loopback IPv4 address to serve the simulated pod on")
	return ""
}

// TestRuntime_Container: with a pod template of two containers (the app
// and a sidecar), the runtime never guesses which one runs the release's
// image: without kubernetes.container Ensure fails naming the field and
// creates nothing; with it, exactly that container gets the image and the
// variables, and the sidecar is left as the template has it.
func TestRuntime_Container(t *testing.T) {
	c := kubetest.Shared(t)
	ns := c.Namespace(t)
	ctx := ctxT(t, 2*time.Minute)
	tmpl := &corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "shop"}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{
			{Name: "proxy", Image: "registry.example/envoy:1.31", Env: []corev1.EnvVar{{Name: "ROLE", Value: "sidecar"}}},
			{Name: "app", Image: "registry.example/shop:v0", Ports: []corev1.ContainerPort{{ContainerPort: port}}},
		}},
	}
	ambiguous, err := kube.New(c.Clientset, kube.Config{Namespace: ns, Template: tmpl, Base: "shop", ServicePort: port})
	if err != nil {
		t.Fatal(err)
	}
	_, err = ambiguous.Ensure(ctx, spec("v1", "registry.example/shop:v1", 1))
	if err == nil || !strings.Contains(err.Error(), "kubernetes.container") || !strings.Contains(err.Error(), "proxy, app") {
		t.Fatalf("Ensure with two containers and no kubernetes.container: %v, want an error naming the field and the containers", err)
	}
	e := &env{t: t, ns: ns, cs: c.Clientset}
	e.gone(ctx, "shop-v1")

	named, err := kube.New(c.Clientset, kube.Config{Namespace: ns, Template: tmpl, Base: "shop", ServicePort: port, Container: "app"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := named.Ensure(ctx, spec("v1", "registry.example/shop:v1", 1)); err != nil {
		t.Fatal(err)
	}
	d := e.deployment(ctx, "shop-v1")
	if d == nil {
		t.Fatal("no Deployment shop-v1")
	}
	got := map[string]corev1.Container{}
	for _, c := range d.Spec.Template.Spec.Containers {
		got[c.Name] = c
	}
	if img := got["app"].Image; img != "registry.example/shop:v1" {
		t.Errorf("app's image = %s, want the release's registry.example/shop:v1", img)
	}
	if env := envOf(got["app"]); env["FEATURE"] != "new" || env["PORT"] != fmt.Sprint(port) {
		t.Errorf("app's env = %v, want the release's variables and PORT", env)
	}
	if p := got["proxy"]; p.Image != "registry.example/envoy:1.31" || !equality.Semantic.DeepEqual(p.Env, tmpl.Spec.Containers[0].Env) {
		t.Errorf("the sidecar was changed: %+v", p)
	}
	if _, err := named.Ensure(ctx, rollout.InstanceSpec{App: "shop", Env: "production", Version: "v1", Count: 0}); err != nil {
		t.Fatal(err)
	}
}
