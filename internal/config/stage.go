package config

import (
	"path/filepath"
	"slices"
)

// Stage is the effective configuration of one environment: the app's
// settings with the environment's overrides applied. The rollout engine
// reads a Stage, never the raw overrides.
type Stage struct {
	// Name is the environment's name.
	Name string
	// Env is the environment as written.
	Env *Environment
	// Vars are the app's vars overridden by the environment's.
	Vars map[string]string
	// Instances is the number of instances per release here.
	Instances int
	// Strategy is the environment's strategy if it has one, else the
	// app's. Exactly one of its fields is set.
	Strategy Strategy
	// Analysis is the environment's analysis if it has one, else the app's.
	Analysis Analysis
	// Smoke is the environment's smoke checks if it has them, else the
	// app's.
	Smoke []SmokeCheck
	// PostSmoke is the environment's post_smoke checks if it has them,
	// else the app's.
	PostSmoke []SmokeCheck
	// Previous is the environment before this one in the pipeline, "" if
	// there is none.
	Previous string
}

// Stage returns the effective configuration of environment name.
func (c *Config) Stage(name string) (*Stage, error) {
	env, err := c.Environment(name)
	if err != nil {
		return nil, err
	}
	s := &Stage{
		Name: name, Env: env, Vars: map[string]string{}, Instances: c.Run.Instances,
		Strategy: c.Strategy, Analysis: c.Analysis, Smoke: c.Smoke, PostSmoke: c.PostSmoke,
	}
	for k, v := range c.Vars {
		s.Vars[k] = v
	}
	for k, v := range env.Vars {
		s.Vars[k] = v
	}
	if env.Instances > 0 {
		s.Instances = env.Instances
	}
	if env.Strategy != nil {
		s.Strategy = *env.Strategy
	}
	if env.Analysis != nil {
		s.Analysis = *env.Analysis
	}
	if env.Smoke != nil {
		s.Smoke = env.Smoke
	}
	if env.PostSmoke != nil {
		s.PostSmoke = env.PostSmoke
	}
	s.Previous = c.previous(name)
	return s, nil
}

// previous returns the environment before name in the pipeline, "" if there
// is none.
func (c *Config) previous(name string) string {
	if i := slices.Index(c.Pipeline, name); i > 0 {
		return c.Pipeline[i-1]
	}
	return ""
}

// Path resolves a path written in the config (relative to the directory of
// shipgate.yaml) to one the server can open.
func (c *Config) Path(p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	base := "."
	if c.Source != "" {
		base = filepath.Dir(c.Source)
	}
	if abs, err := filepath.Abs(filepath.Join(base, p)); err == nil {
		return abs
	}
	return filepath.Join(base, p)
}
