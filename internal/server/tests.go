package server

import (
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
