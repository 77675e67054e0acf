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
			if p.Line < 1 && (p.Message != emptyMessage || !hasNoDocument(data)) {
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
	if (len(c.Run.Command) == 0 || c.Run.Command[0] == "") && !allKubernetes(c) {
		t.Errorf("valid config without a command: %q", c.Run.Command)
	}
	if len(c.Environments) == 0 {
		t.Error("valid config without environments")
	}
	for name, env := range c.Environments {
		if env == nil || (env.Listen == "" && env.Kubernetes == nil) {
			t.Errorf("environment %q has no listen address", name)
		}
	}
	if got := c.Strategy.set(); len(got) != 1 {
		t.Errorf("valid config with strategies %q, want exactly one", got)
	}
	for name := range c.Environments {
		s, err := c.Stage(name)
		if err != nil {
			t.Fatalf("Stage(%q) of a valid config: %v", name, err)
		}
		checkStage(t, c, s)
	}
	for _, name := range c.Pipeline {
		if c.Environments[name] == nil {
			t.Errorf("pipeline names %q, which is not an environment", name)
		}
	}
	if h := c.Hotfix; h != nil && (h.BakeScale <= 0 || h.BakeScale > 1) {
		t.Errorf("hotfix bake_scale %g", h.BakeScale)
	}
	if c.Run.Health.Interval <= 0 || c.Analysis.Interval <= 0 {
		t.Error("valid config with a zero interval")
	}
	if !filepath.IsAbs(c.Run.Dir) {
		t.Errorf("Run.Dir %q is not absolute", c.Run.Dir)
	}
}

// checkStage checks what the rollout engine relies on in the effective
// config of one environment.
func checkStage(t *testing.T, c *Config, s *Stage) {
	t.Helper()
	if got := s.Strategy.set(); len(got) != 1 {
		t.Errorf("%s: strategies %q, want exactly one", s.Name, got)
	}
	if cn := s.Strategy.Canary; cn != nil {
		if len(cn.Steps) == 0 {
			t.Errorf("%s: canary without steps", s.Name)
		}
		for i, st := range cn.Steps {
			if st.Weight < 1 || st.Weight > 100 || i > 0 && st.Weight <= cn.Steps[i-1].Weight {
				t.Errorf("%s: bad canary weights: %+v", s.Name, cn.Steps)
			}
		}
		if in := cn.Internal; in != nil {
			if in.Header == "" && in.Cookie == "" && len(in.Users) == 0 {
				t.Errorf("%s: internal step that matches no one", s.Name)
			}
			if len(in.Users) > 0 && s.Env.Sticky.Header == "" && s.Env.Sticky.Cookie == "" {
				t.Errorf("%s: internal users without sticky", s.Name)
			}
		}
	}
	if r := s.Strategy.Rolling; r != nil && (r.MaxSurge < 0 || r.MaxUnavailable < 0 || r.MaxSurge+r.MaxUnavailable == 0) {
		t.Errorf("%s: rolling %+v cannot make progress", s.Name, *r)
	}
	if len(s.Analysis.Gates) == 0 {
		t.Errorf("%s: no analysis gates", s.Name)
	}
	for _, g := range s.Analysis.Gates {
		if g.Max == nil && g.MaxRatioToStable == 0 {
			t.Errorf("%s: gate %s without a limit", s.Name, g.Metric)
		}
	}
	if s.Analysis.Interval <= 0 {
		t.Errorf("%s: analysis interval %v", s.Name, s.Analysis.Interval)
	}
	if s.Instances < 1 || s.Instances > 100 {
		t.Errorf("%s: %d instances", s.Name, s.Instances)
	}
	if s.Env.PreviewListen != "" && s.Env.PreviewListen == s.Env.Listen {
		t.Errorf("%s: preview_listen is the listen address", s.Name)
	}
	if d := s.Env.Gates.Drift; d != nil && (d.Against == s.Name || c.Environments[d.Against] == nil) {
		t.Errorf("%s: drift against %q", s.Name, d.Against)
	}
}

// hasNoDocument reports whether data holds no YAML document at all: only
// space and comments.
func hasNoDocument(data []byte) bool {
	var n yaml.Node
	err := yaml.Unmarshal(data, &n)
	return err == nil && (len(n.Content) == 0 || isNull(n.Content[0]))
}
