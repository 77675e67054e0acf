package rollout_test

// The image of a release (deploy --image) and the blue-green preview on
// Kubernetes, on kubetest's real API server through the server's own
// factory (see runtimes_test.go for what is real and what is not: pods are
// SIMULATED by kwok, the HTTPRoute's status is written by a stand-in
// controller, and no data plane routes a request, so these tests read the
// route back from the API server instead of sending requests through it).

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/shipgate/shipgate/internal/clock/clocktest"
	"github.com/shipgate/shipgate/internal/config"
	kube "github.com/shipgate/shipgate/internal/kubernetes"
	"github.com/shipgate/shipgate/internal/kubetest"
	"github.com/shipgate/shipgate/internal/migrate/releases"
	"github.com/shipgate/shipgate/internal/plan"
	"github.com/shipgate/shipgate/internal/rollout"
	"github.com/shipgate/shipgate/internal/server"
)

// until steps virtual time, sending traffic before each step, until cond
// holds; it fails the test after 2h of virtual time or a minute of real
// time.
func (r *rig) until(what string, cond func() bool) {
	r.t.Helper()
	end := r.clk.Now().Add(2 * time.Hour)
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if r.clk.Now().After(end) || time.Now().After(deadline) {
			r.t.Fatalf("%s: not after 2h of virtual time or a minute of real time (events: %s)", what, strings.Join(r.log(), "; "))
		}
		if r.clk.HasWaiters() {
			r.k.send(10)
			r.clk.Step(time.Second)
			time.Sleep(time.Millisecond) // let the engine take the tick
			continue
		}
		time.Sleep(2 * time.Millisecond) // the engine works in real time (the API server)
	}
}

// get reads rollout id from the store.
func (r *rig) get(id int64) rollout.Rollout {
	r.t.Helper()
	ro, err := r.store.GetRollout(context.Background(), id)
	if err != nil {
		r.t.Fatal(err)
	}
	return ro
}

// final steps time until rollout id is final and returns it.
func (r *rig) final(id int64) rollout.Rollout {
	r.t.Helper()
	var ro rollout.Rollout
	r.until(fmt.Sprintf("rollout %d final", id), func() bool {
		ro = r.get(id)
		return ro.Phase.Final()
	})
	return ro
}

// atStep reports whether rollout id runs a step of kind k now.
func (r *rig) atStep(id int64, k rollout.StepKind) bool {
	ro := r.get(id)
	return ro.Phase == rollout.PhaseRunning && ro.StepIndex < len(ro.Steps) && ro.Steps[ro.StepIndex].Kind == k
}

// restart stops the engine, as a server that dies, and starts a new one
// on the same store, adapters and config (a server restart).
func (r *rig) restart(cfg *config.Config) {
	r.t.Helper()
	r.eng.Close()
	env := r.env
	env.Router = &checkedRouter{TrafficRouter: r.env.Router, r: r}
	env.Runtime = &checkedRuntime{Runtime: r.env.Runtime, r: r}
	eng, err := rollout.New(rollout.Options{
		Specs: plan.New(cfg), Store: r.store, Environments: environments{env: env},
		Migrations: releases.New(releases.Options{}), Clock: r.clk, Tick: time.Second,
		DrainTimeout: 24 * time.Hour, VerifyTimeout: 24 * time.Hour,
	})
	if err != nil {
		r.t.Fatal(err)
	}
	r.eng = eng
	r.t.Cleanup(eng.Close) // before newRig's, which closes the store
	// Start sets the routes again and waits until they are served, on
	// virtual time: step it meanwhile.
	started := make(chan error, 1)
	go func() { started <- eng.Start(context.Background()) }()
	var startErr error
	r.until("the engine started again", func() bool {
		select {
		case startErr = <-started:
			return true
		default:
			return false
		}
	})
	if startErr != nil {
		r.t.Fatal(startErr)
	}
}

// kubeConfigOf parses bothYAML for k with the strategy, edit applied to
// the environment's lines.
func kubeConfigOf(t *testing.T, k kind, strategy string, edit func(env string) string) *config.Config {
	t.Helper()
	cfg, err := config.Parse(filepath.Join(t.TempDir(), "shipgate.yaml"), fmt.Appendf(nil, bothYAML, shopBin, 1, edit(k.envYAML()), strategy))
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	return cfg
}

func (k *kubeKind) image(ctx context.Context, version string) (string, error) {
	d, err := k.c.Clientset.AppsV1().Deployments(k.ns).Get(ctx, kube.ObjectName("shop", version), metav1.GetOptions{})
	if err != nil {
		return "", err
	}
	return d.Spec.Template.Spec.Containers[0].Image, nil
}

// TestEngine_KubernetesDeployImage: an environment without
// kubernetes.image runs the image each deploy gives (--image): the canary
// Deployment is created with it, the rollout and status show it, and a
// deploy that gives none, or gives another for a recorded version, is
// refused naming the field, with nothing created.
func TestEngine_KubernetesDeployImage(t *testing.T) {
	clk := clocktest.New(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
	k := newKubeKind(t, clk).(*kubeKind)
	cfg := kubeConfigOf(t, k, strategyCases[0].yaml, func(env string) string {
		return strings.Replace(env, "      image: registry.example/shop:${VERSION}\n", "", 1)
	})
	r := newRig(t, k, clk, cfg)
	ctx := t.Context()
	deploy := func(version, image string) (rollout.Rollout, error) {
		return r.eng.Deploy(ctx, rollout.DeployRequest{App: "shop", Env: "production", Version: version, Image: image, Actor: "alice"})
	}

	ro, err := deploy("v1", "registry.example/shop:v1")
	if err != nil {
		t.Fatal(err)
	}
	if ro = r.final(ro.ID); ro.Phase != rollout.PhaseSucceeded {
		t.Fatalf("v1: %s (%s)", ro.Phase, ro.Reason)
	}

	// No image from anywhere: refused, naming the field, nothing made.
	_, err = deploy("v2", "")
	var fe *rollout.FieldError
	if !errors.As(err, &fe) || fe.Field != "image" || !strings.Contains(fe.Message, "deploy --image") {
		t.Fatalf("deploy v2 without an image: %v, want a FieldError on image saying to give --image", err)
	}
	if _, err := k.image(ctx, "v2"); !apierrors.IsNotFound(err) {
		t.Fatalf("Deployment of v2 after the refused deploy: %v, want none", err)
	}

	digest := "registry.example/shop@sha256:" + strings.Repeat("ab", 32)
	ro, err = deploy("v2", digest)
	if err != nil {
		t.Fatal(err)
	}
	if ro.Image != digest {
		t.Errorf("rollout's image = %q, want %q", ro.Image, digest)
	}
	// The canary, at its first weight, runs the deploy's image.
	r.until("v2 at its first weight", func() bool { return r.get(ro.ID).Weight > 0 || r.get(ro.ID).Phase.Final() })
	if got, err := k.image(ctx, "v2"); err != nil || got != digest {
		t.Errorf("the canary Deployment's image = %q, %v; want %q", got, err, digest)
	}
	if ro = r.final(ro.ID); ro.Phase != rollout.PhaseSucceeded {
		t.Fatalf("v2: %s (%s)", ro.Phase, ro.Reason)
	}
	st, err := r.eng.Status(ctx, "shop")
	if err != nil || len(st.Envs) != 1 || st.Envs[0].Image != digest {
		t.Errorf("status %+v, %v: want production's image %s", st, err, digest)
	}

	// The same version with another image is another build: refused.
	_, err = deploy("v2", "registry.example/shop:v2-rebuilt")
	if !errors.As(err, &fe) || fe.Field != "image" || !strings.Contains(fe.Message, digest) {
		t.Errorf("deploy v2 with another image: %v, want a FieldError on image naming the recorded one", err)
	}
}

// TestEngine_KubernetesBlueGreenPreview: on Kubernetes, blue-green's green
// is shown before the switch to requests with X-Shipgate-Preview: true, by
// a rule of Shipgate's in the team's own HTTPRoute (read back from the API
// server): present while green waits for approval, with that exact match
// and green's Service as its only backend, while users stay on blue; gone
// once green is promoted, and gone after a rollback. The team's own rule
// is the same at the end as at the start.
func TestEngine_KubernetesBlueGreenPreview(t *testing.T) {
	clk := clocktest.New(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
	k := newKubeKind(t, clk).(*kubeKind)
	ctx := t.Context()
	userRules := createTeamRoute(ctx, t, k)
	cfg := kubeConfigOf(t, k, strategyCases[1].yaml, func(env string) string {
		return env + "\n    gates: {approval: {required: 1}}"
	})
	r := newRig(t, k, clk, cfg)

	// deploy asks for version, waits until it waits for approval, runs
	// check there, approves it (bob, not alice who deployed) and returns
	// its rollout id.
	deploy := func(version string, check func()) int64 {
		t.Helper()
		ro, err := r.eng.Deploy(ctx, rollout.DeployRequest{App: "shop", Env: "production", Version: version, Actor: "alice"})
		if err != nil {
			t.Fatalf("deploy %s: %v", version, err)
		}
		r.until(version+" waits for approval", func() bool { return r.atStep(ro.ID, rollout.StepApproval) })
		check()
		return ro.ID
	}
	approve := func(id int64) {
		go func() {
			// Approve returns once the rollout took it; the test steps the
			// clock meanwhile.
			_, _ = r.eng.Approve(context.Background(), rollout.ApproveRequest{App: "shop", Env: "production", Actor: "bob"})
		}()
		r.until(fmt.Sprintf("rollout %d approved", id), func() bool { return r.get(id).Approval != nil || r.get(id).Phase.Final() })
	}
	preview := func() string {
		t.Helper()
		p, err := k.preview(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	served := func() weights {
		t.Helper()
		w, err := k.served(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return w
	}

	// A first deploy has no preview: nothing to compare it with.
	id := deploy("v1", func() {
		if p := preview(); p != "" {
			t.Errorf("first deploy's preview: %s, want none", p)
		}
	})
	approve(id)
	if ro := r.final(id); ro.Phase != rollout.PhaseSucceeded {
		t.Fatalf("v1: %s (%s)", ro.Phase, ro.Reason)
	}

	// Green (v2) waits for approval: the preview rule sends the header
	// to it, users stay on blue.
	id = deploy("v2", func() {
		if p, w := preview(), served(); p != "v2" || !maps.Equal(w, weights{"v1": 100}) {
			t.Errorf("while v2 waits for approval: preview %q, users %s; want preview v2, users v1=100", p, w)
		}
	})
	approve(id)
	r.until("v2 promoted", func() bool { ro := r.get(id); return !ro.PromotedAt.IsZero() || ro.Phase.Final() })
	if p, w := preview(), served(); p != "" || !maps.Equal(w, weights{"v2": 100}) {
		t.Errorf("after the switch to v2: preview %q, users %s; want no preview, users v2=100", p, w)
	}
	if ro := r.final(id); ro.Phase != rollout.PhaseSucceeded {
		t.Fatalf("v2: %s (%s)", ro.Phase, ro.Reason)
	}
	if p := preview(); p != "" {
		t.Errorf("after v2's rollout: preview %q, want none", p)
	}

	// v3 is previewed, then rolled back before the switch: the rule goes
	// with it.
	id = deploy("v3", func() {
		if p := preview(); p != "v3" {
			t.Errorf("while v3 waits for approval: preview %q, want v3", p)
		}
	})
	// A server restart re-applies the rule, from the rollout's record,
	// when it is gone meanwhile (taken out by hand here).
	r.eng.Close()
	if err := k.reader.SetRoutes(ctx, rollout.Routes{Stable: rollout.Backend{Version: "v2"}}); err != nil {
		t.Fatal(err)
	}
	if p := preview(); p != "" {
		t.Fatalf("preview %q after taking the rule out", p)
	}
	r.restart(cfg)
	r.until("the preview rule re-applied after a restart", func() bool { p, err := k.preview(ctx); return err == nil && p == "v3" })
	go func() {
		_, _ = r.eng.Rollback(context.Background(), rollout.RollbackRequest{App: "shop", Env: "production", Reason: "not today", Actor: "bob"})
	}()
	if ro := r.final(id); ro.Phase != rollout.PhaseRolledBack {
		t.Fatalf("v3: %s (%s), want rolled back", ro.Phase, ro.Reason)
	}
	if p, w := preview(), served(); p != "" || !maps.Equal(w, weights{"v2": 100}) {
		t.Errorf("after v3's rollback: preview %q, users %s; want no preview, users v2=100", p, w)
	}

	route, err := k.c.Gateway.GatewayV1().HTTPRoutes(k.ns).Get(ctx, "shop", metav1.GetOptions{})
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
		t.Errorf("the team's rules changed:\n got %+v\nwant %+v", theirs, userRules)
	}
}

// createTeamRoute creates the HTTPRoute "shop" the team had before
// Shipgate, with a rule of their own (/admin to their Service "admin",
// which exists so the route resolves), and returns its rules as the API
// server keeps them.
func createTeamRoute(ctx context.Context, t *testing.T, k *kubeKind) []gwv1.HTTPRouteRule {
	t.Helper()
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "admin", Namespace: k.ns},
		Spec:       corev1.ServiceSpec{Selector: map[string]string{"app": "admin"}, Ports: []corev1.ServicePort{{Port: 8080}}},
	}
	if _, err := k.c.Clientset.CoreV1().Services(k.ns).Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	gns := gwv1.Namespace(kubetest.GatewayNamespace)
	prefix, path := gwv1.PathMatchPathPrefix, "/admin"
	name := gwv1.SectionName("admin")
	port := gwv1.PortNumber(8080)
	route := &gwv1.HTTPRoute{
		ObjectMeta: metav1.ObjectMeta{Name: "shop", Namespace: k.ns},
		Spec: gwv1.HTTPRouteSpec{
			CommonRouteSpec: gwv1.CommonRouteSpec{ParentRefs: []gwv1.ParentReference{{Name: kubetest.GatewayName, Namespace: &gns}}},
			Rules: []gwv1.HTTPRouteRule{{
				Name:        &name,
				Matches:     []gwv1.HTTPRouteMatch{{Path: &gwv1.HTTPPathMatch{Type: &prefix, Value: &path}}},
				BackendRefs: []gwv1.HTTPBackendRef{{BackendRef: gwv1.BackendRef{BackendObjectReference: gwv1.BackendObjectReference{Name: "admin", Port: &port}}}},
			}},
		},
	}
	got, err := k.c.Gateway.GatewayV1().HTTPRoutes(k.ns).Create(ctx, route, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return got.Spec.Rules
}

// TestEngine_LocalRefusesImage: an environment of local processes refuses
// a deploy with an image, naming the environment, and records nothing:
// not the release, not a rollout.
func TestEngine_LocalRefusesImage(t *testing.T) {
	clk := clocktest.New(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
	k := newLocalKind(t, clk)
	cfg, err := config.Parse(filepath.Join(t.TempDir(), "shipgate.yaml"), fmt.Appendf(nil, bothYAML, shopBin, 1, k.envYAML(), strategyCases[0].yaml))
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	r := newRig(t, k, clk, cfg)
	ctx := t.Context()
	for _, plan := range []bool{true, false} {
		req := rollout.DeployRequest{App: "shop", Env: "production", Version: "v1", Image: "registry.example/shop:v1", Actor: "alice"}
		if plan {
			_, err = r.eng.Plan(ctx, req)
		} else {
			_, err = r.eng.Deploy(ctx, req)
		}
		var fe *rollout.FieldError
		if !errors.As(err, &fe) || fe.Field != "image" || !strings.Contains(fe.Message, "environment production runs local processes") {
			t.Fatalf("plan %v: %v, want a FieldError on image naming the environment", plan, err)
		}
	}
	if _, err := r.store.GetRelease(ctx, "shop", "v1"); !errors.Is(err, rollout.ErrNotFound) {
		t.Errorf("release v1 after the refused deploy: %v, want not found", err)
	}
	if rs, err := r.store.ListRollouts(ctx, "shop", "production", 10); err != nil || len(rs) != 0 {
		t.Errorf("rollouts after the refused deploy: %d, %v; want none", len(rs), err)
	}
}

// TestKubernetesEnvironment_AdoptedDeployment: the server's factory reads
// the Deployment an environment adopts when it builds the environment
// (at the server's start), so a kubernetes.container its pod template
// lacks, a template of several containers without kubernetes.container,
// or a Deployment that is not there, is an error naming the field then,
// not at the first deploy. On kubetest's real API server.
func TestKubernetesEnvironment_AdoptedDeployment(t *testing.T) {
	clk := clocktest.New(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
	k := newKubeKind(t, clk).(*kubeKind)
	ctx := t.Context()
	// A second Deployment with a sidecar.
	two, err := k.c.Clientset.AppsV1().Deployments(k.ns).Get(ctx, "shop", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	two = two.DeepCopy()
	two.ObjectMeta = metav1.ObjectMeta{Name: "shop-two", Namespace: k.ns}
	two.Spec.Template.Spec.Containers = append(two.Spec.Template.Spec.Containers, corev1.Container{Name: "proxy", Image: "registry.example/proxy:1"})
	if _, err := k.c.Clientset.AppsV1().Deployments(k.ns).Create(ctx, two, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name, edit string
		want       string // "" means no error
	}{
		{"its only container", "", ""},
		{"the container named", "container: app", ""},
		{"no such container", "container: web", `environments.production.kubernetes.container: the Deployment ` + k.ns + `/shop to adopt: kubernetes: the base pod template has no container "web" (kubernetes.container); it has app`},
		{"two containers, none named", "deployment: shop-two", "environments.production.kubernetes.container: the Deployment " + k.ns + "/shop-two to adopt: kubernetes: the base pod template has 2 containers (app, proxy): set kubernetes.container"},
		{"two containers, one named", "deployment: shop-two\n      container: app", ""},
		{"no such Deployment", "deployment: nope", "environments.production.kubernetes.deployment: kubernetes: the Deployment " + k.ns + "/nope to adopt (kubernetes.deployment) does not exist"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg := kubeConfigOf(t, k, strategyCases[0].yaml, func(env string) string {
				if strings.HasPrefix(tt.edit, "deployment:") {
					return strings.Replace(env, "deployment: shop", tt.edit, 1)
				}
				if tt.edit != "" {
					return strings.Replace(env, "deployment: shop", "deployment: shop\n      "+tt.edit, 1)
				}
				return env
			})
			_, err := server.KubernetesEnvironment(ctx, cfg, "production", server.KubernetesOptions{RESTConfig: k.c.Config, Metrics: k.dp})
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("build the environment: %v", err)
			case tt.want != "" && (err == nil || !strings.HasPrefix(err.Error(), tt.want)):
				t.Fatalf("build the environment: %v\nwant an error starting %q", err, tt.want)
			}
		})
	}
}
