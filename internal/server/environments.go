package server

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/shipgate/shipgate/internal/analysis"
	"github.com/shipgate/shipgate/internal/config"
	"github.com/shipgate/shipgate/internal/migrate/releases"
	"github.com/shipgate/shipgate/internal/prometheus"
	"github.com/shipgate/shipgate/internal/rollout"
)

// environments is what each environment of the app is made of, built
// from the config: the server's local-process runtime, the environment's
// builtin router (traffic, draining, and measurement unless the
// environment's metrics name Prometheus) and the smoke prober. It is the engine's one factory of adapters.
type environments struct {
	app  string
	envs map[string]rollout.Environment
}

var _ rollout.Environments = (*environments)(nil)

func (e *environments) For(app, env string) (rollout.Environment, error) {
	en, ok := e.envs[env]
	if !ok || app != e.app {
		return rollout.Environment{}, fmt.Errorf("no environment %s of app %s on this server: %w", env, app, rollout.ErrNotFound)
	}
	return en, nil
}

// promMetrics is a Prometheus source as an environment's MetricSource: no
// data is an empty sample (inconclusive, never a pass), a window that
// starts at the zero time (everything the source has) looks back
// promLookback, and one that starts now is empty.
type promMetrics struct {
	src *prometheus.Source
	now func() time.Time
}

// promLookback is how far back "everything" goes in Prometheus.
const promLookback = time.Hour

var _ rollout.MetricSource = promMetrics{}

func (p promMetrics) Window(ctx context.Context, version string, since time.Time) (analysis.Sample, error) {
	now := p.now()
	if since.IsZero() {
		since = now.Add(-promLookback)
	}
	if !since.Before(now) {
		return analysis.Sample{}, nil
	}
	s, err := p.src.Window(ctx, version, since)
	if errors.Is(err, prometheus.ErrNoData) {
		return analysis.Sample{}, nil
	}
	if err != nil {
		return analysis.Sample{}, fmt.Errorf("prometheus: %w", err)
	}
	return s, nil
}

// metricSource returns the MetricSource of environment name: Prometheus
// when its config says so, else its router.
func metricSource(cfg *config.Config, name string, env *config.Environment, router rollout.MetricSource) (rollout.MetricSource, error) {
	if env.Metrics == nil || env.Metrics.Prometheus == nil {
		return router, nil
	}
	opts, err := env.Metrics.Prometheus.PrometheusOptions(cfg.App)
	if err != nil {
		return nil, fmt.Errorf("environments.%s.metrics.prometheus: %w", name, err)
	}
	src, err := prometheus.New(opts)
	if err != nil {
		return nil, fmt.Errorf("environments.%s.metrics.prometheus: %w", name, err)
	}
	return promMetrics{src: src, now: time.Now}, nil
}

// migrationRunner runs the releases' migrations with the options of the
// config's migrations section.
func migrationRunner(cfg *config.Config) releases.Runner {
	var o releases.Options
	if m := cfg.Migrations; m != nil {
		o = releases.Options{Format: m.Format, Ignore: m.Ignore, SQLiteForeignKeys: m.SQLiteForeignKeys}
		if m.Seed != "" {
			o.SeedFile = cfg.Path(m.Seed)
		}
		if m.Setup != "" {
			o.SetupFile = cfg.Path(m.Setup)
		}
	}
	return releases.New(o)
}
