// Package config reads and validates shipgate.yaml, the file in which a
// team declares one app: how to run it, where it runs, how a new release
// reaches its users and what makes a release bad.
//
// Load and Parse decode strictly (an unknown field is an error), fill in the
// documented defaults, then validate; every problem found is reported with
// file:line and the path of the field, and a config with any problem is
// never returned. The doc comments on the fields below are the user
// documentation of each field; docs/config.md and the JSON Schema in
// docs/shipgate.schema.json say the same.
package config

import "time"

// Config is one app's shipgate.yaml.
type Config struct {
	// App is the app's name: lowercase letters, digits and dashes, starting
	// with a letter, at most 63 characters. Required.
	App string `yaml:"app" json:"app"`
	// Vars are the default release variables. A release's own variables
	// (deploy --var KEY=VALUE) override them. ${NAME} in run.command and
	// run.env is replaced by the variable's value; ${VERSION} and ${PORT}
	// are always set.
	Vars map[string]string `yaml:"vars,omitempty" json:"vars,omitempty"`
	// Run says how to start one instance of a release.
	Run Run `yaml:"run" json:"run"`
	// Environments are the places releases run, by name (for example
	// "staging", "production"). At least one is required.
	Environments map[string]*Environment `yaml:"environments" json:"environments"`
	// Strategy says how a new release replaces the stable one.
	Strategy Strategy `yaml:"strategy" json:"strategy"`
	// Analysis says how a canary is judged while it bakes.
	Analysis Analysis `yaml:"analysis" json:"analysis"`
	// Smoke checks are sent straight to every new instance, before it gets
	// any user traffic. Any failure rolls the release back.
	Smoke []SmokeCheck `yaml:"smoke,omitempty" json:"smoke,omitempty"`
	// PostSmoke checks are sent through the environment's router right
	// after the new release takes 100% of traffic. Any failure rolls the
	// release back.
	PostSmoke []SmokeCheck `yaml:"post_smoke,omitempty" json:"post_smoke,omitempty"`
	// Pipeline is the order in which a release goes through environments,
	// for example [staging, production]. An environment in the pipeline
	// refuses a release that has not been deployed successfully to the
	// environment before it. Every name must be an environment; an
	// environment may be left out of the pipeline (it then has no
	// predecessor). Default: no order.
	Pipeline []string `yaml:"pipeline,omitempty" json:"pipeline,omitempty"`
	// Hotfix says which gates an emergency deploy (deploy --hotfix
	// --reason ...) may skip and how much shorter its bakes are. Without
	// it, --hotfix is refused. Smoke checks are never skipped.
	Hotfix *Hotfix `yaml:"hotfix,omitempty" json:"hotfix,omitempty"`
	// Migrations are the schema migrations each release brings. When set,
	// a deploy is refused unless every migration's down restores the
	// schema and the data (checked on a scratch database), the ups are
	// applied before the new release gets traffic, and a rollback runs the
	// downs of exactly the migrations its rollout applied.
	Migrations *Migrations `yaml:"migrations,omitempty" json:"migrations,omitempty"`
	// Notifications are the webhooks Shipgate tells what happened, and the
	// weekly report's schedule.
	Notifications *Notifications `yaml:"notifications,omitempty" json:"notifications,omitempty"`
	// DORA sets the calendar of the DORA numbers and the weekly report.
	DORA *DORA `yaml:"dora,omitempty" json:"dora,omitempty"`
	// Tests says how the test results recorded with releases are read:
	// the levels of tests and what counts as an infrastructure failure.
	Tests *Tests `yaml:"tests,omitempty" json:"tests,omitempty"`
	// Retire says how shipgate retire deletes a route or a flag safely: how
	// long it must have had no traffic, how long it is watched once
	// disabled, and the backup command that must succeed first.
	Retire *Retire `yaml:"retire,omitempty" json:"retire,omitempty"`
	// Doctor says which of the seven gates shipgate doctor must find
	// installed; a required gate found missing makes it exit 4.
	Doctor *Doctor `yaml:"doctor,omitempty" json:"doctor,omitempty"`

	// Source is the path the config was loaded from, as it was given to
	// Load or Parse. It is not part of the file.
	Source string `yaml:"-" json:"-"`
}

// Run says how to start one instance of a release as a local process.
type Run struct {
	// Command is the program and its arguments. Required. ${VERSION},
	// ${PORT} and release variables are substituted in each element.
	Command []string `yaml:"command" json:"command"`
	// Env holds extra environment variables for the process; values are
	// substituted like Command. The process does not inherit the server's
	// environment except PATH, HOME, LANG, TZ and TMPDIR.
	Env map[string]string `yaml:"env,omitempty" json:"env,omitempty"`
	// Dir is the working directory of the process, relative to the
	// directory of shipgate.yaml. Default: that directory.
	Dir string `yaml:"dir,omitempty" json:"dir,omitempty"`
	// Instances is the number of instances of each release. Default 2.
	Instances int `yaml:"instances,omitempty" json:"instances,omitempty"`
	// Health is the health check of every instance.
	Health Health `yaml:"health,omitempty" json:"health,omitempty"`
	// StartTimeout is how long an instance may take to become healthy
	// before it counts as failed to start. Default 30s.
	StartTimeout Duration `yaml:"start_timeout,omitempty" json:"start_timeout,omitempty"`
	// StopGrace is how long an instance may take to exit after SIGTERM
	// before it gets SIGKILL. Default 10s.
	StopGrace Duration `yaml:"stop_grace,omitempty" json:"stop_grace,omitempty"`
}

// Health is an HTTP health check: a GET that must answer 2xx.
type Health struct {
	// Path is the path that is requested. Default /healthz.
	Path string `yaml:"path,omitempty" json:"path,omitempty"`
	// Interval is the time between two checks of a running instance. Default 1s.
	Interval Duration `yaml:"interval,omitempty" json:"interval,omitempty"`
	// Timeout is how long one check may take. Default 1s.
	Timeout Duration `yaml:"timeout,omitempty" json:"timeout,omitempty"`
	// FailureThreshold is the number of failed checks in a row after
	// which a running instance counts as unhealthy. Default 3.
	FailureThreshold int `yaml:"failure_threshold,omitempty" json:"failure_threshold,omitempty"`
}

// Environment is one place releases run, behind its own router.
type Environment struct {
	// Listen is the address of the builtin router of this environment,
	// host:port. Required, unless the environment runs on kubernetes. Bind to 127.0.0.1 unless the router must be
	// reached from other machines.
	Listen string `yaml:"listen" json:"listen"`
	// Sticky says how a user is recognised so that they stay on one
	// version for the whole rollout. Without it each request is assigned
	// on its own.
	Sticky Sticky `yaml:"sticky,omitempty" json:"sticky,omitempty"`
	// PreviewListen is a second address of the router, host:port, that
	// sends every request to the release being rolled out, before users
	// see it: blue-green smoke checks go there, and people can try the
	// new release by hand. Optional. It must differ from every listen and
	// preview_listen address of every environment.
	PreviewListen string `yaml:"preview_listen,omitempty" json:"preview_listen,omitempty"`
	// Vars override the app's vars in this environment; a release's own
	// variables override both. Names follow the rules of the app's vars.
	Vars map[string]string `yaml:"vars,omitempty" json:"vars,omitempty"`
	// Instances overrides run.instances in this environment, 1 to 100.
	Instances int `yaml:"instances,omitempty" json:"instances,omitempty"`
	// Gates must pass before a release may be deployed here.
	Gates Gates `yaml:"gates,omitempty" json:"gates,omitempty"`
	// Strategy replaces the app's strategy in this environment. It must
	// set one of canary, blue_green and rolling; what it leaves out takes
	// its default, not the app's value.
	Strategy *Strategy `yaml:"strategy,omitempty" json:"strategy,omitempty"`
	// Analysis replaces the app's analysis in this environment; what it
	// leaves out takes its default, not the app's value.
	Analysis *Analysis `yaml:"analysis,omitempty" json:"analysis,omitempty"`
	// Smoke replaces the app's smoke checks in this environment; an empty
	// list means no smoke checks here.
	Smoke []SmokeCheck `yaml:"smoke,omitempty" json:"smoke,omitempty"`
	// PostSmoke replaces the app's post_smoke checks in this environment;
	// an empty list means no post_smoke checks here.
	PostSmoke []SmokeCheck `yaml:"post_smoke,omitempty" json:"post_smoke,omitempty"`
	// Metrics says where releases are measured here: the builtin router
	// (the default) or Prometheus.
	Metrics *Metrics `yaml:"metrics,omitempty" json:"metrics,omitempty"`
	// Kubernetes, when set, runs this environment's releases on a
	// Kubernetes cluster (Deployments, a Gateway API HTTPRoute) instead of
	// as local processes behind the builtin router; listen is then not
	// needed. See docs/kubernetes.md.
	Kubernetes *Kubernetes `yaml:"kubernetes,omitempty" json:"kubernetes,omitempty"`
}

// Gates are the conditions a release must meet before it is deployed to an
// environment. A deploy that fails one is refused with an error naming it,
// unless it is a hotfix and the hotfix rules allow skipping that gate.
type Gates struct {
	// Checks are the names of release checks (recorded with shipgate
	// release create --check NAME=passed) that must have passed. A name is
	// letters, digits, dots, dashes and underscores, starting with a
	// letter or digit.
	Checks []string `yaml:"checks,omitempty" json:"checks,omitempty"`
	// Approval makes the rollout wait after its smoke checks, before any
	// user traffic, until enough people ran shipgate approve: true for one
	// approval by anyone allowed to approve, or a mapping that says how
	// many and who. false, like leaving it out, means no approval.
	Approval *Approval `yaml:"approval,omitempty" json:"approval,omitempty"`
	// DrillWithin, when set, requires a successful rollback drill (shipgate
	// drill) of the app within this long before a deploy here. 0s, like
	// leaving it out, means no drill is required.
	DrillWithin Duration `yaml:"drill_within,omitempty" json:"drill_within,omitempty"`
	// Drift, when set, refuses a deploy while this environment differs from
	// another one in more than the allowed ways.
	Drift *DriftGate `yaml:"drift,omitempty" json:"drift,omitempty"`
	// FlakyTests, when set, refuses a release whose CI ran a test that has
	// been flaky for longer than max_age (test results are recorded with
	// shipgate release create --junit).
	FlakyTests *FlakyTestsGate `yaml:"flaky_tests,omitempty" json:"flaky_tests,omitempty"`
	// CITime, when set, refuses a release whose CI took longer than max
	// (recorded with shipgate release create --ci-duration).
	CITime *CITimeGate `yaml:"ci_time,omitempty" json:"ci_time,omitempty"`
	// RequireLevels refuses a release unless its CI ran tests of each of
	// these levels (unit, integration, e2e, or a level of tests.levels)
	// and none of them failed.
	RequireLevels []string `yaml:"require_levels,omitempty" json:"require_levels,omitempty"`
}

// FlakyTestsGate limits how long a flaky test may stay.
type FlakyTestsGate struct {
	// MaxAge is how long a test may have been flaky before a release that
	// runs it is refused: fix or delete it within this time. Default 48h.
	MaxAge Duration `yaml:"max_age,omitempty" json:"max_age,omitempty"`
}

// CITimeGate limits how long CI may take.
type CITimeGate struct {
	// Max is the longest CI run a release may have had. Default 15m.
	Max Duration `yaml:"max,omitempty" json:"max,omitempty"`
}

// Tests says how recorded test results are read.
type Tests struct {
	// Levels maps a level name to glob patterns matched against each
	// test's id (class and name) and file, '*' matching any characters;
	// a pattern without upper-case letters ignores case. Levels are tried
	// in the order e2e, integration, then the others by name; a test that
	// matches none is a unit test. A level given here replaces its default
	// patterns: e2e *e2e*, *browser*, *playwright*, *cypress*, *selenium*;
	// integration *integration*, *IT.*, *_it.*, *_it_*.
	Levels map[string][]string `yaml:"levels,omitempty" json:"levels,omitempty"`
	// InfraFailureRatio is the share of a run's tests that must fail at
	// once for the run to count as an infrastructure failure (its failures
	// are then not flakiness), above 0 and at most 1. Default 0.5.
	InfraFailureRatio float64 `yaml:"infra_failure_ratio,omitempty" json:"infra_failure_ratio,omitempty"`
}

// Approval says who must approve a rollout before users see it. Every
// approval, and every refused one, is written to the audit log.
type Approval struct {
	// Required is the number of different people who must approve, 1 to
	// 10. Default 1.
	Required int `yaml:"required,omitempty" json:"required,omitempty"`
	// PreventSelfApproval, when true, refuses an approval from whoever
	// asked for the deploy (separation of duties): a CI token cannot
	// approve its own deploy.
	PreventSelfApproval bool `yaml:"prevent_self_approval,omitempty" json:"prevent_self_approval,omitempty"`
	// Roles are the token roles that may approve: deployer, admin.
	// Default: both.
	Roles []string `yaml:"roles,omitempty" json:"roles,omitempty"`
}

// DriftGate limits how far an environment may drift from another.
type DriftGate struct {
	// Against is the environment to compare with, not this one. Default:
	// the environment before this one in the pipeline; required when there
	// is none.
	Against string `yaml:"against,omitempty" json:"against,omitempty"`
	// Allow lists the kinds of difference that are tolerated: vars (the
	// names of variables, never their values), command (the shape of the
	// run command), instances, migrations. Default: none.
	Allow []string `yaml:"allow,omitempty" json:"allow,omitempty"`
}

// Migrations says where a release's migrations are and which database
// they change.
type Migrations struct {
	// Dir is the directory of migration files, golang-migrate style
	// (NNN_name.up.sql / NNN_name.down.sql), goose, dbmate, sql-migrate or
	// Flyway style, relative to the directory of shipgate.yaml. Every .sql
	// file in it must be a migration, or be listed in ignore. Release variables and ${VERSION} are
	// substituted, so each release can bring its own. Required.
	Dir string `yaml:"dir" json:"dir"`
	// Database is the URL of the database: postgres://... or sqlite:PATH.
	// Variables are substituted (an environment's vars can point each
	// environment at its own database). Verification runs on a scratch
	// database created on the same server. Required.
	Database string `yaml:"database" json:"database"`
	// Seed is an SQL file of representative rows, relative to the directory
	// of shipgate.yaml; with it, verification also catches a migration that
	// loses data or cannot hold it.
	Seed string `yaml:"seed,omitempty" json:"seed,omitempty"`
	// Setup is an SQL file run on the scratch database before the
	// migrations when they are verified, relative to the directory of
	// shipgate.yaml: what they expect to find there, such as their runner's
	// bookkeeping table, an extension or a function.
	Setup string `yaml:"setup,omitempty" json:"setup,omitempty"`
	// Format reads every file of dir in one format: golang-migrate, stem,
	// goose, sql-migrate, dbmate or flyway. Default: each file's format is
	// recognised from its name and content.
	Format string `yaml:"format,omitempty" json:"format,omitempty"`
	// Ignore lists the .sql files of dir that are not migrations, by name
	// or pattern (seed.sql, fixtures_*.sql).
	Ignore []string `yaml:"ignore,omitempty" json:"ignore,omitempty"`
	// SQLiteForeignKeys enforces SQLite's foreign keys while migrations
	// run, for a project whose own runner does. Default: off, as SQLite
	// and the common runners leave them, with PRAGMA foreign_key_check
	// after each migration.
	SQLiteForeignKeys bool `yaml:"sqlite_foreign_keys,omitempty" json:"sqlite_foreign_keys,omitempty"`
}

// Retire holds the settings of shipgate retire.
type Retire struct {
	// Cycle is the business cycle: a route or a flag is retired only if it
	// had no request or evaluation for this long. Default 168h (a week).
	Cycle Duration `yaml:"cycle,omitempty" json:"cycle,omitempty"`
	// Watch is how long a disabled route or flag is watched before it is
	// deleted; any request or evaluation in it enables it again. Default
	// 24h.
	Watch Duration `yaml:"watch,omitempty" json:"watch,omitempty"`
	// BackupCommand is run after the config, the release history and the
	// audit log are exported, with SHIPGATE_BACKUP_DIR set to where they
	// are (for example [sh, -c, "pg_dump $DB > $SHIPGATE_BACKUP_DIR/db.sql"]);
	// the retirement goes on only if it exits 0. Optional.
	BackupCommand []string `yaml:"backup_command,omitempty" json:"backup_command,omitempty"`
}

// Doctor holds the settings of shipgate doctor.
type Doctor struct {
	// Required lists the gates that must not be missing: release_day,
	// iac, staging, browser_tests, canary, rollback, monday_report. A
	// gate installed only partly passes; a missing one fails the doctor.
	Required []string `yaml:"required,omitempty" json:"required,omitempty"`
}

// Hotfix holds the emergency rules.
type Hotfix struct {
	// Skip lists the gates a hotfix may skip: pipeline (the environment
	// before), checks, approval, drill, drift, flaky_tests, ci_time,
	// require_levels. Every skipped gate is
	// written to the audit log with the hotfix's reason. Smoke checks are
	// not a gate and cannot be listed.
	Skip []string `yaml:"skip,omitempty" json:"skip,omitempty"`
	// BakeScale multiplies every bake time of a hotfix: greater than 0, at
	// most 1. Default 0.1.
	BakeScale float64 `yaml:"bake_scale,omitempty" json:"bake_scale,omitempty"`
}

// Sticky names the request header or cookie that identifies a user. At
// most one of the two may be set.
type Sticky struct {
	// Header is the name of a request header holding a user id, for
	// example X-User-ID.
	Header string `yaml:"header,omitempty" json:"header,omitempty"`
	// Cookie is the name of a cookie holding a user or session id.
	Cookie string `yaml:"cookie,omitempty" json:"cookie,omitempty"`
}

// Strategy says how a new release replaces the stable one. At most one of
// its fields may be set; when none is, the default canary is used.
type Strategy struct {
	// Canary sends a growing share of users to the new release, judging
	// it at each step.
	Canary *Canary `yaml:"canary,omitempty" json:"canary,omitempty"`
	// BlueGreen starts the new release beside the old one, smoke-checks it
	// on the preview address, and switches all traffic at once.
	BlueGreen *BlueGreen `yaml:"blue_green,omitempty" json:"blue_green,omitempty"`
	// Rolling replaces instances in batches.
	Rolling *Rolling `yaml:"rolling,omitempty" json:"rolling,omitempty"`
}

// BlueGreen is the blue-green strategy.
type BlueGreen struct {
	// KeepBlue is how long the old (blue) release keeps running after the
	// switch, so that switching back is instant. Default 10m.
	KeepBlue Duration `yaml:"keep_blue,omitempty" json:"keep_blue,omitempty"`
	// Analysis is how long the new (green) release is analysed after the
	// switch, against what blue measured before it; a failed gate switches
	// back at once. Default 1m.
	Analysis Duration `yaml:"analysis,omitempty" json:"analysis,omitempty"`
}

// Rolling is the rolling strategy: instances are replaced in batches, each
// batch health-checked and analysed before the next.
type Rolling struct {
	// MaxSurge is how many new instances may run beyond the wanted count
	// during the rollout, at least 0. Default 1.
	MaxSurge int `yaml:"max_surge" json:"max_surge"`
	// MaxUnavailable is how many instances below the wanted count may be
	// serving during the rollout, at least 0. Default 0. MaxSurge and
	// MaxUnavailable cannot both be 0.
	MaxUnavailable int `yaml:"max_unavailable,omitempty" json:"max_unavailable,omitempty"`
	// Bake is how long each batch is analysed before the next. Default 30s.
	Bake Duration `yaml:"bake,omitempty" json:"bake,omitempty"`
}

// Internal routes internal users to the canary before any percentage of
// the public: requests matching the header, the cookie or the user list.
// At least one of header, cookie and users is required.
type Internal struct {
	// Header is a request header that marks internal users, for example
	// X-Internal.
	Header string `yaml:"header,omitempty" json:"header,omitempty"`
	// Values are the header or cookie values that match; empty means any
	// value. Only with header or cookie.
	Values []string `yaml:"values,omitempty" json:"values,omitempty"`
	// Cookie is a cookie that marks internal users.
	Cookie string `yaml:"cookie,omitempty" json:"cookie,omitempty"`
	// Users are user ids (as read from the environment's sticky header or
	// cookie) that are internal. Every environment whose strategy has
	// users must set sticky.
	Users []string `yaml:"users,omitempty" json:"users,omitempty"`
	// Bake is how long only internal users see the canary. Default 10m.
	Bake Duration `yaml:"bake,omitempty" json:"bake,omitempty"`
}

// Canary is the canary strategy.
type Canary struct {
	// Internal, when set, is a first step in which only internal users
	// see the canary; they stay on it through the percentage steps.
	Internal *Internal `yaml:"internal,omitempty" json:"internal,omitempty"`
	// Steps are the traffic weights the canary goes through, each held for
	// its bake time under analysis, before the release is promoted to 100%.
	// Weights are percentages from 1 to 100, strictly increasing. Default:
	// 5% for 10m, 25% for 15m, 50% for 15m.
	Steps []CanaryStep `yaml:"steps,omitempty" json:"steps,omitempty"`
	// ScaleDownDelay is how long the old release keeps running after the
	// promotion, so that requests in flight finish. Default 30s.
	ScaleDownDelay Duration `yaml:"scale_down_delay,omitempty" json:"scale_down_delay,omitempty"`
}

// CanaryStep is one weight of a canary and how long it is held.
type CanaryStep struct {
	// Weight is the percentage of users sent to the canary, 1 to 100.
	Weight int `yaml:"weight" json:"weight"`
	// Bake is how long the weight is held while the canary is analysed.
	// A step ends when its bake time is over and every gate passes; if a
	// gate is still inconclusive then, the step waits up to as long again,
	// then follows analysis.on_inconclusive if the evidence is still
	// missing. Default 10m.
	Bake Duration `yaml:"bake,omitempty" json:"bake,omitempty"`
}

// Analysis says how a canary is judged.
type Analysis struct {
	// Interval is the time between two judgements, the verdicts that are
	// persisted and reported; between them the engine looks at the evidence
	// every second and rolls back at once on a failed look. Default 10s.
	Interval Duration `yaml:"interval,omitempty" json:"interval,omitempty"`
	// MinRequests is the least number of canary requests in a window
	// before any gate may pass. A gate may fail sooner when the evidence
	// is already overwhelming. Default 50.
	MinRequests int `yaml:"min_requests,omitempty" json:"min_requests,omitempty"`
	// FailConfidence is how sure the analysis must be that the canary is
	// past a threshold before it rolls back, between 0.5 and 0.9999: a
	// release within a gate's limits is rolled back by that gate with
	// probability at most 1-fail_confidence over the whole rollout,
	// however often it is judged. Default 0.99.
	FailConfidence float64 `yaml:"fail_confidence,omitempty" json:"fail_confidence,omitempty"`
	// PassConfidence is how sure the analysis must be that the canary is
	// not far past a threshold (1.9 times an error rate's, docs/analysis.md)
	// before the gate passes, between 0.5 and 0.9999. Default 0.95.
	PassConfidence float64 `yaml:"pass_confidence,omitempty" json:"pass_confidence,omitempty"`
	// Settle is how long latency gates leave out after each weight change,
	// while connections warm up: they judge the windows that begin at the
	// first judgement at least this long after the change. 0s judges
	// everything. Default: one interval.
	Settle *Duration `yaml:"settle,omitempty" json:"settle,omitempty"`
	// Gates are the conditions the canary must meet. Default: error_rate
	// max 1%, and latency_p99 max_ratio_to_stable 2.
	Gates []Gate `yaml:"gates,omitempty" json:"gates,omitempty"`
	// OnInconclusive is what a rollout does when a bake is over (and as
	// long again has passed) but a gate has neither passed nor failed for
	// lack of evidence, in every strategy (canary steps, blue-green
	// observe, rolling batches): pause (wait for shipgate promote or
	// shipgate rollback, and say so in status), extend (keep baking until
	// every gate passes or one fails) or rollback. Default pause.
	OnInconclusive string `yaml:"on_inconclusive,omitempty" json:"on_inconclusive,omitempty"`
	// ExpectedRPS is the number of requests per second the environment's
	// router usually serves. With it, validate and plan warn about every
	// bake whose share of that traffic cannot reach, in its bake time, the
	// evidence its gates need to pass. Optional.
	ExpectedRPS float64 `yaml:"expected_rps,omitempty" json:"expected_rps,omitempty"`
}

// The values of Analysis.OnInconclusive.
const (
	InconclusivePause    = "pause"
	InconclusiveExtend   = "extend"
	InconclusiveRollback = "rollback"
)

// Metric names a measurement of a release's traffic.
type Metric string

// The metrics a gate can judge.
const (
	MetricErrorRate  Metric = "error_rate"
	MetricLatencyP50 Metric = "latency_p50"
	MetricLatencyP95 Metric = "latency_p95"
	MetricLatencyP99 Metric = "latency_p99"
)

// Gate is one condition on a metric of the canary.
type Gate struct {
	// Metric is error_rate (the share of requests answered 5xx or not
	// answered at all), latency_p50, latency_p95 or latency_p99. Required.
	Metric Metric `yaml:"metric" json:"metric"`
	// Max is an absolute limit: for error_rate a fraction (0.005) or a
	// percentage ("0.5%"); for a latency a duration ("250ms").
	Max *Threshold `yaml:"max,omitempty" json:"max,omitempty"`
	// MaxRatioToStable is a limit relative to the stable release, measured
	// over the same window: 2 means "at most twice the stable's value" (its
	// latency at the same quantile, or its error rate). At least one of
	// max, max_ratio_to_stable and max_increase_over_stable is required;
	// when several are set, the canary must meet them all.
	MaxRatioToStable float64 `yaml:"max_ratio_to_stable,omitempty" json:"max_ratio_to_stable,omitempty"`
	// MaxIncreaseOverStable is, for error_rate only, a limit above the
	// stable release's error rate over the same window, as a fraction
	// (0.005) or a percentage ("0.5%"): the canary may fail at most that
	// share of requests more than the stable.
	MaxIncreaseOverStable *Threshold `yaml:"max_increase_over_stable,omitempty" json:"max_increase_over_stable,omitempty"`
	// ConsecutiveFailures is how many judgements in a row the gate must
	// fail before the canary is rolled back, for metric sources noisy
	// enough that one failed judgement should not decide. Default 1.
	ConsecutiveFailures int `yaml:"consecutive_failures,omitempty" json:"consecutive_failures,omitempty"`
}

// Threshold is the value of Gate.Max: a fraction for error_rate, or a
// latency in seconds for latency metrics.
type Threshold struct {
	// Value is the fraction (0.005 for 0.5%) or the number of seconds.
	Value float64
	// IsDuration is true when the threshold was written as a duration.
	IsDuration bool
}

// SmokeCheck is one HTTP request sent straight to a new instance.
type SmokeCheck struct {
	// Path is the path requested with GET. Required; starts with "/".
	Path string `yaml:"path" json:"path"`
	// ExpectStatus is the status code the instance must answer. Default 200.
	ExpectStatus int `yaml:"expect_status,omitempty" json:"expect_status,omitempty"`
	// ExpectBody, when set, must occur in the response body.
	ExpectBody string `yaml:"expect_body,omitempty" json:"expect_body,omitempty"`
	// Timeout is how long the request may take. Default 5s.
	Timeout Duration `yaml:"timeout,omitempty" json:"timeout,omitempty"`
}

// Duration is a time.Duration written as a Go duration string ("1m30s").
type Duration time.Duration

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }
