package rollout

import (
	"fmt"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/shipgate/shipgate/internal/analysis"
	"github.com/shipgate/shipgate/internal/config"
)

// Plan returns the steps that move env from its stable release to a new
// one: start, smoke, the canary weights with their bake times, promote and
// scale down. The first deploy of an environment has no stable release to
// compare with: it starts, smoke-checks and goes live at 100%.
func Plan(cfg *config.Config, firstDeploy bool) []Step {
	steps := []Step{{Kind: StepStart}, {Kind: StepSmoke}}
	if firstDeploy {
		return append(steps, Step{Kind: StepPromote})
	}
	var scaleDown time.Duration
	if c := cfg.Strategy.Canary; c != nil {
		for _, s := range c.Steps {
			if s.Weight >= 100 {
				continue // promotion sends 100%
			}
			steps = append(steps, Step{Kind: StepWeight, Weight: s.Weight, Duration: s.Bake.D()})
		}
		scaleDown = c.ScaleDownDelay.D()
	}
	return append(steps, Step{Kind: StepPromote}, Step{Kind: StepScaleDown, Duration: scaleDown})
}

// rollbackPlan returns the steps of a manual rollback to an earlier
// release once the current one is promoted: start it, smoke-check it,
// switch all traffic at once, then stop the bad release's instances.
func rollbackPlan(cfg *config.Config) []Step {
	var drain time.Duration
	if c := cfg.Strategy.Canary; c != nil {
		drain = min(c.ScaleDownDelay.D(), 5*time.Second)
	}
	return []Step{{Kind: StepStart}, {Kind: StepSmoke}, {Kind: StepPromote}, {Kind: StepScaleDown, Duration: drain}}
}

// Gates converts the config's gates for the judge.
func Gates(a config.Analysis) []analysis.Gate {
	out := make([]analysis.Gate, 0, len(a.Gates))
	for _, g := range a.Gates {
		ag := analysis.Gate{Metric: string(g.Metric), MaxRatio: g.MaxRatioToStable}
		if g.Max != nil {
			ag.Max, ag.HasMax = g.Max.Value, true
		}
		out = append(out, ag)
	}
	return out
}

var varRef = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)\}`)

// Expand replaces every ${NAME} in s with vars[NAME]. ${PORT} is left for
// the runtime, which picks the port. A name with no value is an error.
func Expand(s string, vars map[string]string) (string, error) {
	var missing []string
	out := varRef.ReplaceAllStringFunc(s, func(ref string) string {
		name := ref[2 : len(ref)-1]
		if name == "PORT" {
			return ref
		}
		v, ok := vars[name]
		if !ok {
			missing = append(missing, name)
			return ref
		}
		return v
	})
	if len(missing) > 0 {
		return "", fmt.Errorf("variable %s is not set: give it with deploy --var %s=... or in the app's vars", missing[0], missing[0])
	}
	return out, nil
}

// instanceSpec builds the spec for starting instances of rel in env.
func instanceSpec(cfg *config.Config, env string, rel Release) (InstanceSpec, error) {
	vars := map[string]string{}
	for k, v := range cfg.Vars {
		vars[k] = v
	}
	for k, v := range rel.Vars {
		vars[k] = v
	}
	vars["VERSION"], vars["APP"], vars["ENV"] = rel.Version, cfg.App, env
	cmd := make([]string, len(cfg.Run.Command))
	for i, c := range cfg.Run.Command {
		v, err := Expand(c, vars)
		if err != nil {
			return InstanceSpec{}, &FieldError{Field: fmt.Sprintf("run.command[%d]", i), Message: err.Error()}
		}
		cmd[i] = v
	}
	environ := make(map[string]string, len(cfg.Run.Env))
	names := make([]string, 0, len(cfg.Run.Env))
	for k := range cfg.Run.Env {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		v, err := Expand(cfg.Run.Env[k], vars)
		if err != nil {
			return InstanceSpec{}, &FieldError{Field: "run.env." + k, Message: err.Error()}
		}
		environ[k] = v
	}
	h := cfg.Run.Health
	return InstanceSpec{
		App: cfg.App, Env: env, Version: rel.Version,
		Command: cmd, Environ: environ, Dir: cfg.Run.Dir, Count: cfg.Run.Instances,
		HealthPath: h.Path, HealthInterval: h.Interval.D(), HealthTimeout: h.Timeout.D(),
		FailureThreshold: h.FailureThreshold,
		StartTimeout:     cfg.Run.StartTimeout.D(), StopGrace: cfg.Run.StopGrace.D(),
	}, nil
}

func smokeChecks(cfg *config.Config) []SmokeCheck {
	out := make([]SmokeCheck, 0, len(cfg.Smoke))
	for _, s := range cfg.Smoke {
		out = append(out, SmokeCheck{Path: s.Path, ExpectStatus: s.ExpectStatus, ExpectBody: s.ExpectBody, Timeout: s.Timeout.D()})
	}
	return out
}

func describeStep(s Step) string {
	switch s.Kind {
	case StepWeight:
		return fmt.Sprintf("weight %d%% for %s", s.Weight, s.Duration)
	case StepScaleDown:
		return fmt.Sprintf("scale down old release after %s", s.Duration)
	default:
		return strings.ReplaceAll(string(s.Kind), "_", " ")
	}
}
