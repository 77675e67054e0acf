package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/shipgate/shipgate/internal/audit"
	"github.com/shipgate/shipgate/internal/config"
	"github.com/shipgate/shipgate/internal/plan"
	"github.com/shipgate/shipgate/internal/proxy"
	"github.com/shipgate/shipgate/internal/rollout"
	"github.com/shipgate/shipgate/internal/smoke"
)

// A control plane manages several apps. Each has its own config, its own
// rollout engine (its rollouts, history and environments) and its own
// environments' routers; the store, the runtime, the flags and the API
// are shared. Apps hands each API request to the engine of the app it
// names.

// appPlane is one app the control plane manages.
type appPlane struct {
	cfg    *config.Config
	engine *rollout.Engine
	// routers are the app's environments' routers, by environment.
	routers map[string]Router
	// started are the routers this app's start started, by environment
	// (the others were reused from the app's previous config).
	started map[string]Router
}

// Apps is the set of apps a control plane manages, by name. It implements
// the API's Service by handing each request to the engine of the app it
// names; an app it does not manage is not found, and the error lists
// those it manages.
type Apps struct {
	store Store

	// calls is held for reading by every call handed to an engine, and
	// for writing while a reload swaps engines: no command reaches an
	// engine that is being closed, or one not started yet.
	calls sync.RWMutex

	mu     sync.RWMutex
	byName map[string]*appPlane
	order  []string // as the config lists them
}

func newApps(store Store) *Apps {
	return &Apps{store: store, byName: map[string]*appPlane{}}
}

// AppNames returns the names of the apps managed, in config order.
func (a *Apps) AppNames() []string {
	a.mu.RLock()
	defer a.mu.RUnlock()
	return slices.Clone(a.order)
}

// Engine returns the rollout engine of app, or nil.
func (a *Apps) Engine(app string) *rollout.Engine {
	a.mu.RLock()
	defer a.mu.RUnlock()
	if p := a.byName[app]; p != nil {
		return p.engine
	}
	return nil
}

// Config returns the config of app, or nil.
func (a *Apps) Config(app string) *config.Config {
	a.mu.RLock()
	defer a.mu.RUnlock()
	if p := a.byName[app]; p != nil {
		return p.cfg
	}
	return nil
}

// RouterAddr returns the address users reach app's env on, or "".
func (a *Apps) RouterAddr(app, env string) string {
	a.mu.RLock()
	defer a.mu.RUnlock()
	if p := a.byName[app]; p != nil && p.routers[env] != nil {
		return p.routers[env].Addr()
	}
	return ""
}

func (a *Apps) planes() []*appPlane {
	a.mu.RLock()
	defer a.mu.RUnlock()
	out := make([]*appPlane, 0, len(a.order))
	for _, name := range a.order {
		out = append(out, a.byName[name])
	}
	return out
}

// set replaces the apps managed.
func (a *Apps) set(planes []*appPlane) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.byName = make(map[string]*appPlane, len(planes))
	a.order = a.order[:0]
	for _, p := range planes {
		a.byName[p.cfg.App] = p
		a.order = append(a.order, p.cfg.App)
	}
}

// call runs fn with the engine of app, or returns an error wrapping
// rollout.ErrNotFound that names app and the apps managed.
func call[T any](a *Apps, app string, fn func(*rollout.Engine) (T, error)) (T, error) {
	a.calls.RLock()
	defer a.calls.RUnlock()
	e, err := a.engine(app)
	if err != nil {
		var zero T
		return zero, err
	}
	return fn(e)
}

func (a *Apps) engine(app string) (*rollout.Engine, error) {
	a.mu.RLock()
	defer a.mu.RUnlock()
	if p := a.byName[app]; p != nil {
		return p.engine, nil
	}
	if app == "" {
		return nil, &rollout.FieldError{Field: "app", Message: fmt.Sprintf("is required: this server manages %s", strings.Join(quoted(a.order), ", "))}
	}
	return nil, fmt.Errorf("app %q is not managed by this server (it manages %s): %w", app, strings.Join(quoted(a.order), ", "), rollout.ErrNotFound)
}

func quoted(names []string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = fmt.Sprintf("%q", n)
	}
	return out
}

// Deploy implements api.Service.
func (a *Apps) Deploy(ctx context.Context, req rollout.DeployRequest) (rollout.Rollout, error) {
	return call(a, req.App, func(e *rollout.Engine) (rollout.Rollout, error) { return e.Deploy(ctx, req) })
}

// Rollback implements api.Service.
func (a *Apps) Rollback(ctx context.Context, req rollout.RollbackRequest) (rollout.Rollout, error) {
	return call(a, req.App, func(e *rollout.Engine) (rollout.Rollout, error) { return e.Rollback(ctx, req) })
}

// Status implements api.Service.
func (a *Apps) Status(ctx context.Context, app string) (rollout.AppStatus, error) {
	return call(a, app, func(e *rollout.Engine) (rollout.AppStatus, error) { return e.Status(ctx, app) })
}

// GetRollout implements api.Service: rollouts of every app share one
// numbering.
func (a *Apps) GetRollout(ctx context.Context, id int64) (rollout.Rollout, error) {
	return a.store.GetRollout(ctx, id)
}

// History implements api.Service.
func (a *Apps) History(ctx context.Context, app, env string, limit int) ([]rollout.Rollout, error) {
	return call(a, app, func(e *rollout.Engine) ([]rollout.Rollout, error) { return e.History(ctx, app, env, limit) })
}

// Audit implements api.Service: the audit log is the server's, every app's
// events in one chain.
func (a *Apps) Audit(ctx context.Context, f audit.Filter) ([]audit.Event, error) {
	return a.store.ListAudit(ctx, f)
}

// CreateRelease implements api.Service.
func (a *Apps) CreateRelease(ctx context.Context, req rollout.ReleaseRequest) (rollout.Release, error) {
	return call(a, req.App, func(e *rollout.Engine) (rollout.Release, error) { return e.CreateRelease(ctx, req) })
}

// GetRelease implements api.Service.
func (a *Apps) GetRelease(ctx context.Context, app, version string) (rollout.Release, error) {
	return call(a, app, func(e *rollout.Engine) (rollout.Release, error) { return e.GetRelease(ctx, app, version) })
}

// Approve implements api.Service.
func (a *Apps) Approve(ctx context.Context, req rollout.ApproveRequest) (rollout.Rollout, error) {
	return call(a, req.App, func(e *rollout.Engine) (rollout.Rollout, error) { return e.Approve(ctx, req) })
}

// Promote implements api.Service.
func (a *Apps) Promote(ctx context.Context, req rollout.PromoteRequest) (rollout.Rollout, error) {
	return call(a, req.App, func(e *rollout.Engine) (rollout.Rollout, error) { return e.Promote(ctx, req) })
}

// Pause implements api.Service.
func (a *Apps) Pause(ctx context.Context, req rollout.PauseRequest) (rollout.Rollout, error) {
	return call(a, req.App, func(e *rollout.Engine) (rollout.Rollout, error) { return e.Pause(ctx, req) })
}

// Resume implements api.Service.
func (a *Apps) Resume(ctx context.Context, req rollout.PauseRequest) (rollout.Rollout, error) {
	return call(a, req.App, func(e *rollout.Engine) (rollout.Rollout, error) { return e.Resume(ctx, req) })
}

// Retry implements api.Service.
func (a *Apps) Retry(ctx context.Context, req rollout.RetryRequest) (rollout.Rollout, error) {
	return call(a, req.App, func(e *rollout.Engine) (rollout.Rollout, error) { return e.Retry(ctx, req) })
}

// Plan implements api.Service.
func (a *Apps) Plan(ctx context.Context, req rollout.DeployRequest) (rollout.PlanView, error) {
	return call(a, req.App, func(e *rollout.Engine) (rollout.PlanView, error) { return e.Plan(ctx, req) })
}

// Drift implements api.Service.
func (a *Apps) Drift(ctx context.Context, app, env, against string) (rollout.DriftReport, error) {
	return call(a, app, func(e *rollout.Engine) (rollout.DriftReport, error) { return e.Drift(ctx, app, env, against) })
}

// Drill implements api.Service.
func (a *Apps) Drill(ctx context.Context, req rollout.DrillRequest) (rollout.Rollout, error) {
	return call(a, req.App, func(e *rollout.Engine) (rollout.Rollout, error) { return e.Drill(ctx, req) })
}

// Collect exposes every app's routers' metrics. With several apps each
// series gets an app label, since two apps may both have a production.
func (a *Apps) Collect(ch chan<- prometheus.Metric) {
	planes := a.planes()
	for _, p := range planes {
		for _, r := range p.routers {
			c := r.Collector()
			if len(planes) > 1 {
				c = prometheus.WrapCollectorWith(prometheus.Labels{"app": p.cfg.App}, c)
			}
			c.Collect(ch)
		}
	}
}

// Describe sends nothing, which makes the collector unchecked: the apps
// and their routers change with the config, and every router exposes the
// same metric names, told apart by their env (and app) labels, which a
// registry refuses from described collectors.
func (a *Apps) Describe(chan<- *prometheus.Desc) {}

// appDeps are what every app's engine shares.
type appDeps struct {
	opts      Options
	store     Store
	runtime   rollout.Runtime
	digestKey []byte
	log       *slog.Logger
}

// startApp starts the routers of cfg's environments (reusing those of
// reuse, the routers of the app's previous config, where they have the
// same settings) and builds its engine; the engine is not started. On an
// error the routers it started are stopped again.
func (deps appDeps) startApp(ctx context.Context, cfg *config.Config, all []*config.Config, reuse map[string]Router, reuseCfg *config.Config) (_ *appPlane, err error) {
	// p, not a named result, is what a failed start cleans up: a
	// "return nil, err" would set a named result to nil first.
	p := &appPlane{cfg: cfg, routers: map[string]Router{}, started: map[string]Router{}}
	defer func() {
		if err != nil {
			p.stopStarted(context.WithoutCancel(ctx), deps.log)
		}
	}()
	for _, name := range sortedEnvs(cfg) {
		env := cfg.Environments[name]
		if env.Kubernetes != nil {
			continue // the cluster's gateway routes it (kubernetes.go)
		}
		if r := reuse[name]; r != nil && reuseCfg != nil && sameRouter(reuseCfg.Environments[name], env) {
			p.routers[name] = r
			continue
		}
		opts := deps.opts
		base := opts.PlaneDir
		if base == "" {
			base = opts.DataDir
		}
		opts.PlaneDir = routerDir(ctx, base, cfg, name, all)
		r, err := startRouter(ctx, opts, name, env, deps.log.With("app", cfg.App))
		if err != nil {
			return nil, fmt.Errorf("app %s: %w", cfg.App, err)
		}
		p.routers[name] = r
		p.started[name] = r
	}
	envs := &environments{app: cfg.App, envs: map[string]rollout.Environment{}}
	prober := smoke.New()
	for name, env := range cfg.Environments {
		if env.Kubernetes != nil {
			if envs.envs[name], err = kubernetesEnv(ctx, cfg, name, env, deps.store, deps.opts.KubeConfig, deps.log.With("app", cfg.App)); err != nil {
				return nil, fmt.Errorf("app %s: %w", cfg.App, err)
			}
			continue
		}
		r := p.routers[name]
		metrics, err := metricSource(cfg, name, env, r)
		if err != nil {
			return nil, fmt.Errorf("app %s: %w", cfg.App, err)
		}
		envs.envs[name] = rollout.Environment{Runtime: deps.runtime, Router: r, Metrics: metrics, Prober: prober, Drainer: r}
	}
	p.engine, err = rollout.New(rollout.Options{
		Specs: plan.New(cfg), Store: deps.store, Environments: envs, Migrations: migrationRunner(cfg), Tests: testService(cfg, deps.store),
		Logger: deps.log.With("component", "engine", "app", cfg.App), Tick: deps.opts.Tick, DigestKey: deps.digestKey,
	})
	if err != nil {
		return nil, fmt.Errorf("app %s: %w", cfg.App, err)
	}
	return p, nil
}

// stopStarted undoes the routers of p's start (a failed start or a
// refused reload): routers in this process shut down, and router
// processes that this start itself started stop; a router process that
// was already serving users (a server restart) is left serving them.
func (p *appPlane) stopStarted(ctx context.Context, log *slog.Logger) {
	for name, r := range p.started {
		var err error
		switch r := r.(type) {
		case *proxy.Proxy:
			err = r.Shutdown(ctx)
		case *proxy.Client:
			if r.Started() {
				err = r.StopProcess(ctx)
			} else {
				err = r.Close()
			}
		}
		if err != nil {
			log.Error("stop a router started for nothing", "app", p.cfg.App, "env", name, "error", err)
		}
	}
}

// stopRouter stops a router for good, a router process included.
func stopRouter(ctx context.Context, r Router) error {
	switch r := r.(type) {
	case *proxy.Proxy:
		return r.Shutdown(ctx)
	case *proxy.Client:
		return r.StopProcess(ctx)
	}
	return nil
}

// sameRouter reports whether a router started for environment a serves b
// as well: same addresses and the same stickiness.
func sameRouter(a, b *config.Environment) bool {
	return a != nil && b != nil && a.Listen == b.Listen && a.PreviewListen == b.PreviewListen && a.Sticky == b.Sticky
}

func sortedEnvs(cfg *config.Config) []string {
	names := make([]string, 0, len(cfg.Environments))
	for n := range cfg.Environments {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// routerDir is where the router process of env of cfg keeps its control
// socket, state and log. The files are named after the environment, so
// an environment name that two apps share needs a directory per app
// (<data>/apps/<app>). A router already running at the top of the data
// dir on this environment's address (a server from before several apps,
// or the environment's only app) stays where it is, and so does one
// running in <data>/apps/<app> when the app is now alone with that
// environment (a server of several apps restarted with one): addresses
// are never shared between apps, so the address tells whose router it is.
func routerDir(ctx context.Context, dataDir string, cfg *config.Config, env string, all []*config.Config) string {
	shared := false
	for _, other := range all {
		if other.App != cfg.App && other.Environments[env] != nil {
			shared = true
		}
	}
	perApp := filepath.Join(dataDir, "apps", cfg.App)
	if !shared {
		if routerRunsIn(ctx, perApp, env, cfg.Environments[env].Listen) {
			return perApp
		}
		return dataDir
	}
	if routerRunsIn(ctx, dataDir, env, cfg.Environments[env].Listen) {
		return dataDir
	}
	return perApp
}

// routerRunsIn reports whether a router process of env answers on its
// control socket in dir, listening on listen.
func routerRunsIn(ctx context.Context, dir, env, listen string) bool {
	c, err := proxy.Dial(ctx, proxy.ControlSocketPath(dir, env))
	if err != nil {
		return false
	}
	info, err := c.Info(ctx)
	_ = c.Close()
	return err == nil && info.Listen == listen
}

// closeApp lets go of an app's engine and routers as the server stops:
// routers in this process shut down; router processes keep serving.
func closeApp(ctx context.Context, p *appPlane) error {
	if p.engine != nil {
		p.engine.Close()
	}
	var errs []error
	for _, r := range p.routers {
		switch r := r.(type) {
		case *proxy.Proxy:
			errs = append(errs, r.Shutdown(ctx))
		case *proxy.Client:
			errs = append(errs, r.Close())
		}
	}
	return errors.Join(errs...)
}
