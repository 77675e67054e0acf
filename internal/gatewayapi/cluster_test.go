package gatewayapi

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/shipgate/shipgate/internal/kubetest"
	"github.com/shipgate/shipgate/internal/rollout"
)

// The tests in this file run against a real kube-apiserver with the Gateway
// API standard CRDs (their defaulting and validation included). NO DATA
// PLANE runs: the route's status is written by kubetest's stand-in gateway
// controller, as a gateway controller would.

func TestMain(m *testing.M) { os.Exit(kubetest.Main(m)) }

// A user-owned HTTPRoute with an extra rule and an extra backend keeps both
// through a whole canary and a rollback, on a real API server.
func TestRouter_UserRoute_Cluster(t *testing.T) {
	c := kubetest.Shared(t)
	ns := c.Namespace(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	user := userRoute(ns)
	gwns := gwv1.Namespace(kubetest.GatewayNamespace)
	user.Spec.ParentRefs[0].Namespace = &gwns
	user.Spec.ParentRefs[0].Name = kubetest.GatewayName
	created, err := c.Gateway.GatewayV1().HTTPRoutes(ns).Create(ctx, user, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rt, err := New(c.Gateway, Config{Namespace: ns, Route: "shop", Gateway: kubetest.GatewayName, GatewayNamespace: kubetest.GatewayNamespace,
		Base: "shop", ServicePort: 8080, App: "shop", Env: "production"})
	if err != nil {
		t.Fatal(err)
	}
	// Compare with the route as the API server keeps it (defaults applied).
	testUserRoute(ctx, t, c.Gateway, rt, created)
}

// VerifyRoutes is not ready until the gateway controller has accepted the
// route's current generation, and says why when a backend is missing.
func TestRouter_VerifyRoutes_Cluster(t *testing.T) {
	c := kubetest.Shared(t)
	ns := c.Namespace(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rt, err := New(c.Gateway, Config{Namespace: ns, Route: "shop", Gateway: kubetest.GatewayName, GatewayNamespace: kubetest.GatewayNamespace,
		Base: "shop", ServicePort: 8080, App: "shop", Env: "production"})
	if err != nil {
		t.Fatal(err)
	}
	// No Service shop-v1 exists: the controller reports BackendNotFound,
	// which stays "not ready" (the engine's bound fails the step with it).
	r := rollout.Routes{Stable: rollout.Backend{Version: "v1"}}
	if err := rt.SetRoutes(ctx, r); err != nil {
		t.Fatal(err)
	}
	var last error
	_ = wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, 20*time.Second, true, func(ctx context.Context) (bool, error) {
		last = rt.VerifyRoutes(ctx, r)
		return last != nil && errors.Is(last, rollout.ErrNotReady) && strings.Contains(last.Error(), "BackendNotFound"), nil
	})
	if !errors.Is(last, rollout.ErrNotReady) || !strings.Contains(last.Error(), "BackendNotFound") {
		t.Fatalf("VerifyRoutes without the Service: %v, want not ready naming BackendNotFound", last)
	}
}
