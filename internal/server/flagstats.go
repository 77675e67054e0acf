package server

import (
	"context"
	"fmt"

	"github.com/shipgate/shipgate/internal/analysis"
)

// appsFlagStats measures flags for guarded flag rollouts across every app of
// the server. Flags are the server's, not an app's: a flag key may be
// served by any app, and each app's users reach it through that app's
// production router (or its only router when it has one environment). The
// counters of those routers are summed per flag and variant; they are
// cumulative, as one router's are, and the guard subtracts snapshots.
//
// The set of routers is read at each call, so an app added or reloaded
// counts from then on.
type appsFlagStats struct{ apps *Apps }

// flagRouter returns the router whose users' flag evaluations a plane's
// app measures, or nil (a Kubernetes app has no builtin router).
func flagRouter(p *appPlane) (string, Router) {
	if r := p.routers["production"]; r != nil {
		return "production", r
	}
	if len(p.routers) == 1 {
		for env, r := range p.routers {
			return env, r
		}
	}
	return "", nil
}

// measured reports whether any app has a router to measure flags on.
func (s appsFlagStats) measured() bool {
	for _, p := range s.apps.planes() {
		if _, r := flagRouter(p); r != nil {
			return true
		}
	}
	return false
}

func (s appsFlagStats) FlagStats(ctx context.Context) (map[string]map[string]analysis.Sample, error) {
	out := map[string]map[string]analysis.Sample{}
	for _, p := range s.apps.planes() {
		env, r := flagRouter(p)
		if r == nil {
			continue
		}
		stats, err := r.FlagStats(ctx)
		if err != nil {
			return nil, fmt.Errorf("flag counters of %s's %s router: %w", p.cfg.App, env, err)
		}
		for key, variants := range stats {
			if out[key] == nil {
				out[key] = map[string]analysis.Sample{}
			}
			for v, sample := range variants {
				out[key][v] = out[key][v].Add(sample)
			}
		}
	}
	return out, nil
}
