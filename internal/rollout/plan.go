package rollout

import (
	"fmt"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/shipgate/shipgate/internal/analysis"
)

// Strategy names.
const (
	StrategyCanary    = "canary"
	StrategyBlueGreen = "blue_green"
	StrategyRolling   = "rolling"
)

// strategyOf names the strategy of a stage.
func strategyOf(st *Spec) string {
	switch {
	case st.Strategy.BlueGreen != nil:
		return StrategyBlueGreen
	case st.Strategy.Rolling != nil:
		return StrategyRolling
	default:
		return StrategyCanary
	}
}

// planOptions are what shapes a plan beyond the config.
type planOptions struct {
	// first is true for an environment's first deploy.
	first bool
	// approval adds the approval step (the stage asks for it and no
	// hotfix skips it).
	approval bool
	// bakeScale multiplies every bake (a hotfix's bake_scale); 0 means 1.
	bakeScale float64
	// migrate adds the step that applies the release's migrations, before
	// the release gets any traffic.
	migrate bool
}

// planSteps returns the steps that move an environment from its stable release
// to a new one, by the stage's strategy:
//
//   - canary: start, smoke, [approval], [internal users], each weight with
//     its bake, promote, [post smoke], scale down after a delay;
//   - blue_green: start, smoke (also through the preview address),
//     [approval], promote (the switch), [post smoke], observe green with
//     blue still running, scale blue down after keep_blue;
//   - rolling: [approval], one batch step per batch (start, smoke, bake,
//     then stop as many old instances), promote, [post smoke].
//
// The first deploy of an environment has no stable release to compare
// with: it starts, smoke-checks and goes live at 100%.
func planSteps(st *Spec, o planOptions) []Step {
	scale := func(d time.Duration) time.Duration {
		if o.bakeScale > 0 && o.bakeScale < 1 {
			return time.Duration(float64(d) * o.bakeScale)
		}
		return d
	}
	var steps []Step
	add := func(s ...Step) { steps = append(steps, s...) }
	approval := func() {
		if o.approval {
			add(Step{Kind: StepApproval})
		}
		if o.migrate {
			add(Step{Kind: StepMigrate})
		}
	}
	postSmoke := func() {
		if len(st.PostSmoke) > 0 {
			add(Step{Kind: StepPostSmoke})
		}
	}
	if o.first {
		add(Step{Kind: StepStart}, Step{Kind: StepSmoke})
		approval()
		add(Step{Kind: StepPromote})
		postSmoke()
		return steps
	}
	switch strategyOf(st) {
	case StrategyBlueGreen:
		bg := st.Strategy.BlueGreen
		add(Step{Kind: StepStart}, Step{Kind: StepSmoke})
		approval()
		add(Step{Kind: StepPromote})
		postSmoke()
		add(Step{Kind: StepObserve, Duration: scale(bg.Analysis)}, Step{Kind: StepScaleDown, Duration: bg.KeepBlue})
	case StrategyRolling:
		ro := st.Strategy.Rolling
		approval()
		batch := max(ro.MaxSurge+ro.MaxUnavailable, 1)
		for done := 0; done < st.Instances; done += batch {
			add(Step{Kind: StepBatch, Count: min(batch, st.Instances-done), Duration: scale(ro.Bake)})
		}
		add(Step{Kind: StepPromote})
		postSmoke()
		add(Step{Kind: StepScaleDown})
	default:
		c := st.Strategy.Canary
		add(Step{Kind: StepStart}, Step{Kind: StepSmoke})
		approval()
		var delay time.Duration
		if c != nil {
			if c.Internal != nil {
				add(Step{Kind: StepInternal, Duration: scale(c.Internal.Bake)})
			}
			for _, s := range c.Steps {
				if s.Weight >= 100 {
					continue // promotion sends 100%
				}
				add(Step{Kind: StepWeight, Weight: s.Weight, Duration: scale(s.Bake)})
			}
			delay = c.ScaleDownDelay
		}
		add(Step{Kind: StepPromote})
		postSmoke()
		add(Step{Kind: StepScaleDown, Duration: delay})
	}
	return steps
}

// rollbackSteps returns the steps of a manual rollback to an earlier
// release once the current one is promoted: start it, smoke-check it,
// switch all traffic at once, then stop the bad release's instances.
func rollbackSteps(st *Spec) []Step {
	return []Step{{Kind: StepStart}, {Kind: StepSmoke}, {Kind: StepPromote}, {Kind: StepScaleDown, Duration: drainDelay(st)}}
}

// drillSteps returns the steps of a rollback drill: bring the previous
// release back at 100%, check it through the router, then switch back to
// the release that was current and stop the previous one's instances.
func drillSteps(st *Spec) []Step {
	return []Step{{Kind: StepStart}, {Kind: StepSmoke}, {Kind: StepPromote}, {Kind: StepPostSmoke},
		{Kind: StepRestore}, {Kind: StepScaleDown, Duration: drainDelay(st)}}
}

// drainDelay is how long replaced instances keep running for requests in
// flight after a rollback or a drill switched away from them.
func drainDelay(st *Spec) time.Duration {
	if c := st.Strategy.Canary; c != nil {
		return min(c.ScaleDownDelay, 5*time.Second)
	}
	return 2 * time.Second
}

// Gates converts the analysis gates for the judge.
func Gates(a AnalysisSpec) []analysis.Gate {
	out := make([]analysis.Gate, 0, len(a.Gates))
	for _, g := range a.Gates {
		ag := analysis.Gate{Metric: g.Metric, MaxRatio: g.MaxRatioToStable, ConsecutiveFailures: g.ConsecutiveFailures}
		if g.Max != nil {
			ag.Max, ag.HasMax = *g.Max, true
		}
		if g.MaxIncreaseOverStable != nil {
			ag.MaxIncrease, ag.HasMaxIncrease = *g.MaxIncreaseOverStable, true
		}
		out = append(out, ag)
	}
	return out
}

// JudgeOptions converts the analysis for the judge of a rollout
// whose plan is steps: the steps that bake under analysis share the
// rollout's false-alarm budget.
func JudgeOptions(a AnalysisSpec, steps []Step) analysis.Options {
	o := analysis.Options{MinRequests: a.MinRequests, FailConfidence: a.FailConfidence, PassConfidence: a.PassConfidence, Settle: a.Interval}
	if a.Settle != nil {
		o.Settle = *a.Settle
	}
	for _, s := range steps {
		switch s.Kind {
		case StepWeight, StepInternal, StepObserve, StepBatch:
			o.Steps++
		}
	}
	return o
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

// instanceSpecFor builds the spec for starting instances of rel by the
// template of st.
func instanceSpecFor(st *Spec, rel Release) (InstanceSpec, error) {
	vars := releaseVars(st, rel)
	cmd := make([]string, len(st.Run.Command))
	for i, c := range st.Run.Command {
		v, err := Expand(c, vars)
		if err != nil {
			return InstanceSpec{}, &FieldError{Field: fmt.Sprintf("run.command[%d]", i), Message: err.Error()}
		}
		cmd[i] = v
	}
	environ := make(map[string]string, len(st.Run.Env))
	names := make([]string, 0, len(st.Run.Env))
	for k := range st.Run.Env {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		v, err := Expand(st.Run.Env[k], vars)
		if err != nil {
			return InstanceSpec{}, &FieldError{Field: "run.env." + k, Message: err.Error()}
		}
		environ[k] = v
	}
	image, err := releaseImage(st, rel, vars)
	if err != nil {
		return InstanceSpec{}, err
	}
	h := st.Run.Health
	return InstanceSpec{
		App: st.App, Env: st.Name, Version: rel.Version,
		Command: cmd, Image: image, Environ: environ, Dir: st.Run.Dir, Count: st.Instances,
		HealthPath: h.Path, HealthInterval: h.Interval, HealthTimeout: h.Timeout,
		FailureThreshold: h.FailureThreshold,
		StartTimeout:     st.Run.StartTimeout, StopGrace: st.Run.StopGrace,
	}, nil
}

// releaseImage is the image rel runs in st's environment: its own
// (deploy --image), else the environment's template with the variables
// substituted. A release with an image of its own cannot run as a local
// process, and an environment that runs images needs one from somewhere.
func releaseImage(st *Spec, rel Release, vars map[string]string) (string, error) {
	if rel.Image != "" {
		if !st.Run.Containers {
			return "", &FieldError{Field: "image", Message: fmt.Sprintf("release %s has the image %s, and environment %s runs local processes (run.command), not images: deploy it there without --image (a release with an image is another version), or to an environment on Kubernetes",
				rel.Version, rel.Image, st.Name)}
		}
		return rel.Image, nil
	}
	image, err := Expand(st.Run.Image, vars)
	if err != nil {
		return "", &FieldError{Field: "image", Message: err.Error()}
	}
	if st.Run.Containers && image == "" {
		return "", &FieldError{Field: "image", Message: fmt.Sprintf("release %s has no image: give it with deploy --image, or set environments.%s.kubernetes.image (a template such as registry.example/%s:${VERSION})",
			rel.Version, st.Name, st.App)}
	}
	return image, nil
}

// checkImage checks an image reference as a deploy or a release gives it.
func checkImage(image string) error {
	if image == "" {
		return nil
	}
	if len(image) > 1024 || strings.ContainsFunc(image, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
		return &FieldError{Field: "image", Message: fmt.Sprintf("%q is not an image reference: no spaces or control characters, at most 1024 characters, like registry.example/shop:v2 or registry.example/shop@sha256:...", image)}
	}
	return nil
}

// releaseVars are the variables substituted for a release in a stage: the
// stage's vars, the release's own, and VERSION, APP and ENV.
func releaseVars(st *Spec, rel Release) map[string]string {
	vars := map[string]string{}
	for k, v := range st.Vars {
		vars[k] = v
	}
	for k, v := range rel.Vars {
		vars[k] = v
	}
	vars["VERSION"], vars["APP"], vars["ENV"] = rel.Version, rel.App, st.Name
	return vars
}

func describeStep(s Step) string {
	switch s.Kind {
	case StepWeight:
		return fmt.Sprintf("weight %d%% for %s", s.Weight, s.Duration)
	case StepScaleDown:
		return fmt.Sprintf("scale down old release after %s", s.Duration)
	case StepInternal:
		return fmt.Sprintf("internal users only for %s", s.Duration)
	case StepObserve:
		return fmt.Sprintf("observe for %s, old release still running", s.Duration)
	case StepBatch:
		return fmt.Sprintf("replace %d instance(s), bake %s", s.Count, s.Duration)
	case StepApproval:
		return "wait for approval"
	case StepPostSmoke:
		return "post-deploy smoke checks through the router"
	case StepRestore:
		return "switch back to the current release"
	case StepMigrate:
		return "apply the release's migrations"
	default:
		return strings.ReplaceAll(string(s.Kind), "_", " ")
	}
}
