package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/shipgate/shipgate/internal/analysis"
	"github.com/shipgate/shipgate/internal/config"
	"github.com/shipgate/shipgate/internal/proxy"
	"github.com/shipgate/shipgate/internal/rollout"
)

// Router is an environment's builtin router as the control plane uses it,
// whether it runs inside the server (*proxy.Proxy) or as its own process
// (*proxy.Client, see Options.RouterCommand).
type Router interface {
	rollout.TrafficRouter
	rollout.MetricSource
	rollout.Drainer
	// FlagStats returns the router's counters per flag key and variant.
	FlagStats(ctx context.Context) (map[string]map[string]analysis.Sample, error)
	// Addr is the address users reach the router on.
	Addr() string
	// PreviewAddr is the address of its preview listener, or "".
	PreviewAddr() string
	// Collector exposes the router's metrics on the server's registry.
	Collector() prometheus.Collector
}

var (
	_ Router = (*proxy.Proxy)(nil)
	_ Router = (*proxy.Client)(nil)

	_ rollout.Drainer = (*proxy.Proxy)(nil)
	_ rollout.Drainer = (*proxy.Client)(nil)
)

// startRouter starts the router of one environment: inside this process,
// or, when opts.RouterCommand is set, as a process of its own that keeps
// serving users while the server is down. A router process that already
// serves the environment (the server restarted) is reused.
func startRouter(ctx context.Context, opts Options, name string, env *config.Environment, log *slog.Logger) (Router, error) {
	log = log.With("component", "router", "env", name)
	if len(opts.RouterCommand) == 0 {
		p := proxy.New(proxy.Config{
			Env: name, Listen: env.Listen, PreviewListen: env.PreviewListen,
			StickyHeader: env.Sticky.Header, StickyCookie: env.Sticky.Cookie, Logger: log,
		})
		if err := p.Start(ctx); err != nil {
			return nil, fmt.Errorf("start router of %s on %s: %w", name, env.Listen, err)
		}
		return p, nil
	}
	// The supervision outlives Start's ctx; Close ends it.
	c, err := proxy.EnsureProcess(context.WithoutCancel(ctx), proxy.SupervisorConfig{
		Command: opts.RouterCommand, Env: name, Listen: env.Listen, PreviewListen: env.PreviewListen,
		StickyHeader: env.Sticky.Header, StickyCookie: env.Sticky.Cookie, DataDir: opts.DataDir, Logger: log,
	})
	if err != nil {
		return nil, fmt.Errorf("start router of %s on %s: %w", name, env.Listen, err)
	}
	return c, nil
}

// RouterAddr returns the address users reach env's router on, or "" when
// there is no such environment.
func (cp *ControlPlane) RouterAddr(env string) string {
	if r := cp.Routers[env]; r != nil {
		return r.Addr()
	}
	return ""
}

// closeRouters lets go of the routers as the server stops: routers in
// this process shut down; router processes are left serving users, and a
// restarted server reuses them.
func (cp *ControlPlane) closeRouters(ctx context.Context) error {
	var errs []error
	for _, r := range cp.Routers {
		switch r := r.(type) {
		case *proxy.Proxy:
			errs = append(errs, r.Shutdown(ctx))
		case *proxy.Client:
			errs = append(errs, r.Close())
		}
	}
	return errors.Join(errs...)
}

// StopRouters stops every environment's router, router processes
// included, gracefully. The demo and tests use it to leave nothing behind;
// a server never stops its router processes on its own.
func (cp *ControlPlane) StopRouters(ctx context.Context) error {
	var errs []error
	for _, r := range cp.Routers {
		switch r := r.(type) {
		case *proxy.Proxy:
			errs = append(errs, r.Shutdown(ctx))
		case *proxy.Client:
			errs = append(errs, r.StopProcess(ctx))
		}
	}
	return errors.Join(errs...)
}
