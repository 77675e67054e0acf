package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/shipgate/shipgate/internal/audit"
	"github.com/shipgate/shipgate/internal/cli"
	"github.com/shipgate/shipgate/internal/config"
	"github.com/shipgate/shipgate/internal/kubetest"
	"github.com/shipgate/shipgate/internal/rollout"
	"github.com/shipgate/shipgate/internal/server"
)

// kubeConfig is a shipgate.yaml whose production runs on Kubernetes.
const kubeConfig = `app: shop
run:
  instances: 2
  start_timeout: 60s
environments:
  production:
    kubernetes:
      namespace: %[1]s
      deployment: shop
      image: registry.example/shop:${VERSION}
      service_port: 8080
      route: {name: shop, gateway: %[2]s, namespace: %[3]s}
    metrics:
      prometheus: {url: %[4]q, namespace: %[1]s}
    smoke: []
    post_smoke: []
strategy:
  canary:
    steps: [{weight: 25, bake: 2s}, {weight: 50, bake: 2s}]
    scale_down_delay: 1s
analysis:
  interval: 500ms
  min_requests: 20
  gates:
    - {metric: error_rate, max: 0.02}
  on_inconclusive: extend
`

// The engine drives a Kubernetes environment through the same ports as
// local processes: a real kube-apiserver, controller manager and scheduler,
// Debian's Prometheus, the Shipgate server in this process. Two parts are
// NOT real and cannot run here: pods are SIMULATED by kwok (no container
// runs), and no gateway data plane routes requests, so kubetest's stand-in
// controller writes the HTTPRoute's status and this test stands in for the
// data plane's metrics: every 50ms it reads the HTTPRoute's weights from
// the API server and counts requests per version accordingly, 40% of
// them failing for v3, in http_requests_total that Prometheus scrapes.
//
// v2 goes through every step (the route read back at each is the plan)
// and is promoted, v1's Deployment removed; v3 is rolled back on
// error_rate, the route at 100% stable before v3's Deployment is scaled
// to zero (watch events, in resourceVersion order). The route is the
// team's own, with a rule and backends of theirs that stay as they were.
func TestE2E_Kubernetes_CanaryAndRollback(t *testing.T) {
	bin := "/usr/bin/prometheus"
	if _, err := os.Stat(bin); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s: %v (CI=true: scripts/deps.sh test installs prometheus)", bin, err)
		}
		t.Skipf("SKIPPED: %s not found (apt-get install prometheus)", bin)
	}
	c := kubetest.Start(t)
	ns := c.Namespace(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	if _, err := c.Clientset.AppsV1().Deployments(ns).Create(ctx, userDeployment(ns), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	userRules := createUserRoute(ctx, t, c, ns)
	dp := startDataPlane(ctx, t, c, ns)
	promDir := t.TempDir()
	targets := filepath.Join(promDir, "targets.json")
	b, _ := json.Marshal([]map[string]any{{"targets": []string{dp.addr}, "labels": map[string]string{"namespace": ns}}})
	if err := os.WriteFile(targets, b, 0o600); err != nil {
		t.Fatal(err)
	}
	promURL, _ := startPrometheusSD(t, bin, promDir, targets)

	cfg, err := config.Parse(filepath.Join(t.TempDir(), "shipgate.yaml"), fmt.Appendf(nil, kubeConfig, ns, kubetest.GatewayName, kubetest.GatewayNamespace, promURL))
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	cp, err := server.Start(ctx, server.Options{Config: cfg, DataDir: t.TempDir(), Listen: "127.0.0.1:0", KubeConfig: c.Config,
		Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = cp.Close(context.Background())
		if t.Failed() {
			t.Logf("server logs:\n%s", logs.String())
		}
	}()
	deploy := func(version string) rollout.Rollout {
		t.Helper()
		r, err := cp.Engine.Deploy(ctx, rollout.DeployRequest{App: "shop", Version: version, Actor: "user:test"})
		if err != nil {
			t.Fatalf("deploy %s: %v", version, err)
		}
		if err := cp.Engine.Wait(ctx, "production"); err != nil {
			t.Fatal(err)
		}
		if r, err = cp.Engine.GetRollout(ctx, r.ID); err != nil {
			t.Fatal(err)
		}
		return r
	}

	if r := deploy("v1"); r.Phase != rollout.PhaseSucceeded {
		t.Fatalf("v1 ended %s: %s", r.Phase, r.Reason)
	}
	time.Sleep(2 * time.Second) // v1 measured a few times: the stable side has data

	rec := recordOrder(ctx, t, c, ns)
	// The issue's own example, through the CLI and the API:
	// shipgate deploy shop v2 --image registry/shop:v2 --wait.
	image := "registry.example/shop@sha256:" + strings.Repeat("2f", 32)
	var out, errOut bytes.Buffer
	code := cli.Main(ctx, []string{"--server", cp.APIURL, "--token", cp.AdminToken, "deploy", "shop", "v2", "--image", image, "--wait", "-o", "json"},
		strings.NewReader(""), &out, &errOut)
	var r2 rollout.Rollout
	// --wait returns once v2 is live (promoted); v1's scale-down follows.
	if err := json.Unmarshal(out.Bytes(), &r2); code != 0 || err != nil || r2.PromotedAt.IsZero() || r2.Image != image {
		t.Fatalf("deploy v2 --image --wait exited %d (%v): %+v\nstderr: %s", code, err, r2, errOut.String())
	}
	if err := cp.Engine.Wait(ctx, "production"); err != nil {
		t.Fatal(err)
	}
	if r, err := cp.Engine.GetRollout(ctx, r2.ID); err != nil || r.Phase != rollout.PhaseSucceeded {
		t.Fatalf("v2 ended %s (%v): %s", r.Phase, err, r.Reason)
	}
	waitGone(ctx, t, c, ns, "shop-v1")
	want := []string{"route:shop-v1=75,shop-v2=25", "route:shop-v1=50,shop-v2=50", "route:shop-v2=100"}
	var wantIs []func(string) bool
	for _, w := range want {
		wantIs = append(wantIs, is(w))
	}
	got := dedupe(filter(rec(wantIs...), "route:"))
	if !isSubsequence(want, got) {
		t.Errorf("route weights read back during v2's rollout %v, want the plan %v in order", got, want)
	}
	t.Logf("route states during v2's rollout: %v", got)
	if d, err := c.Clientset.AppsV1().Deployments(ns).Get(ctx, "shop-v2", metav1.GetOptions{}); err != nil || d.Status.AvailableReplicas != 2 {
		t.Errorf("shop-v2 after promotion: %v", err)
	} else if got := d.Spec.Template.Spec.Containers[0].Image; got != image {
		t.Errorf("shop-v2 runs the image %s, want the deploy's --image %s", got, image)
	}

	dp.fail("v3", 0.4)
	rec = recordOrder(ctx, t, c, ns)
	r := deploy("v3")
	if r.Phase != rollout.PhaseRolledBack || !strings.Contains(r.Reason, "error_rate") {
		t.Fatalf("v3 ended %s (%s), want rolled back on error_rate", r.Phase, r.Reason)
	}
	waitGone(ctx, t, c, ns, "shop-v3")
	// The recording starts with the route at 100% v2 as it was before
	// v3: what counts is the route back at 100% v2 after v3 had weight,
	// and before shop-v3 was scaled to zero.
	v3Weighted := func(e string) bool {
		return strings.HasPrefix(e, "route:") && strings.Contains(e, "shop-v3=") && !strings.Contains(e, "shop-v3=0")
	}
	order := []func(string) bool{v3Weighted, is("route:shop-v2=100"), is("deployment:shop-v3=0")}
	if events := rec(order...); !matchesInOrder(order, events) {
		t.Errorf("events %v: want v3 given weight, then the route at 100%% v2, then shop-v3 at 0 replicas", events)
	} else {
		t.Logf("events during v3's rollback: %v", events)
	}
	evs, err := cp.Engine.Audit(ctx, audit.Filter{Subject: "shop/production/v3"})
	if err != nil {
		t.Fatal(err)
	}
	ev, ok := hasAction(evs, audit.ActionRollbackAuto)
	if !ok || !strings.HasPrefix(ev.Data["gate"], "error_rate") || ev.Data["value"] == "" || ev.Data["threshold"] != "0.02" {
		t.Errorf("rollback event %+v (found %v), want gate error_rate, its value and threshold 0.02", ev.Data, ok)
	}
	changes, err := cp.Engine.Audit(ctx, audit.Filter{Subject: "shop/production"})
	if err != nil {
		t.Fatal(err)
	}
	var cluster []string
	for _, e := range changes {
		if e.Action == audit.ActionClusterChange {
			cluster = append(cluster, e.Reason)
		}
	}
	for _, want := range []string{"created Deployment " + ns + "/shop-v3", "scaled Deployment " + ns + "/shop-v3 from 2 to 0", "deleted Deployment " + ns + "/shop-v1"} {
		if !slices.ContainsFunc(cluster, func(s string) bool { return strings.HasPrefix(s, want) }) {
			t.Errorf("no cluster.change audit event %q among %d", want, len(cluster))
		}
	}
	if d, err := c.Clientset.AppsV1().Deployments(ns).Get(ctx, "shop", metav1.GetOptions{}); err != nil || d.Generation != 1 {
		t.Errorf("the adopted Deployment was changed: %v", err)
	}
	// The team's own rules of the route, an extra rule with two backends
	// and their catch-all, went through the rollout and the rollback
	// untouched.
	route, err := c.Gateway.GatewayV1().HTTPRoutes(ns).Get(ctx, "shop", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var theirs []gwv1.HTTPRouteRule
	for _, rule := range route.Spec.Rules {
		if rule.Name == nil || !strings.HasPrefix(string(*rule.Name), "shipgate-") {
			theirs = append(theirs, rule)
		}
	}
	if !equality.Semantic.DeepEqual(theirs, userRules) {
		t.Errorf("the user's rules changed:\n got %+v\nwant %+v", theirs, userRules)
	}

	// The team takes its route back, through the CLI and the API (their
	// catch-all rule serves /): Shipgate's rules and annotation go, theirs
	// stay exactly as they were, audited.
	out.Reset()
	errOut.Reset()
	code = cli.Main(ctx, []string{"--server", cp.APIURL, "--token", cp.AdminToken, "kubernetes", "leave", "shop", "--env", "production",
		"--reason", "the team takes it back", "-o", "json"}, strings.NewReader(""), &out, &errOut)
	var left rollout.LeaveReport
	if err := json.Unmarshal(out.Bytes(), &left); code != 0 || err != nil || left.Route != ns+"/shop" || left.Live != "v2" || len(left.RemovedRules) == 0 || left.RouteDeleted {
		t.Fatalf("kubernetes leave exited %d (%v): %+v\nstderr: %s", code, err, left, errOut.String())
	}
	route, err = c.Gateway.GatewayV1().HTTPRoutes(ns).Get(ctx, "shop", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !equality.Semantic.DeepEqual(route.Spec.Rules, userRules) {
		t.Errorf("after leaving, the route's rules are\n %+v\nwant exactly the user's\n %+v", route.Spec.Rules, userRules)
	}
	if v, ok := route.Annotations["shipgate.dev/rules"]; ok {
		t.Errorf("after leaving, the route still has shipgate.dev/rules=%q", v)
	}
	changes, err = cp.Engine.Audit(ctx, audit.Filter{Subject: "shop/production"})
	if err != nil {
		t.Fatal(err)
	}
	if ev, ok := hasAction(changes, audit.ActionLeave); !ok || !strings.HasPrefix(ev.Actor, "user:") || ev.Reason != "the team takes it back" {
		t.Errorf("env.leave audit event %+v (found %v), want the admin's, with the reason", ev, ok)
	}
	if !slices.ContainsFunc(changes, func(e audit.Event) bool {
		return e.Action == audit.ActionClusterChange && strings.HasPrefix(e.Reason, "took Shipgate's rules out of HTTPRoute "+ns+"/shop")
	}) {
		t.Errorf("no cluster.change audit event for the route left")
	}
}

// createUserRoute creates the HTTPRoute the team had before Shipgate: an
// /admin rule with two backends and a catch-all to their Service (which
// exist, so the route resolves), and returns its rules as the API server
// keeps them.
func createUserRoute(ctx context.Context, t *testing.T, c *kubetest.Cluster, ns string) []gwv1.HTTPRouteRule {
	t.Helper()
	for _, name := range []string{"shop", "admin", "admin-next"} {
		svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
			Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Port: 8080}}, Selector: map[string]string{"app": name}}}
		if _, err := c.Clientset.CoreV1().Services(ns).Create(ctx, svc, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	prefix := gwv1.PathMatchPathPrefix
	root, admin := "/", "/admin"
	port := gwv1.PortNumber(8080)
	w3, w1 := int32(3), int32(1)
	name := gwv1.SectionName("admin")
	gwns := gwv1.Namespace(kubetest.GatewayNamespace)
	route := &gwv1.HTTPRoute{
		ObjectMeta: metav1.ObjectMeta{Name: "shop", Namespace: ns},
		Spec: gwv1.HTTPRouteSpec{
			CommonRouteSpec: gwv1.CommonRouteSpec{ParentRefs: []gwv1.ParentReference{{Name: kubetest.GatewayName, Namespace: &gwns}}},
			Rules: []gwv1.HTTPRouteRule{
				{Name: &name, Matches: []gwv1.HTTPRouteMatch{{Path: &gwv1.HTTPPathMatch{Type: &prefix, Value: &admin}}},
					BackendRefs: []gwv1.HTTPBackendRef{
						{BackendRef: gwv1.BackendRef{BackendObjectReference: gwv1.BackendObjectReference{Name: "admin", Port: &port}, Weight: &w3}},
						{BackendRef: gwv1.BackendRef{BackendObjectReference: gwv1.BackendObjectReference{Name: "admin-next", Port: &port}, Weight: &w1}},
					}},
				{Matches: []gwv1.HTTPRouteMatch{{Path: &gwv1.HTTPPathMatch{Type: &prefix, Value: &root}}},
					BackendRefs: []gwv1.HTTPBackendRef{{BackendRef: gwv1.BackendRef{BackendObjectReference: gwv1.BackendObjectReference{Name: "shop", Port: &port}}}}},
			},
		},
	}
	created, err := c.Gateway.GatewayV1().HTTPRoutes(ns).Create(ctx, route, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return created.Spec.Rules
}

func userDeployment(ns string) *appsv1.Deployment {
	one := int32(1)
	labels := map[string]string{"app": "shop"}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "shop", Namespace: ns},
		Spec: appsv1.DeploymentSpec{
			Replicas: &one,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "registry.example/shop:v0",
					Ports: []corev1.ContainerPort{{ContainerPort: 8080}}}}},
			},
		},
	}
}

// dataPlane stands in for the gateway's data plane's metrics: it counts
// requests per version as the HTTPRoute's weights say.
type dataPlane struct {
	addr  string
	mu    sync.Mutex
	fails map[string]float64
}

func (d *dataPlane) fail(version string, rate float64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.fails[version] = rate
}

func startDataPlane(ctx context.Context, t *testing.T, c *kubetest.Cluster, ns string) *dataPlane {
	t.Helper()
	reg := prometheus.NewRegistry()
	reqs := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "http_requests_total", Help: "requests"}, []string{"version", "code"})
	lat := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "http_request_duration_seconds", Help: "latency"}, []string{"version"})
	reg.MustRegister(reqs, lat)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: promhttp.HandlerFor(reg, promhttp.HandlerOpts{}), ReadHeaderTimeout: time.Second}
	go func() { _ = srv.Serve(l) }()
	d := &dataPlane{addr: l.Addr().String(), fails: map[string]float64{}}
	ctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	t.Cleanup(func() { stop(); <-done; _ = srv.Close() })
	go func() {
		defer close(done)
		rng := rand.New(rand.NewPCG(1, 2))
		for {
			select {
			case <-ctx.Done():
				return
			case <-time.After(50 * time.Millisecond):
			}
			route, err := c.Gateway.GatewayV1().HTTPRoutes(ns).Get(ctx, "shop", metav1.GetOptions{})
			if err != nil {
				continue
			}
			w := mainWeights(route)
			total := int32(0)
			for _, v := range w {
				total += v
			}
			if total == 0 {
				continue
			}
			for range 20 {
				n := rng.Int32N(total)
				for _, svc := range slices.Sorted(mapsKeys(w)) {
					if n -= w[svc]; n < 0 {
						version := strings.TrimPrefix(svc, "shop-")
						d.mu.Lock()
						f := d.fails[version]
						d.mu.Unlock()
						code := "200"
						if rng.Float64() < f {
							code = "500"
						}
						reqs.WithLabelValues(version, code).Inc()
						lat.WithLabelValues(version).Observe(0.02)
						break
					}
				}
			}
		}
	}()
	return d
}

func mapsKeys(m map[string]int32) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// mainWeights are the weights of Shipgate's main rule of a route.
func mainWeights(r *gwv1.HTTPRoute) map[string]int32 {
	out := map[string]int32{}
	for _, rule := range r.Spec.Rules {
		if rule.Name == nil || string(*rule.Name) != "shipgate-production-main" {
			continue
		}
		for _, b := range rule.BackendRefs {
			w := int32(1)
			if b.Weight != nil {
				w = *b.Weight
			}
			out[string(b.Name)] = w
		}
	}
	return out
}

// recordOrder records the route's weights and the Deployments' replicas
// from watch events (the first ones are the objects as they are when it
// starts), and returns them in resourceVersion (etcd revision) order when
// called, once events matching want have arrived in that order (watch
// events come some time after the writes the test already saw; the two
// watches deliver independently), or after 20 s.
func recordOrder(ctx context.Context, t *testing.T, c *kubetest.Cluster, ns string) func(want ...func(string) bool) []string {
	t.Helper()
	rw, err := c.Gateway.GatewayV1().HTTPRoutes(ns).Watch(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	dw, err := c.Clientset.AppsV1().Deployments(ns).Watch(ctx, metav1.ListOptions{})
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
	collect := func(w watch.Interface, f func(any) string) {
		defer wg.Done()
		for x := range w.ResultChan() {
			m, ok := x.Object.(metav1.Object)
			if !ok || x.Type == watch.Bookmark || x.Type == watch.Error {
				continue
			}
			rv, _ := strconv.ParseInt(m.GetResourceVersion(), 10, 64)
			if s := f(x.Object); s != "" {
				mu.Lock()
				got = append(got, ev{rv, s})
				mu.Unlock()
			}
		}
	}
	wg.Add(2)
	go collect(rw, func(o any) string {
		r, ok := o.(*gwv1.HTTPRoute)
		if !ok {
			return ""
		}
		var parts []string
		for k, v := range mainWeights(r) {
			parts = append(parts, fmt.Sprintf("%s=%d", k, v))
		}
		slices.Sort(parts)
		return "route:" + strings.Join(parts, ",")
	})
	go collect(dw, func(o any) string {
		d, ok := o.(*appsv1.Deployment)
		if !ok || d.Name == "shop" || d.Spec.Replicas == nil {
			return ""
		}
		return fmt.Sprintf("deployment:%s=%d", d.Name, *d.Spec.Replicas)
	})
	sorted := func() []string {
		mu.Lock()
		defer mu.Unlock()
		evs := slices.Clone(got)
		slices.SortStableFunc(evs, func(a, b ev) int { return int(a.rv - b.rv) })
		out := make([]string, len(evs))
		for i, g := range evs {
			out[i] = g.what
		}
		return out
	}
	return func(want ...func(string) bool) []string {
		for deadline := time.Now().Add(20 * time.Second); !matchesInOrder(want, sorted()); time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				break // the caller judges what arrived
			}
		}
		rw.Stop()
		dw.Stop()
		wg.Wait()
		return sorted()
	}
}

// is matches the event s.
func is(s string) func(string) bool { return func(e string) bool { return e == s } }

// matchesInOrder reports whether events has, in order, an event matching
// each of want.
func matchesInOrder(want []func(string) bool, events []string) bool {
	i := 0
	for _, e := range events {
		if i < len(want) && want[i](e) {
			i++
		}
	}
	return i == len(want)
}

func filter(s []string, prefix string) []string {
	var out []string
	for _, x := range s {
		if strings.HasPrefix(x, prefix) {
			out = append(out, x)
		}
	}
	return out
}

func dedupe(s []string) []string { return slices.Compact(slices.Clone(s)) }

// isSubsequence reports whether want appears in got in order.
func isSubsequence(want, got []string) bool {
	i := 0
	for _, g := range got {
		if i < len(want) && g == want[i] {
			i++
		}
	}
	return i == len(want)
}

func waitGone(ctx context.Context, t *testing.T, c *kubetest.Cluster, ns, name string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		_, err := c.Clientset.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Errorf("Deployment %s still there after 30s", name)
}

// Kill -9 of the Shipgate server in the middle of a bake on Kubernetes: the
// route keeps its weights while no server runs (the cluster is the data
// plane), and a new server resumes the rollout at its step with the
// Deployments and the route it finds by name and label: the same canary
// Deployment is promoted, and no object is duplicated. (Pods simulated by
// kwok, route status by kubetest's stand-in controller, as above.)
func TestE2E_Kubernetes_KilledMidBake(t *testing.T) {
	bin := "/usr/bin/prometheus"
	if _, err := os.Stat(bin); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s: %v (CI=true: scripts/deps.sh test installs prometheus)", bin, err)
		}
		t.Skipf("SKIPPED: %s not found (apt-get install prometheus)", bin)
	}
	c := kubetest.Start(t)
	ns := c.Namespace(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	if _, err := c.Clientset.AppsV1().Deployments(ns).Create(ctx, userDeployment(ns), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	dp := startDataPlane(ctx, t, c, ns)
	promDir := t.TempDir()
	targets := filepath.Join(promDir, "targets.json")
	b, _ := json.Marshal([]map[string]any{{"targets": []string{dp.addr}, "labels": map[string]string{"namespace": ns}}})
	if err := os.WriteFile(targets, b, 0o600); err != nil {
		t.Fatal(err)
	}
	promURL, _ := startPrometheusSD(t, bin, promDir, targets)
	kubeconfig, err := c.WriteKubeconfig("shipgate", c.Config)
	if err != nil {
		t.Fatal(err)
	}
	yaml := fmt.Sprintf(kubeConfig, ns, kubetest.GatewayName, kubetest.GatewayNamespace, promURL)
	yaml = strings.Replace(yaml, "      deployment: shop\n", "      deployment: shop\n      kubeconfig: "+strconv.Quote(kubeconfig)+"\n", 1)
	yaml = strings.Replace(yaml, "[{weight: 25, bake: 2s}, {weight: 50, bake: 2s}]", "[{weight: 25, bake: 10s}, {weight: 50, bake: 2s}]", 1)

	dir := t.TempDir()
	s := &serverProc{t: t, cfg: filepath.Join(dir, "shipgate.yaml"), data: filepath.Join(dir, "data"),
		api: fmt.Sprintf("http://127.0.0.1:%d", freePort(t)), logPath: filepath.Join(dir, "server.log")}
	client := s.launch(yaml)
	r, err := client.Deploy(ctx, rollout.DeployRequest{App: "shop", Version: "v1"})
	if err != nil {
		t.Fatal(err)
	}
	s.waitRollout(client, r.ID, func(r rollout.Rollout) bool { return r.Phase == rollout.PhaseSucceeded })
	time.Sleep(2 * time.Second)
	if r, err = client.Deploy(ctx, rollout.DeployRequest{App: "shop", Version: "v2"}); err != nil {
		t.Fatal(err)
	}
	s.waitRollout(client, r.ID, func(r rollout.Rollout) bool { return r.Weight == 25 && r.Analysis != nil })
	canary, err := c.Clientset.AppsV1().Deployments(ns).Get(ctx, "shop-v2", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}

	s.kill9() // mid-bake
	time.Sleep(2 * time.Second)
	route, err := c.Gateway.GatewayV1().HTTPRoutes(ns).Get(ctx, "shop", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if w := mainWeights(route); w["shop-v2"] != 25 || w["shop-v1"] != 75 {
		t.Fatalf("while the server is down the route has %v, want v1 75 / v2 25", w)
	}

	s.start()
	final := s.waitRollout(client, r.ID, func(r rollout.Rollout) bool { return r.Phase.Final() })
	if final.Phase != rollout.PhaseSucceeded {
		t.Fatalf("after the restart the rollout ended %s: %s", final.Phase, final.Reason)
	}
	waitGone(ctx, t, c, ns, "shop-v1")
	after, err := c.Clientset.AppsV1().Deployments(ns).Get(ctx, "shop-v2", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if after.UID != canary.UID {
		t.Errorf("shop-v2 was replaced across the restart (uid %s -> %s)", canary.UID, after.UID)
	}
	sel := metav1.ListOptions{LabelSelector: "app.kubernetes.io/managed-by=shipgate"}
	ds, err := c.Clientset.AppsV1().Deployments(ns).List(ctx, sel)
	if err != nil {
		t.Fatal(err)
	}
	svcs, err := c.Clientset.CoreV1().Services(ns).List(ctx, sel)
	if err != nil {
		t.Fatal(err)
	}
	if len(ds.Items) != 1 || len(svcs.Items) != 1 {
		t.Errorf("Shipgate's objects after the rollout: %d Deployments, %d Services; want shop-v2 once each", len(ds.Items), len(svcs.Items))
	}
	route, err = c.Gateway.GatewayV1().HTTPRoutes(ns).Get(ctx, "shop", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(route.Spec.Rules); n != 1 || mainWeights(route)["shop-v2"] != 100 {
		t.Errorf("route after the rollout: %d rules, weights %v; want one rule, v2 at 100", n, mainWeights(route))
	}
}
