// Package plan translates the config file into the engine's terms: each
// environment's rollout.Spec. The engine (internal/rollout) knows nothing
// of the config; a deploy freezes the Spec this package gives it into the
// rollout, so that what a rollout runs never changes under it.
package plan

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"sort"

	"github.com/shipgate/shipgate/internal/config"
	"github.com/shipgate/shipgate/internal/rollout"
	"github.com/shipgate/shipgate/internal/testsignal"
)

// Specs serves the Specs of one app's config.
type Specs struct {
	cfg *config.Config
}

var _ rollout.Specs = (*Specs)(nil)

// New returns the Specs of cfg.
func New(cfg *config.Config) *Specs { return &Specs{cfg: cfg} }

// App is the app's name.
func (s *Specs) App() string { return s.cfg.App }

// EnvNames are the app's environments, sorted.
func (s *Specs) EnvNames() []string {
	names := make([]string, 0, len(s.cfg.Environments))
	for n := range s.cfg.Environments {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// DefaultEnv is the environment of a request that names none.
func (s *Specs) DefaultEnv() (string, error) { return s.cfg.DefaultEnv() }

// Spec returns the Spec of env.
func (s *Specs) Spec(env string) (*rollout.Spec, error) {
	st, err := s.cfg.Stage(env)
	if err != nil {
		return nil, err
	}
	return Translate(s.cfg, st), nil
}

// Legacy translates the stage a rollout recorded before Specs existed
// (config.Stage as JSON, less its variables). What that stage did not
// hold (the run template, hotfix and migration rules) comes from the live
// config, as it did for those rollouts.
func (s *Specs) Legacy(_ context.Context, raw json.RawMessage) (*rollout.Spec, error) {
	var st config.Stage
	if err := json.Unmarshal(raw, &st); err != nil {
		return nil, fmt.Errorf("decode the recorded stage: %w", err)
	}
	if st.Env == nil {
		st.Env = &config.Environment{}
	}
	if live, err := s.cfg.Stage(st.Name); err == nil {
		st.Vars = live.Vars
	}
	return Translate(s.cfg, &st), nil
}

// Translate returns the Spec of stage st of cfg.
func Translate(cfg *config.Config, st *config.Stage) *rollout.Spec {
	env := st.Env
	if env == nil {
		env = &config.Environment{}
	}
	sp := &rollout.Spec{
		App: cfg.App, Name: st.Name, Previous: st.Previous,
		Listen: env.Listen, PreviewListen: env.PreviewListen,
		Instances: st.Instances,
		Strategy:  strategy(st.Strategy),
		Analysis:  analysisSpec(st.Analysis),
		Smoke:     smoke(st.Smoke), PostSmoke: smoke(st.PostSmoke),
		Gates: gates(env.Gates),
		Run: rollout.RunSpec{
			Command: slices.Clone(cfg.Run.Command), Env: cloneMap(cfg.Run.Env), Dir: cfg.Run.Dir,
			Health: rollout.RouteHealth{
				Path: cfg.Run.Health.Path, Interval: cfg.Run.Health.Interval.D(),
				Timeout: cfg.Run.Health.Timeout.D(), FailureThreshold: cfg.Run.Health.FailureThreshold,
			},
			StartTimeout: cfg.Run.StartTimeout.D(), StopGrace: cfg.Run.StopGrace.D(),
		},
		Vars: cloneMap(st.Vars),
	}
	if k := env.Kubernetes; k != nil {
		sp.Run.Image, sp.Run.Containers = k.Image, true
		sp.PreviewHeader = k.Route.PreviewHeader
		if sp.PreviewHeader == "" {
			sp.PreviewHeader = config.DefaultPreviewHeader
		}
	}
	if sp.Vars == nil {
		sp.Vars = map[string]string{}
	}
	for k := range sp.Vars {
		sp.VarNames = append(sp.VarNames, k)
	}
	sort.Strings(sp.VarNames)
	if h := cfg.Hotfix; h != nil {
		sp.Hotfix = &rollout.HotfixSpec{Skip: slices.Clone(h.Skip), BakeScale: h.BakeScale}
	}
	if m := cfg.Migrations; m != nil {
		sp.Migrations = &rollout.MigrationsSpec{Dir: m.Dir, Database: m.Database, Seed: m.Seed}
	}
	if cfg.Source != "" {
		if abs, err := filepath.Abs(filepath.Dir(cfg.Source)); err == nil {
			sp.BaseDir = abs
		} else {
			sp.BaseDir = filepath.Dir(cfg.Source)
		}
	} else if abs, err := filepath.Abs("."); err == nil {
		sp.BaseDir = abs
	}
	return sp
}

func strategy(s config.Strategy) rollout.StrategySpec {
	var out rollout.StrategySpec
	if c := s.Canary; c != nil {
		cs := &rollout.CanarySpec{ScaleDownDelay: c.ScaleDownDelay.D()}
		if in := c.Internal; in != nil {
			cs.Internal = &rollout.InternalSpec{
				Match: rollout.Match{Header: in.Header, Values: slices.Clone(in.Values), Cookie: in.Cookie, Users: slices.Clone(in.Users)},
				Bake:  in.Bake.D(),
			}
		}
		for _, st := range c.Steps {
			cs.Steps = append(cs.Steps, rollout.CanaryStepSpec{Weight: st.Weight, Bake: st.Bake.D()})
		}
		out.Canary = cs
	}
	if b := s.BlueGreen; b != nil {
		out.BlueGreen = &rollout.BlueGreenSpec{KeepBlue: b.KeepBlue.D(), Analysis: b.Analysis.D()}
	}
	if r := s.Rolling; r != nil {
		out.Rolling = &rollout.RollingSpec{MaxSurge: r.MaxSurge, MaxUnavailable: r.MaxUnavailable, Bake: r.Bake.D()}
	}
	return out
}

func analysisSpec(a config.Analysis) rollout.AnalysisSpec {
	out := rollout.AnalysisSpec{
		Interval: a.Interval.D(), MinRequests: a.MinRequests, FailConfidence: a.FailConfidence, PassConfidence: a.PassConfidence,
		OnInconclusive: a.OnInconclusive, ExpectedRPS: a.ExpectedRPS,
	}
	if a.Settle != nil {
		d := a.Settle.D()
		out.Settle = &d
	}
	for _, g := range a.Gates {
		gs := rollout.GateSpec{Metric: string(g.Metric), MaxRatioToStable: g.MaxRatioToStable, ConsecutiveFailures: g.ConsecutiveFailures}
		if g.Max != nil {
			v := g.Max.Value
			gs.Max = &v
		}
		if g.MaxIncreaseOverStable != nil {
			v := g.MaxIncreaseOverStable.Value
			gs.MaxIncreaseOverStable = &v
		}
		out.Gates = append(out.Gates, gs)
	}
	return out
}

func gates(g config.Gates) rollout.GatesSpec {
	out := rollout.GatesSpec{Checks: slices.Clone(g.Checks), DrillWithin: g.DrillWithin.D()}
	if a := g.Approval; a != nil {
		out.Approval = &rollout.ApprovalRule{Required: a.Required, PreventSelfApproval: a.PreventSelfApproval, Roles: slices.Clone(a.Roles)}
	}
	if d := g.Drift; d != nil {
		out.Drift = &rollout.DriftSpec{Against: d.Against, Allow: slices.Clone(d.Allow)}
	}
	var tg testsignal.Gates
	if g.FlakyTests != nil {
		tg.FlakyMaxAge = g.FlakyTests.MaxAge.D()
	}
	if g.CITime != nil {
		tg.CITimeMax = g.CITime.Max.D()
	}
	tg.RequireLevels = slices.Clone(g.RequireLevels)
	out.Tests = tg
	return out
}

func smoke(checks []config.SmokeCheck) []rollout.SmokeCheck {
	if checks == nil {
		return nil
	}
	out := make([]rollout.SmokeCheck, 0, len(checks))
	for _, s := range checks {
		out = append(out, rollout.SmokeCheck{Path: s.Path, ExpectStatus: s.ExpectStatus, ExpectBody: s.ExpectBody, Timeout: s.Timeout.D()})
	}
	return out
}

func cloneMap(m map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}
