package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	gwclient "sigs.k8s.io/gateway-api/pkg/client/clientset/versioned"

	"github.com/shipgate/shipgate/internal/audit"
	"github.com/shipgate/shipgate/internal/config"
	"github.com/shipgate/shipgate/internal/gatewayapi"
	kube "github.com/shipgate/shipgate/internal/kubernetes"
	"github.com/shipgate/shipgate/internal/rollout"
)

// KubernetesOptions are what building a Kubernetes environment needs
// besides its config.
type KubernetesOptions struct {
	// RESTConfig, when set, is used instead of the environment's
	// kubeconfig (tests, or a server that already has one).
	RESTConfig *rest.Config
	// Metrics measures the releases (Prometheus).
	Metrics rollout.MetricSource
	// OnChange is told every change made to the cluster, for the audit log.
	OnChange func(ctx context.Context, change string)
	Logger   *slog.Logger
}

// KubernetesEnvironment builds the adapters of an environment that runs
// on Kubernetes: Deployments as the runtime, the HTTPRoute as the router,
// smoke checks through the API server's proxy.
//
// The Deployment it adopts (kubernetes.deployment) is read once here, so
// that a container kubernetes.container does not name, or a pod template
// with several containers and no kubernetes.container, is an error at the
// server's start naming the field, not at the first deploy.
func KubernetesEnvironment(ctx context.Context, c *config.Config, envName string, o KubernetesOptions) (rollout.Environment, error) {
	env, err := c.Environment(envName)
	if err != nil {
		return rollout.Environment{}, err
	}
	k := env.Kubernetes
	if k == nil {
		return rollout.Environment{}, fmt.Errorf("environment %s does not run on kubernetes", envName)
	}
	rc := o.RESTConfig
	if rc == nil {
		if rc, err = RESTConfig(c.Path(k.Kubeconfig)); err != nil {
			return rollout.Environment{}, fmt.Errorf("environments.%s.kubernetes.kubeconfig: %w", envName, err)
		}
	}
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return rollout.Environment{}, fmt.Errorf("environments.%s.kubernetes: %w", envName, err)
	}
	gw, err := gwclient.NewForConfig(rc)
	if err != nil {
		return rollout.Environment{}, fmt.Errorf("environments.%s.kubernetes: %w", envName, err)
	}
	base := k.Name
	if base == "" {
		base = k.Deployment
	}
	if base == "" {
		base = c.App
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("env", envName)
	rcfg := kube.Config{
		Namespace: k.Namespace, Deployment: k.Deployment, Base: base,
		ServicePort: k.ServicePort, Container: k.Container, OnChange: o.OnChange, Logger: log,
	}
	if k.Template != "" {
		if rcfg.Template, err = kube.LoadTemplate(c.Path(k.Template)); err != nil {
			return rollout.Environment{}, fmt.Errorf("environments.%s.kubernetes.template: %w", envName, err)
		}
		if err := kube.CheckContainer(rcfg.Template, k.Container); err != nil {
			return rollout.Environment{}, fmt.Errorf("environments.%s.kubernetes.container: %w", envName, err)
		}
	}
	runtime, err := kube.New(cs, rcfg)
	if err != nil {
		return rollout.Environment{}, fmt.Errorf("environments.%s: %w", envName, err)
	}
	if k.Deployment != "" {
		if err := runtime.CheckAdopted(ctx); err != nil {
			field := "deployment"
			if errors.Is(err, kube.ErrContainer) {
				field = "container"
			}
			return rollout.Environment{}, fmt.Errorf("environments.%s.kubernetes.%s: %w", envName, field, err)
		}
	}
	router, err := gatewayapi.New(gw, gatewayapi.Config{
		Namespace: k.Namespace, Route: k.Route.Name, Gateway: k.Route.Gateway, GatewayNamespace: k.Route.Namespace,
		Base: base, ServicePort: k.ServicePort, App: c.App, Env: envName, PathPrefix: k.Route.PathPrefix,
		PreviewHeader: k.Route.PreviewHeader, OnChange: o.OnChange, Logger: log,
	})
	if err != nil {
		return rollout.Environment{}, fmt.Errorf("environments.%s: %w", envName, err)
	}
	prober, err := kube.NewProber(rc, k.Namespace)
	if err != nil {
		return rollout.Environment{}, fmt.Errorf("environments.%s: %w", envName, err)
	}
	leaver := &kubeLeaver{router: router, runtime: runtime, base: base}
	return rollout.Environment{Runtime: runtime, Router: router, Metrics: o.Metrics, Prober: prober, Leaver: leaver}, nil
}

// kubeLeaver hands an environment on Kubernetes back to its team
// (shipgate kubernetes leave): Shipgate's rules out of the HTTPRoute,
// then, when asked, Shipgate's releases but the live one deleted.
type kubeLeaver struct {
	router  *gatewayapi.Router
	runtime *kube.Runtime
	base    string
}

var _ rollout.Leaver = (*kubeLeaver)(nil)

func (l *kubeLeaver) Leave(ctx context.Context, req rollout.LeaveRequest) (rollout.LeaveReport, error) {
	res, err := l.router.Leave(ctx, req.Force)
	rep := rollout.LeaveReport{App: req.App, Env: req.Env, Live: req.Live, Route: res.Route, RouteDeleted: res.Deleted, RemovedRules: res.Removed, LostTraffic: res.Lost}
	if rep.RemovedRules == nil {
		rep.RemovedRules = []string{}
	}
	if err != nil || !req.DeleteReleases {
		return rep, err
	}
	versions, err := l.runtime.Releases(ctx, req.App, req.Env)
	if err != nil {
		return rep, err
	}
	for _, v := range versions {
		svc := kube.ObjectName(l.base, v)
		switch {
		case v == req.Live:
			rep.KeptReleases = append(rep.KeptReleases, v+": live")
		case slices.Contains(res.UserBackends, svc):
			rep.KeptReleases = append(rep.KeptReleases, fmt.Sprintf("%s: a rule of yours in HTTPRoute %s sends traffic to its Service %s", v, res.Route, svc))
		default:
			if err := l.runtime.Remove(ctx, rollout.ReleaseRef{App: req.App, Env: req.Env, Version: v}); err != nil {
				return rep, fmt.Errorf("the route is left; delete release %s: %w", v, err)
			}
			rep.DeletedReleases = append(rep.DeletedReleases, v)
		}
	}
	return rep, nil
}

// RESTConfig loads how to reach a cluster: the kubeconfig at path when
// given, else $KUBECONFIG, the in-cluster service account, ~/.kube/config.
func RESTConfig(path string) (*rest.Config, error) {
	if path == "" && os.Getenv("KUBECONFIG") == "" {
		if rc, err := rest.InClusterConfig(); err == nil {
			return rc, nil
		}
	}
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	if path != "" {
		rules.ExplicitPath = path
	}
	rc, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{}).ClientConfig()
	if clientcmd.IsEmptyConfig(err) && path == "" {
		// client-go's own words point at KUBERNETES_MASTER, which is not
		// one of the places the server looks (docs/kubernetes.md).
		return nil, errors.New("no cluster found: kubernetes.kubeconfig is not set, $KUBECONFIG is empty, " +
			"the server does not run in-cluster (no service account), and there is no ~/.kube/config; set kubernetes.kubeconfig")
	}
	if err != nil {
		return nil, fmt.Errorf("load kubeconfig: %w", err)
	}
	return rc, nil
}

// kubernetesEnv builds environment name, which runs on Kubernetes, for the
// server: measured by its Prometheus, and every change it makes to the
// cluster written to the audit log.
func kubernetesEnv(ctx context.Context, cfg *config.Config, name string, env *config.Environment, store rollout.Store, rc *rest.Config, log *slog.Logger) (rollout.Environment, error) {
	metrics, err := metricSource(cfg, name, env, nil)
	if err != nil {
		return rollout.Environment{}, err
	}
	if metrics == nil {
		return rollout.Environment{}, fmt.Errorf("environments.%s.metrics.prometheus: required with kubernetes: the Gateway API router does not measure traffic", name)
	}
	subject := cfg.App + "/" + name
	onChange := func(ctx context.Context, change string) {
		ev := audit.Event{Time: time.Now().UTC(), Actor: "shipgate", Action: audit.ActionClusterChange, Subject: subject, Reason: change, Outcome: "ok"}
		if err := store.Commit(context.WithoutCancel(ctx), rollout.Change{Audit: []audit.Event{ev}}); err != nil {
			log.Warn("audit a cluster change", "change", change, "error", err.Error())
		}
	}
	return KubernetesEnvironment(ctx, cfg, name, KubernetesOptions{RESTConfig: rc, Metrics: metrics, OnChange: onChange, Logger: log.With("component", "kubernetes")})
}

// kubeService serves shipgate kubernetes leave: the engine of the app
// named does it, on the server that drives the app's rollouts.
type kubeService struct{ cp *ControlPlane }

func (k kubeService) Leave(ctx context.Context, req rollout.LeaveRequest) (rollout.LeaveReport, error) {
	if h := k.cp.ha; h != nil {
		if es := h.elector.Status(); !es.Leading {
			return rollout.LeaveReport{}, fmt.Errorf("this server does not lead (the leader is %q): send shipgate kubernetes leave to the leader, whose engine drives the rollouts: %w", es.Leader, rollout.ErrConflict)
		}
	}
	return call(k.cp.Apps, req.App, func(e *rollout.Engine) (rollout.LeaveReport, error) { return e.Leave(ctx, req) })
}
