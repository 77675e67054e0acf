package rollout_test

// TestEngine_StrategiesOnBothRuntimes runs each strategy through the same
// engine, the same Spec and the same assertions against both kinds of
// environment, through the same ports (rollout.Environment):
//
//   - local: real processes of the example shop (internal/process) behind
//     the builtin router (internal/proxy), measured by the router itself;
//   - kubernetes: Deployments (internal/kubernetes) on a real kube-apiserver,
//     controller manager and scheduler (internal/kubetest), traffic on a
//     Gateway API HTTPRoute (internal/gatewayapi), both built by the
//     server's own factory (server.KubernetesEnvironment).
//
// What is NOT real on Kubernetes, because it cannot run here: pods are
// SIMULATED by kwok (no container runs), the HTTPRoute's status is written
// by kubetest's stand-in gateway controller, and NO DATA PLANE routes a
// request. The Kubernetes case therefore measures releases with one
// in-test MetricSource (fakeDataPlane): before each step of the virtual
// clock it reads the HTTPRoute's weights back from the API server and
// counts requests per version by those weights, failing the share its
// Deployment's pod template asks for (SHOP_PAY_FAIL_RATE, the release's
// FAIL_RATE variable, which the real shop honours in the local case). The
// production server measures with Prometheus instead.
//
// Only time is fake, on both: bakes, analysis intervals and the
// scale-down delay run on a clocktest.Fake.

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math"
	"net/http"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/shipgate/shipgate/internal/analysis"
	"github.com/shipgate/shipgate/internal/clock/clocktest"
	"github.com/shipgate/shipgate/internal/config"
	"github.com/shipgate/shipgate/internal/gatewayapi"
	kube "github.com/shipgate/shipgate/internal/kubernetes"
	"github.com/shipgate/shipgate/internal/kubetest"
	"github.com/shipgate/shipgate/internal/migrate/releases"
	"github.com/shipgate/shipgate/internal/plan"
	"github.com/shipgate/shipgate/internal/process"
	"github.com/shipgate/shipgate/internal/proxy"
	"github.com/shipgate/shipgate/internal/rollout"
	"github.com/shipgate/shipgate/internal/server"
	"github.com/shipgate/shipgate/internal/smoke"
	"github.com/shipgate/shipgate/internal/sqlite"
)

// bothYAML is the config of both kinds: only the environment's lines (%s)
// differ. %q is the shop binary (unused on Kubernetes, where the image
// runs), the last %s the strategy.
const bothYAML = `
app: shop
vars:
  FAIL_RATE: "0"
run:
  command: [%q]
  env:
    PORT: "${PORT}"
    SHOP_VERSION: "${VERSION}"
    SHOP_PAY_FAIL_RATE: "${FAIL_RATE}"
    MERCHANT_ID: m-1
  instances: %d
  stop_grace: 2s
  start_timeout: 30s
environments:
  production:
%s
analysis:
  interval: 5s
  min_requests: 20
  gates:
    - metric: error_rate
      max: 10%%
strategy:
  %s
`

// weights is what a router serves, read back from it: version to percent
// of the users' traffic, zero weights left out.
type weights map[string]int

func (w weights) String() string {
	keys := slices.Sorted(maps.Keys(w))
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s=%d", k, w[k]))
	}
	return strings.Join(parts, ",")
}

// planned is what Routes asks the users' traffic to be.
func planned(r rollout.Routes) weights {
	out := weights{}
	switch {
	case r.Stable.Version != "" && r.Canary.Version != "" && r.Stable.Version != r.Canary.Version:
		out[r.Stable.Version], out[r.Canary.Version] = 100-r.Weight, r.Weight
	case r.Stable.Version != "":
		out[r.Stable.Version] = 100
	case r.Canary.Version != "":
		out[r.Canary.Version] = 100
	}
	maps.DeleteFunc(out, func(_ string, w int) bool { return w == 0 })
	return out
}

// kind is one kind of environment: how the test builds its adapters and
// looks at it from outside the engine.
type kind interface {
	// envYAML is the environment's lines of bothYAML.
	envYAML() string
	// environment returns the adapters the engine gets for it.
	environment(cfg *config.Config) rollout.Environment
	// served reads back what the router serves now.
	served(ctx context.Context) (weights, error)
	// preview reads back the release the router's preview sends to, ""
	// when it has none.
	preview(ctx context.Context) (string, error)
	// send sends n user requests through the data plane.
	send(n int)
	// gone returns nil once nothing of version runs or is left in place.
	gone(ctx context.Context, version string) error
}

// rig is one environment "production" of shop on one kind, with the
// real SQLite store and an engine on virtual time.
type rig struct {
	t     *testing.T
	k     kind
	store *sqlite.Store
	clk   *clocktest.Fake
	eng   *rollout.Engine
	env   rollout.Environment

	mu     sync.Mutex
	events []string // routes read back after each verified change, removals
}

func newRig(t *testing.T, k kind, clk *clocktest.Fake, cfg *config.Config) *rig {
	t.Helper()
	store, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "shipgate.db"))
	if err != nil {
		t.Fatal(err)
	}
	r := &rig{t: t, k: k, store: store, clk: clk, env: k.environment(cfg)}
	env := r.env
	env.Router = &checkedRouter{TrafficRouter: r.env.Router, r: r}
	env.Runtime = &checkedRuntime{Runtime: r.env.Runtime, r: r}
	eng, err := rollout.New(rollout.Options{
		Specs: plan.New(cfg), Store: store,
		Environments: environments{env: env},
		Migrations:   releases.New(releases.Options{}),
		Clock:        clk, Tick: time.Second,
		// Drains and a data plane's convergence take real time while the
		// test steps virtual time fast: a virtual bound must not cut
		// them short (the test's bound of a real minute does).
		DrainTimeout: 24 * time.Hour, VerifyTimeout: 24 * time.Hour,
	})
	if err != nil {
		t.Fatal(err)
	}
	r.eng = eng
	t.Cleanup(func() {
		eng.Close()
		_ = store.Close()
	})
	if err := eng.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	return r
}

func (r *rig) record(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, fmt.Sprintf(format, args...))
}

// log returns the events since the last reset, consecutive duplicates
// dropped (the engine sets the same routes again where it is idempotent).
func (r *rig) log() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Compact(slices.Clone(r.events))
}

func (r *rig) reset() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = nil
}

// deploy asks for version with vars and steps virtual time, sending
// traffic before each step, until its rollout is final.
func (r *rig) deploy(version string, vars map[string]string) rollout.Rollout {
	r.t.Helper()
	ro, err := r.eng.Deploy(context.Background(), rollout.DeployRequest{App: "shop", Env: "production", Version: version, Vars: vars, Actor: "alice"})
	if err != nil {
		r.t.Fatalf("deploy %s: %v", version, err)
	}
	end := r.clk.Now().Add(2 * time.Hour)
	deadline := time.Now().Add(time.Minute)
	for {
		got, err := r.store.GetRollout(context.Background(), ro.ID)
		if err != nil {
			r.t.Fatal(err)
		}
		if got.Phase.Final() {
			return got
		}
		if r.clk.Now().After(end) || time.Now().After(deadline) {
			r.t.Fatalf("%s: not final after 2h of virtual time or a minute of real time: %s step %d (events: %s)", version, got.Phase, got.StepIndex, strings.Join(r.log(), "; "))
		}
		if r.clk.HasWaiters() {
			r.k.send(10)
			r.clk.Step(time.Second)
			time.Sleep(time.Millisecond) // let the engine take the tick
			continue
		}
		time.Sleep(2 * time.Millisecond) // the engine works in real time (starting, the API server)
	}
}

// checkedRouter records what the router serves, read back once the
// engine's change is verified, and fails the test when that is not what
// the engine planned.
type checkedRouter struct {
	rollout.TrafficRouter
	r *rig
}

func (c *checkedRouter) VerifyRoutes(ctx context.Context, rt rollout.Routes) error {
	if err := c.TrafficRouter.VerifyRoutes(ctx, rt); err != nil {
		return err
	}
	got, err := c.r.k.served(ctx)
	if err != nil {
		c.r.t.Errorf("read the routes back: %v", err)
		return nil
	}
	if want := planned(rt); !maps.Equal(got, want) {
		c.r.t.Errorf("routes read back after a verified change: %s, want the plan's %s", got, want)
	}
	p, err := c.r.k.preview(ctx)
	if err != nil {
		c.r.t.Errorf("read the preview back: %v", err)
		return nil
	}
	if p != rt.Preview.Version {
		c.r.t.Errorf("preview read back after a verified change: %q, want the plan's %q", p, rt.Preview.Version)
	}
	if p != "" {
		c.r.record("route %s preview %s", got, p)
		return nil
	}
	c.r.record("route %s", got)
	return nil
}

// checkedRuntime records each removal and fails the test when a release
// is removed while the router, read back, still sends it users.
type checkedRuntime struct {
	rollout.Runtime
	r *rig
}

func (c *checkedRuntime) Ensure(ctx context.Context, spec rollout.InstanceSpec) ([]rollout.Instance, error) {
	if spec.Count == 0 {
		c.removing(ctx, spec.Version)
	}
	return c.Runtime.Ensure(ctx, spec)
}

func (c *checkedRuntime) Remove(ctx context.Context, ref rollout.ReleaseRef) error {
	c.removing(ctx, ref.Version)
	return c.Runtime.Remove(ctx, ref)
}

func (c *checkedRuntime) removing(ctx context.Context, version string) {
	got, err := c.r.k.served(ctx)
	if err != nil {
		c.r.t.Errorf("read the routes back: %v", err)
	}
	if got[version] > 0 {
		c.r.t.Errorf("%s is removed while the router sends it %d%% of the users (%s)", version, got[version], got)
	}
	c.r.record("remove %s", version)
}

// strategyCase is one strategy, with the routes a healthy v2 goes through
// over v1 (read back after each verified change) — the same users'
// traffic on both kinds. kubeHealthy is what the HTTPRoute goes through:
// the same, plus the preview rule (X-Shipgate-Preview: true to v2) from
// the smoke checks until the switch; the local router here has no
// preview address.
type strategyCase struct {
	name        string
	yaml        string
	instances   int
	healthy     []string
	kubeHealthy []string
}

var strategyCases = []strategyCase{
	{
		name: "canary", yaml: "canary: {steps: [{weight: 25, bake: 30s}, {weight: 50, bake: 30s}], scale_down_delay: 5s}", instances: 1,
		healthy:     []string{"route v1=75,v2=25", "route v1=50,v2=50", "route v2=100", "remove v1"},
		kubeHealthy: []string{"route v1=100 preview v2", "route v1=75,v2=25 preview v2", "route v1=50,v2=50 preview v2", "route v2=100", "remove v1"},
	},
	{
		name: "blue_green", yaml: "blue_green: {analysis: 30s, keep_blue: 5s}", instances: 1,
		healthy:     []string{"route v2=100", "remove v1"},
		kubeHealthy: []string{"route v1=100 preview v2", "route v2=100", "remove v1"},
	},
	{
		// Two instances, one more at a time: the weight is the new
		// release's share of the instances. The last batch removes v1;
		// promotion and the scale-down step then set the same routes and
		// remove v1 again, which finds it gone (both idempotent).
		name: "rolling", yaml: "rolling: {max_surge: 1, bake: 30s}", instances: 2,
		healthy:     []string{"route v1=67,v2=33", "route v1=50,v2=50", "route v1=34,v2=66", "route v2=100", "remove v1", "route v2=100", "remove v1"},
		kubeHealthy: []string{"route v1=67,v2=33 preview v2", "route v1=50,v2=50 preview v2", "route v1=34,v2=66 preview v2", "route v2=100", "remove v1", "route v2=100", "remove v1"},
	},
}

func TestEngine_StrategiesOnBothRuntimes(t *testing.T) {
	kinds := []struct {
		name string
		make func(t *testing.T, clk *clocktest.Fake) kind
	}{
		{"local", newLocalKind},
		{"kubernetes", newKubeKind},
	}
	for _, sc := range strategyCases {
		for _, kd := range kinds {
			t.Run(sc.name+"/"+kd.name, func(t *testing.T) {
				clk := clocktest.New(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
				k := kd.make(t, clk)
				cfg, err := config.Parse(filepath.Join(t.TempDir(), "shipgate.yaml"), fmt.Appendf(nil, bothYAML, shopBin, sc.instances, k.envYAML(), sc.yaml))
				if err != nil {
					t.Fatalf("config: %v", err)
				}
				r := newRig(t, k, clk, cfg)
				ctx := t.Context()

				if ro := r.deploy("v1", nil); ro.Phase != rollout.PhaseSucceeded {
					t.Fatalf("first deploy of v1: %s (%s)", ro.Phase, ro.Reason)
				}
				r.reset()

				// A healthy v2 goes through every step of the plan and is
				// promoted; v1 is removed once no user is sent to it.
				if ro := r.deploy("v2", nil); ro.Phase != rollout.PhaseSucceeded {
					t.Fatalf("v2: %s (%s); events: %s", ro.Phase, ro.Reason, strings.Join(r.log(), "; "))
				}
				want := sc.healthy
				if kd.name == "kubernetes" {
					want = sc.kubeHealthy
				}
				if got := r.log(); !slices.Equal(got, want) {
					t.Errorf("v2's rollout:\n got %s\nwant %s", strings.Join(got, "; "), strings.Join(want, "; "))
				}
				if got, err := k.served(ctx); err != nil || !maps.Equal(got, weights{"v2": 100}) {
					t.Errorf("served after v2: %s, %v; want v2=100", got, err)
				}
				if err := k.gone(ctx, "v1"); err != nil {
					t.Errorf("v1 after v2's promotion: %v", err)
				}
				r.reset()

				// A v3 that fails 40% of its requests is rolled back: the
				// users go back to v2 before v3 is removed.
				ro := r.deploy("v3", map[string]string{"FAIL_RATE": "0.4"})
				if ro.Phase != rollout.PhaseRolledBack || !strings.Contains(ro.Reason, "error_rate") {
					t.Fatalf("v3: %s (%s), want rolled back on error_rate; events: %s", ro.Phase, ro.Reason, strings.Join(r.log(), "; "))
				}
				got := r.log()
				back := slices.Index(got, "route v2=100")
				removed := slices.Index(got, "remove v3")
				if back < 0 || removed < 0 || back > removed {
					t.Errorf("v3's rollout: %s; want the route at v2=100 before v3 is removed", strings.Join(got, "; "))
				}
				if slices.ContainsFunc(got[removed:], func(s string) bool { return strings.Contains(s, "v3=") }) {
					t.Errorf("v3 is routed again after its removal: %s", strings.Join(got, "; "))
				}
				if slices.Contains(got, "remove v2") {
					t.Errorf("the stable v2 was removed: %s", strings.Join(got, "; "))
				}
				if got, err := k.served(ctx); err != nil || !maps.Equal(got, weights{"v2": 100}) {
					t.Errorf("served after v3's rollback: %s, %v; want v2=100", got, err)
				}
				if err := k.gone(ctx, "v3"); err != nil {
					t.Errorf("v3 after its rollback: %v", err)
				}
				obs, err := r.env.Runtime.Observe(ctx, rollout.ReleaseRef{App: "shop", Env: "production", Version: "v2"})
				if err != nil || len(obs) != sc.instances {
					t.Errorf("v2 after v3's rollback: %d instances (%v), want %d", len(obs), err, sc.instances)
				}
			})
		}
	}
}

// localKind is what the harness runs: real processes behind the builtin
// router, which also measures them.
type localKind struct {
	t      *testing.T
	listen string
	router *proxy.Proxy
	rt     *process.Runtime
	client *http.Client
}

func newLocalKind(t *testing.T, clk *clocktest.Fake) kind {
	t.Helper()
	dir := t.TempDir()
	k := &localKind{t: t, listen: freeAddr(t),
		rt:     process.New(process.Config{DataDir: dir}),
		client: &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 16}},
	}
	k.router = proxy.New(proxy.Config{Env: "production", Listen: k.listen, Logger: slog.New(slog.DiscardHandler), Now: clk.Now})
	if err := k.router.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if insts, err := k.rt.List(context.Background()); err == nil {
			_ = k.rt.Stop(context.Background(), insts)
		}
		k.rt.Close()
		_ = k.router.Shutdown(context.Background())
	})
	return k
}

func (k *localKind) envYAML() string { return fmt.Sprintf("    listen: %q", k.listen) }

func (k *localKind) environment(*config.Config) rollout.Environment {
	return rollout.Environment{Runtime: k.rt, Router: k.router, Metrics: k.router, Drainer: k.router, Prober: smoke.New()}
}

func (k *localKind) served(context.Context) (weights, error) {
	return planned(k.router.Routes()), nil
}

func (k *localKind) preview(context.Context) (string, error) {
	return k.router.Routes().Preview.Version, nil
}

func (k *localKind) send(n int) {
	for range n {
		resp, err := k.client.Get("http://" + k.router.Addr() + "/pay")
		if err != nil {
			continue
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
}

func (k *localKind) gone(ctx context.Context, version string) error {
	obs, err := k.rt.Observe(ctx, rollout.ReleaseRef{App: "shop", Env: "production", Version: version})
	if err != nil {
		return err
	}
	for _, o := range obs {
		if o.Status.State != rollout.InstanceExited {
			return fmt.Errorf("instance %s is %s", o.ID, o.Status.State)
		}
	}
	return nil
}

// kubeKind is an environment on kubetest's cluster, in a namespace of its
// own, with the team's Deployment "shop" to adopt.
type kubeKind struct {
	t      *testing.T
	c      *kubetest.Cluster
	ns     string
	reader *gatewayapi.Router // reads the route back, as `status` does
	dp     *fakeDataPlane
}

func newKubeKind(t *testing.T, clk *clocktest.Fake) kind {
	t.Helper()
	c := kubetest.Shared(t)
	ns := c.Namespace(t)
	one := int32(1)
	labels := map[string]string{"app": "shop"}
	base := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "shop", Namespace: ns},
		Spec: appsv1.DeploymentSpec{
			Replicas: &one, Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{
					Name: "app", Image: "registry.example/shop:v1", Ports: []corev1.ContainerPort{{ContainerPort: 8080}},
				}}},
			},
		},
	}
	ctx := t.Context()
	if _, err := c.Clientset.AppsV1().Deployments(ns).Create(ctx, base, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	reader, err := gatewayapi.New(c.Gateway, gatewayapi.Config{Namespace: ns, Route: "shop", Gateway: kubetest.GatewayName,
		GatewayNamespace: kubetest.GatewayNamespace, Base: "shop", ServicePort: 8080, App: "shop", Env: "production"})
	if err != nil {
		t.Fatal(err)
	}
	k := &kubeKind{t: t, c: c, ns: ns, reader: reader}
	k.dp = &fakeDataPlane{k: k, clk: clk, carry: map[string]float64{}, sent: map[string]int{}, failRate: map[string]float64{}}
	return k
}

func (k *kubeKind) envYAML() string {
	// The Prometheus URL satisfies the config (a Kubernetes environment
	// needs one) and is never queried: the engine gets fakeDataPlane.
	return fmt.Sprintf(`    kubernetes:
      namespace: %s
      deployment: shop
      image: registry.example/shop:${VERSION}
      service_port: 8080
      route: {name: shop, gateway: %s, namespace: %s}
    metrics:
      prometheus: {url: "http://127.0.0.1:9", namespace: %s}`, k.ns, kubetest.GatewayName, kubetest.GatewayNamespace, k.ns)
}

func (k *kubeKind) environment(cfg *config.Config) rollout.Environment {
	env, err := server.KubernetesEnvironment(k.t.Context(), cfg, "production", server.KubernetesOptions{RESTConfig: k.c.Config, Metrics: k.dp})
	if err != nil {
		k.t.Fatal(err)
	}
	return env
}

// served reads the HTTPRoute back from the API server: Shipgate's main
// rule's backends, each a release's Service shop-<version>.
func (k *kubeKind) served(ctx context.Context) (weights, error) {
	route, err := k.c.Gateway.GatewayV1().HTTPRoutes(k.ns).Get(ctx, "shop", metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return weights{}, nil
	}
	if err != nil {
		return nil, err
	}
	out := weights{}
	for svc, w := range k.reader.Weights(route) {
		version, ok := strings.CutPrefix(svc, "shop-")
		if !ok || kube.ObjectName("shop", version) != svc {
			return nil, fmt.Errorf("backend %s is no release's Service", svc)
		}
		if w > 0 {
			out[version] = int(w)
		}
	}
	return out, nil
}

// preview reads the HTTPRoute back: the backend of Shipgate's preview
// rule, checked to match exactly the preview header (and the path).
func (k *kubeKind) preview(ctx context.Context) (string, error) {
	rule, err := k.previewRule(ctx)
	if err != nil || rule == nil {
		return "", err
	}
	m := rule.Matches
	if len(m) != 1 || len(m[0].Headers) != 1 || string(m[0].Headers[0].Name) != gatewayapi.DefaultPreviewHeader || m[0].Headers[0].Value != "true" ||
		(m[0].Headers[0].Type != nil && *m[0].Headers[0].Type != gwv1.HeaderMatchExact) || m[0].Path == nil || *m[0].Path.Value != "/" {
		return "", fmt.Errorf("the preview rule matches %+v, want exactly the header %s: true on /", m, gatewayapi.DefaultPreviewHeader)
	}
	if len(rule.BackendRefs) != 1 {
		return "", fmt.Errorf("the preview rule has %d backends, want 1", len(rule.BackendRefs))
	}
	svc := string(rule.BackendRefs[0].Name)
	version, ok := strings.CutPrefix(svc, "shop-")
	if !ok || kube.ObjectName("shop", version) != svc {
		return "", fmt.Errorf("preview backend %s is no release's Service", svc)
	}
	return version, nil
}

// previewRule is Shipgate's preview rule of the route, nil when it has
// none.
func (k *kubeKind) previewRule(ctx context.Context) (*gwv1.HTTPRouteRule, error) {
	route, err := k.c.Gateway.GatewayV1().HTTPRoutes(k.ns).Get(ctx, "shop", metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	for i, rule := range route.Spec.Rules {
		if rule.Name != nil && string(*rule.Name) == k.reader.RulePrefix()+"preview" {
			return &route.Spec.Rules[i], nil
		}
	}
	return nil, nil
}

func (k *kubeKind) send(n int) { k.dp.send(n) }

// gone checks the release's Deployment and Service are deleted and its
// pods gone.
func (k *kubeKind) gone(ctx context.Context, version string) error {
	name := kube.ObjectName("shop", version)
	switch _, err := k.c.Clientset.AppsV1().Deployments(k.ns).Get(ctx, name, metav1.GetOptions{}); {
	case err == nil:
		return fmt.Errorf("Deployment %s is still there, want it deleted", name)
	case !apierrors.IsNotFound(err):
		return fmt.Errorf("get Deployment %s: %w", name, err)
	}
	switch _, err := k.c.Clientset.CoreV1().Services(k.ns).Get(ctx, name, metav1.GetOptions{}); {
	case err == nil:
		return fmt.Errorf("Service %s is still there, want it deleted", name)
	case !apierrors.IsNotFound(err):
		return fmt.Errorf("get Service %s: %w", name, err)
	}
	pods, err := k.c.Clientset.CoreV1().Pods(k.ns).List(ctx, metav1.ListOptions{LabelSelector: kube.LabelVersion + "=" + version})
	if err != nil {
		return err
	}
	for _, p := range pods.Items {
		if p.DeletionTimestamp == nil {
			return fmt.Errorf("pod %s is still there", p.Name)
		}
	}
	return nil
}

// fakeDataPlane stands in for the gateway's data plane and Prometheus:
// it is the Kubernetes case's in-test MetricSource. Each send splits n
// requests between the versions by the HTTPRoute's weights as the API
// server holds them, each version failing the share its Deployment's
// SHOP_PAY_FAIL_RATE says, stamped with the virtual time.
type fakeDataPlane struct {
	k   *kubeKind
	clk *clocktest.Fake

	mu       sync.Mutex
	carry    map[string]float64 // fractions of a request owed per version
	sent     map[string]int     // requests so far per version
	failRate map[string]float64
	reqs     []fakeRequest
}

type fakeRequest struct {
	at      time.Time
	version string
	failed  bool
}

var _ rollout.MetricSource = (*fakeDataPlane)(nil)

func (d *fakeDataPlane) send(n int) {
	ctx := context.Background()
	w, err := d.k.served(ctx)
	if err != nil {
		d.k.t.Errorf("data plane: read the route: %v", err)
		return
	}
	now := d.clk.Now()
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, version := range slices.Sorted(maps.Keys(w)) {
		rate, ok := d.failRate[version]
		if !ok {
			rate = d.rateOf(ctx, version)
			d.failRate[version] = rate
		}
		share := float64(n*w[version])/100 + d.carry[version]
		k := int(math.Floor(share))
		d.carry[version] = share - float64(k)
		for range k {
			i := d.sent[version]
			d.sent[version]++
			// The i-th request fails when it crosses a whole failure:
			// exactly rate of them, spread evenly.
			failed := math.Floor(float64(i+1)*rate) > math.Floor(float64(i)*rate)
			d.reqs = append(d.reqs, fakeRequest{at: now, version: version, failed: failed})
		}
	}
}

// rateOf reads SHOP_PAY_FAIL_RATE from the release's Deployment.
func (d *fakeDataPlane) rateOf(ctx context.Context, version string) float64 {
	dep, err := d.k.c.Clientset.AppsV1().Deployments(d.k.ns).Get(ctx, kube.ObjectName("shop", version), metav1.GetOptions{})
	if err != nil {
		d.k.t.Errorf("data plane: Deployment of %s: %v", version, err)
		return 0
	}
	for _, e := range dep.Spec.Template.Spec.Containers[0].Env {
		if e.Name == "SHOP_PAY_FAIL_RATE" {
			f, err := strconv.ParseFloat(e.Value, 64)
			if err != nil {
				d.k.t.Errorf("data plane: %s's SHOP_PAY_FAIL_RATE %q: %v", version, e.Value, err)
			}
			return f
		}
	}
	return 0
}

func (d *fakeDataPlane) Window(_ context.Context, version string, since time.Time) (analysis.Sample, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	var s analysis.Sample
	for _, r := range d.reqs {
		if r.version != version || r.at.Before(since) {
			continue
		}
		s.Requests++
		if r.failed {
			s.Status5xx++
		}
		s.Latency.Observe(5 * time.Millisecond)
	}
	return s, nil
}

// TestEngine_KubernetesImagePullBackOffFailsTheRollout: on Kubernetes, a
// release whose image cannot be pulled (kwok holds its pods in
// ImagePullBackOff for images under kubetest's unpullable registry: the
// pod condition is simulated) fails its rollout with that reason, within
// the start timeout, and no routing change ever names it: users stay on
// the stable release, and nothing of the failed release is left.
func TestEngine_KubernetesImagePullBackOffFailsTheRollout(t *testing.T) {
	clk := clocktest.New(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
	k := newKubeKind(t, clk)
	env := strings.Replace(k.envYAML(), "image: registry.example/shop:${VERSION}", "image: ${REGISTRY}/shop:${VERSION}", 1)
	yaml := strings.Replace(bothYAML, "vars:\n", "vars:\n  REGISTRY: registry.example\n", 1)
	cfg, err := config.Parse(filepath.Join(t.TempDir(), "shipgate.yaml"), fmt.Appendf(nil, yaml, shopBin, 1, env, strategyCases[0].yaml))
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	r := newRig(t, k, clk, cfg)
	if ro := r.deploy("v1", nil); ro.Phase != rollout.PhaseSucceeded {
		t.Fatalf("first deploy of v1: %s (%s)", ro.Phase, ro.Reason)
	}
	r.reset()
	start := time.Now()
	ro := r.deploy("v2", map[string]string{"REGISTRY": kubetest.UnpullableRegistry})
	if ro.Phase == rollout.PhaseSucceeded || !strings.Contains(ro.Reason, "ImagePullBackOff") {
		t.Fatalf("v2 with an unpullable image: %s (%s), want it failed naming ImagePullBackOff", ro.Phase, ro.Reason)
	}
	t.Logf("v2 ended %s after %s: %s", ro.Phase, time.Since(start).Round(time.Millisecond), ro.Reason)
	if got := r.log(); slices.ContainsFunc(got, func(s string) bool { return strings.Contains(s, "v2=") }) {
		t.Errorf("a routing change named the release that never started: %s", strings.Join(got, "; "))
	}
	if got, err := k.served(t.Context()); err != nil || !maps.Equal(got, weights{"v1": 100}) {
		t.Errorf("served after v2 failed: %s, %v; want v1=100", got, err)
	}
	if err := k.gone(t.Context(), "v2"); err != nil {
		t.Errorf("v2 after its failed start: %v", err)
	}
}
