package rollout

import (
	"context"
	"encoding/json"
	"path/filepath"
	"time"

	"github.com/shipgate/shipgate/internal/testsignal"
)

// Spec is everything the engine needs to know of one environment of an
// app, in the engine's own terms: internal/plan translates the config file
// into it. A deploy freezes the environment's Spec into its rollout, so
// that a rollout resumed after the config changed (apply, SIGHUP, a server
// restart on an edited file) runs what was planned: the same command, the
// same gates, the same bakes.
//
// Variable values are secrets and are never frozen: Vars is left out of
// the record, and a resumed rollout takes the values from the release
// and the live config (VarNames says which names the plan had).
type Spec struct {
	// App and Name are the app and the environment.
	App  string `json:"app"`
	Name string `json:"env"`
	// Previous is the environment before this one in the pipeline, "" if
	// there is none.
	Previous string `json:"previous,omitempty"`
	// Listen is where users reach the environment's router, PreviewListen
	// its preview address ("" when there is none).
	Listen        string `json:"listen,omitempty"`
	PreviewListen string `json:"preview_listen,omitempty"`
	// PreviewHeader, when set, is the header (with the value "true") by
	// which the environment's router sends a request to the release being
	// rolled out, until the switch: the preview of a router that has no
	// preview address (a Gateway API HTTPRoute rule).
	PreviewHeader string `json:"preview_header,omitempty"`
	// Instances is the number of instances per release.
	Instances int `json:"instances"`
	// Strategy says how a release replaces the stable one.
	Strategy StrategySpec `json:"strategy"`
	// Analysis says how the new release is judged.
	Analysis AnalysisSpec `json:"analysis"`
	// Smoke checks go straight to the new instances, PostSmoke through the
	// router after promotion.
	Smoke     []SmokeCheck `json:"smoke,omitempty"`
	PostSmoke []SmokeCheck `json:"post_smoke,omitempty"`
	// Gates are checked before a deploy starts.
	Gates GatesSpec `json:"gates"`
	// Run is the template of every instance.
	Run RunSpec `json:"run"`
	// Hotfix is the app's emergency rules; nil when it has none.
	Hotfix *HotfixSpec `json:"hotfix,omitempty"`
	// Migrations is where the releases' migrations are and the database
	// they run against; nil when the app has none.
	Migrations *MigrationsSpec `json:"migrations,omitempty"`
	// BaseDir is the directory relative paths of the config resolve
	// against (the config file's).
	BaseDir string `json:"base_dir,omitempty"`
	// Vars are the app's variables overridden by the environment's. They
	// are never recorded with a rollout.
	Vars map[string]string `json:"-"`
	// VarNames are the names of Vars, sorted.
	VarNames []string `json:"var_names,omitempty"`
}

// StrategySpec names one strategy; exactly one field is set (none means a
// canary with no steps).
type StrategySpec struct {
	Canary    *CanarySpec    `json:"canary,omitempty"`
	BlueGreen *BlueGreenSpec `json:"blue_green,omitempty"`
	Rolling   *RollingSpec   `json:"rolling,omitempty"`
}

// CanarySpec is a canary: internal users first, then each weight with its
// bake, then promotion and a scale-down after a delay.
type CanarySpec struct {
	Internal       *InternalSpec    `json:"internal,omitempty"`
	Steps          []CanaryStepSpec `json:"steps,omitempty"`
	ScaleDownDelay time.Duration    `json:"scale_down_delay,omitempty"`
}

// InternalSpec is who the internal users are and how long they alone see
// the new release.
type InternalSpec struct {
	Match
	Bake time.Duration `json:"bake,omitempty"`
}

// CanaryStepSpec is one canary weight and its bake.
type CanaryStepSpec struct {
	Weight int           `json:"weight"`
	Bake   time.Duration `json:"bake,omitempty"`
}

// BlueGreenSpec is a blue-green switch: KeepBlue is how long blue keeps
// running after it, Analysis how long green is observed.
type BlueGreenSpec struct {
	KeepBlue time.Duration `json:"keep_blue,omitempty"`
	Analysis time.Duration `json:"analysis,omitempty"`
}

// RollingSpec replaces MaxSurge+MaxUnavailable instances per batch, each
// batch baking Bake.
type RollingSpec struct {
	MaxSurge       int           `json:"max_surge"`
	MaxUnavailable int           `json:"max_unavailable,omitempty"`
	Bake           time.Duration `json:"bake,omitempty"`
}

// AnalysisSpec is how the new release is judged against the stable one.
type AnalysisSpec struct {
	Interval       time.Duration `json:"interval,omitempty"`
	MinRequests    int           `json:"min_requests,omitempty"`
	FailConfidence float64       `json:"fail_confidence,omitempty"`
	PassConfidence float64       `json:"pass_confidence,omitempty"`
	// Settle, when set, overrides Interval as the judge's settle time.
	Settle *time.Duration `json:"settle,omitempty"`
	Gates  []GateSpec     `json:"gates,omitempty"`
	// OnInconclusive is InconclusivePause, InconclusiveExtend or
	// InconclusiveRollback.
	OnInconclusive string  `json:"on_inconclusive,omitempty"`
	ExpectedRPS    float64 `json:"expected_rps,omitempty"`
}

// What a bake does when its gates are still inconclusive at its end.
const (
	InconclusivePause    = "pause"
	InconclusiveExtend   = "extend"
	InconclusiveRollback = "rollback"
)

// Metric names of the analysis gates.
const (
	MetricErrorRate  = "error_rate"
	MetricLatencyP50 = "latency_p50"
	MetricLatencyP95 = "latency_p95"
	MetricLatencyP99 = "latency_p99"
)

// GateSpec is one analysis gate. Max and MaxIncreaseOverStable are a
// fraction for error_rate and seconds for a latency.
type GateSpec struct {
	Metric                string   `json:"metric"`
	Max                   *float64 `json:"max,omitempty"`
	MaxRatioToStable      float64  `json:"max_ratio_to_stable,omitempty"`
	MaxIncreaseOverStable *float64 `json:"max_increase_over_stable,omitempty"`
	ConsecutiveFailures   int      `json:"consecutive_failures,omitempty"`
}

// GatesSpec are the gates a deploy must pass before it starts.
type GatesSpec struct {
	Checks      []string      `json:"checks,omitempty"`
	Approval    *ApprovalRule `json:"approval,omitempty"`
	DrillWithin time.Duration `json:"drill_within,omitempty"`
	Drift       *DriftSpec    `json:"drift,omitempty"`
	// Tests are the test gates (flaky_tests, ci_time, require_levels).
	Tests testsignal.Gates `json:"tests,omitzero"`
}

// DriftSpec is the drift gate: the environment compared with Against
// (the stage before it when empty), the kinds of difference in Allow
// allowed.
type DriftSpec struct {
	Against string   `json:"against,omitempty"`
	Allow   []string `json:"allow,omitempty"`
}

// RunSpec is the template of an instance. Command, Env and Dir may hold
// ${NAME} references to variables, substituted per release.
type RunSpec struct {
	Command []string `json:"command,omitempty"`
	// Image is the image template of an environment that runs container
	// images; a release's own image replaces it.
	Image string `json:"image,omitempty"`
	// Containers is true when the environment runs container images
	// (Kubernetes): a release may carry an image of its own, and must
	// have one from somewhere. False for local processes, which refuse a
	// release with an image.
	Containers bool              `json:"containers,omitempty"`
	Env        map[string]string `json:"env,omitempty"`
	Dir        string            `json:"dir,omitempty"`
	// Health is the check of every instance, also the router's.
	Health       RouteHealth   `json:"health"`
	StartTimeout time.Duration `json:"start_timeout,omitempty"`
	StopGrace    time.Duration `json:"stop_grace,omitempty"`
}

// HotfixSpec is the app's emergency rules: the gates a hotfix may skip,
// and the factor (below 1) its bakes are scaled by.
type HotfixSpec struct {
	Skip      []string `json:"skip,omitempty"`
	BakeScale float64  `json:"bake_scale,omitempty"`
}

// MigrationsSpec is where the releases' migrations are and the database
// they run against, both possibly with ${NAME} references; Seed is a data
// file for the reversibility check.
type MigrationsSpec struct {
	Dir      string `json:"dir"`
	Database string `json:"database"`
	Seed     string `json:"seed,omitempty"`
}

// Path resolves a path of the config (relative to BaseDir) to one the
// server can open.
func (s *Spec) Path(p string) string {
	if p == "" || filepath.IsAbs(p) || s.BaseDir == "" {
		return p
	}
	return filepath.Join(s.BaseDir, p)
}

// Specs gives the engine the live configuration of the app it serves, as
// Specs; internal/plan implements it over the config file. Errors name
// the environment and the file.
type Specs interface {
	// App is the app's name.
	App() string
	// EnvNames are the app's environments, sorted.
	EnvNames() []string
	// DefaultEnv is the environment of a request that names none, or an
	// error that says why there is none.
	DefaultEnv() (string, error)
	// Spec returns the environment's Spec now.
	Spec(env string) (*Spec, error)
	// Legacy translates the configuration that rollouts recorded before
	// Specs (their "stage" JSON) into a Spec.
	Legacy(ctx context.Context, stage json.RawMessage) (*Spec, error)
}
