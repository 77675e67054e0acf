package config

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"gopkg.in/yaml.v3"
)

// FuzzParse checks that no input makes Parse panic, and that Parse always
// either returns a config or says where the problem is.
func FuzzParse(f *testing.F) {
	files, err := filepath.Glob("testdata/*/*.yaml")
	if err != nil {
		f.Fatal(err)
	}
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse("shipgate.yaml", data)
		if err == nil {
			if c == nil {
				t.Fatal("Parse returned neither a config nor an error")
			}
			checkInvariants(t, c)
			return
		}
		if c != nil {
			t.Fatal("Parse returned a config along with an error")
		}
		var cerr *Error
		if !errors.As(err, &cerr) {
			t.Fatalf("error is a %T, want a *config.Error: %v", err, err)
		}
		if len(cerr.Problems) == 0 {
			t.Fatal("*config.Error without problems")
		}
		for _, p := range cerr.Problems {
			if p.Line < 1 && !(p.Message == emptyMessage && hasNoDocument(data)) {
				t.Errorf("problem without a line: %s", p)
			}
			if p.Message == "" {
				t.Errorf("problem without a message: %s", p)
			}
		}
	})
}

// checkInvariants checks what every consumer of a valid config relies on.
func checkInvariants(t *testing.T, c *Config) {
	t.Helper()
	if len(c.Run.Command) == 0 || c.Run.Command[0] == "" {
		t.Errorf("valid config without a command: %q", c.Run.Command)
	}
	if len(c.Environments) == 0 {
		t.Error("valid config without environments")
	}
	for name, env := range c.Environments {
		if env == nil || env.Listen == "" {
			t.Errorf("environment %q has no listen address", name)
		}
	}
	if c.Strategy.Canary == nil || len(c.Strategy.Canary.Steps) == 0 {
		t.Fatal("valid config without canary steps")
	}
	for i, s := range c.Strategy.Canary.Steps {
		if s.Weight < 1 || s.Weight > 100 || i > 0 && s.Weight <= c.Strategy.Canary.Steps[i-1].Weight {
			t.Errorf("bad canary weights: %+v", c.Strategy.Canary.Steps)
		}
	}
	if len(c.Analysis.Gates) == 0 {
		t.Error("valid config without gates")
	}
	for _, g := range c.Analysis.Gates {
		if g.Max == nil && g.MaxRatioToStable == 0 {
			t.Errorf("gate %s without a limit", g.Metric)
		}
	}
	if c.Run.Health.Interval <= 0 || c.Analysis.Interval <= 0 {
		t.Error("valid config with a zero interval")
	}
	if !filepath.IsAbs(c.Run.Dir) {
		t.Errorf("Run.Dir %q is not absolute", c.Run.Dir)
	}
}

// hasNoDocument reports whether data holds no YAML document at all: only
// space and comments.
func hasNoDocument(data []byte) bool {
	var n yaml.Node
	err := yaml.Unmarshal(data, &n)
	return err == nil && (len(n.Content) == 0 || isNull(n.Content[0]))
}
