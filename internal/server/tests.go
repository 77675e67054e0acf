package server

import (
	"context"
	"sort"

	"github.com/shipgate/shipgate/internal/config"
	"github.com/shipgate/shipgate/internal/testsignal"
)

// testService is the test signal service of an app, reading test levels
// and the infrastructure rule from its config.
func testService(cfg *config.Config, store testsignal.Store) *testsignal.Service {
	svc := &testsignal.Service{Store: store, Levels: testLevels(cfg.Tests)}
	if cfg.Tests != nil {
		svc.InfraRatio = cfg.Tests.InfraFailureRatio
	}
	return svc
}

// testLevels are the default levels with the config's replacing theirs:
// e2e first, then integration, then the config's others by name.
func testLevels(t *config.Tests) testsignal.Levels {
	if t == nil || len(t.Levels) == 0 {
		return testsignal.DefaultLevels
	}
	var out testsignal.Levels
	for _, l := range testsignal.DefaultLevels {
		if p, ok := t.Levels[l.Level]; ok {
			l.Patterns = p
		}
		out = append(out, l)
	}
	var others []string
	for name := range t.Levels {
		if name != testsignal.LevelE2E && name != testsignal.LevelIntegration {
			others = append(others, name)
		}
	}
	sort.Strings(others)
	for _, name := range others {
		out = append(out, testsignal.Level{Level: name, Patterns: t.Levels[name]})
	}
	return out
}

// appTests serves the API's test routes for every app: each app's runs
// are classified by its own test levels, and an app the server does not
// manage is not found.
type appTests struct {
	apps  *Apps
	store testsignal.Store
}

// CheckApp returns an error naming the apps managed when app is not one.
func (t appTests) CheckApp(app string) error {
	_, err := t.apps.engine(app)
	return err
}

func (t appTests) service(app string) *testsignal.Service {
	if cfg := t.apps.Config(app); cfg != nil {
		return testService(cfg, t.store)
	}
	return testService(&config.Config{App: app}, t.store)
}

// Record implements api.TestService.
func (t appTests) Record(ctx context.Context, u testsignal.Upload) (testsignal.RunSummary, error) {
	return t.service(u.App).Record(ctx, u)
}

// Flaky implements api.TestService.
func (t appTests) Flaky(ctx context.Context, app string) ([]testsignal.Flaky, error) {
	return t.service(app).Flaky(ctx, app)
}

// Trend implements api.TestService.
func (t appTests) Trend(ctx context.Context, app string, weeks int) ([]testsignal.Week, error) {
	return t.service(app).Trend(ctx, app, weeks)
}
