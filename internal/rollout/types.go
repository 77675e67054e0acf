package rollout

import (
	"encoding/json"
	"errors"
	"time"

	"github.com/shipgate/shipgate/internal/analysis"
)

// Error kinds. Adapters wrap these so that the API can map them to status
// codes in one place.
var (
	// ErrNotFound means the app, environment, release or rollout does not exist.
	ErrNotFound = errors.New("not found")
	// ErrConflict means the request clashes with the current state, for
	// example a deploy while another rollout of the environment is running.
	ErrConflict = errors.New("conflict")
	// ErrInvalid means the request itself is wrong; the error says which field.
	ErrInvalid = errors.New("invalid")
	// ErrForbidden means the one who asks may not do this, whatever their
	// token's role: for example approve their own deploy.
	ErrForbidden = errors.New("forbidden")
	// ErrNotLeader means the store refused a write because this server
	// no longer leads (another won the store's lease): the engine stops
	// driving at once, acting on nothing more.
	ErrNotLeader = errors.New("not the leader")
	// ErrUnavailable means the store did not answer (a database
	// restarting, a connection cut): nothing was written. A step whose
	// record failed so waits for the store and runs again from its last
	// committed state, instead of being taken for a failed release.
	ErrUnavailable = errors.New("store unavailable")
)

// FieldError is an invalid request naming the field at fault. It matches
// ErrInvalid with errors.Is.
type FieldError struct {
	Field   string
	Message string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Message }

// Is reports whether target is ErrInvalid.
func (e *FieldError) Is(target error) bool { return target == ErrInvalid }

// Release is an immutable version of an app.
type Release struct {
	App     string `json:"app"`
	Version string `json:"version"`
	// Commit is the source commit SHA, when known.
	Commit string `json:"commit,omitempty"`
	// CommitTime is when the commit was made, for lead time.
	CommitTime time.Time `json:"commit_time,omitzero"`
	// Checks are CI check results by name.
	Checks map[string]CheckState `json:"checks,omitempty"`
	// Vars are release variables; they override the app's default vars.
	Vars map[string]string `json:"vars,omitempty"`
	// Image is the container image the release runs on an environment on
	// Kubernetes (deploy --image), in place of the environment's
	// kubernetes.image; empty when the release names none.
	Image     string    `json:"image,omitempty"`
	CreatedAt time.Time `json:"created_at"`
}

// Instance is one running copy of a release.
type Instance struct {
	// ID is unique across the runtime, e.g. "shop-production-v2-1".
	ID      string `json:"id"`
	App     string `json:"app"`
	Env     string `json:"env"`
	Version string `json:"version"`
	// Addr is where the instance serves HTTP, as the environment's Prober
	// understands it: host:port for local processes; for Kubernetes
	// whatever its Prober reaches (e.g. "svc/<name>:<port>", documented
	// by that adapter).
	Addr string `json:"addr"`
	// PID is the process id, for local processes.
	PID int `json:"pid,omitempty"`
}

// InstanceState is what a runtime knows of an instance.
type InstanceState string

// Instance states.
const (
	InstanceStarting  InstanceState = "starting"
	InstanceRunning   InstanceState = "running"
	InstanceUnhealthy InstanceState = "unhealthy"
	InstanceExited    InstanceState = "exited"
	InstanceUnknown   InstanceState = "unknown"
)

// InstanceStatus is the state of an instance and, when it is not running,
// why (exit code, last failed health check).
type InstanceStatus struct {
	State  InstanceState `json:"state"`
	Reason string        `json:"reason,omitempty"`
}

// InstanceSpec says how to start instances of one release. Command and Env
// are fully substituted except for ${PORT}, which the runtime fills in with
// the port it picked for each instance.
type InstanceSpec struct {
	App     string
	Env     string
	Version string
	Command []string
	// Image is the container image (Kubernetes); Command is for local
	// processes. A runtime uses the one it understands.
	Image   string
	Environ map[string]string
	// Dir is the working directory.
	Dir   string
	Count int
	// HealthPath is requested with GET; 2xx means healthy.
	HealthPath       string
	HealthInterval   time.Duration
	HealthTimeout    time.Duration
	FailureThreshold int
	// StartTimeout bounds the wait for every instance to become healthy.
	StartTimeout time.Duration
	StopGrace    time.Duration
	// StopFirst, when Ensure scales a release down, names the instances
	// to stop first: those the router no longer sends requests to. A
	// runtime that cannot choose (a Deployment) ignores it.
	StopFirst []string
}

// Backend is the set of instances of one version a router sends traffic to.
type Backend struct {
	Version string   `json:"version"`
	Addrs   []string `json:"addrs"`
}

// Routes is a router's whole table for one environment. It is always set
// as a whole, so a change is atomic.
type Routes struct {
	// Stable receives the traffic the canary does not.
	Stable Backend `json:"stable"`
	// Canary is the new version; empty Version when there is none.
	Canary Backend `json:"canary"`
	// Weight is the percentage of users (0 to 100) sent to the canary.
	Weight int `json:"weight"`
	// Seed salts the sticky hashing, so each rollout picks its own users
	// but keeps them for all its steps.
	Seed string `json:"seed"`
	// Match, when set, sends the requests it matches to the canary
	// whatever the weight: internal users first.
	Match *Match `json:"match,omitempty"`
	// Preview is the backend the router's preview address sends every
	// request to; empty Version when there is none.
	Preview Backend `json:"preview"`
	// Health, when set, is checked by the router on every address; an
	// address that fails it FailureThreshold times in a row gets no
	// requests until it passes again.
	Health *RouteHealth `json:"health,omitempty"`
}

// Match selects internal users: a request matches if any field matches.
type Match struct {
	// Header and Values: the header is present with one of the values (any
	// value when Values is empty).
	Header string   `json:"header,omitempty"`
	Values []string `json:"values,omitempty"`
	// Cookie: the cookie is present with one of Values (any when empty).
	Cookie string `json:"cookie,omitempty"`
	// Users are user keys (from the sticky header or cookie) that match.
	Users []string `json:"users,omitempty"`
}

// RouteHealth is the router's active health check of every address.
type RouteHealth struct {
	Path             string        `json:"path"`
	Interval         time.Duration `json:"interval"`
	Timeout          time.Duration `json:"timeout"`
	FailureThreshold int           `json:"failure_threshold"`
}

// StepKind names what a step does.
type StepKind string

// Step kinds.
const (
	StepStart     StepKind = "start"      // start the new release's instances and wait for health
	StepSmoke     StepKind = "smoke"      // smoke checks straight to the new instances
	StepWeight    StepKind = "weight"     // set the canary weight and bake under analysis
	StepPromote   StepKind = "promote"    // send 100% to the new release; it becomes stable
	StepScaleDown StepKind = "scale_down" // after a delay, stop the old release's instances
	StepApproval  StepKind = "approval"   // wait until someone approves
	StepInternal  StepKind = "internal"   // only internal users see the new release; bake
	StepPostSmoke StepKind = "post_smoke" // smoke checks through the router after promotion
	StepObserve   StepKind = "observe"    // blue-green: analyse green after the switch, blue still running
	StepBatch     StepKind = "batch"      // rolling: replace one batch of instances and bake
	StepRestore   StepKind = "restore"    // drill: switch back to the release that was current
	StepMigrate   StepKind = "migrate"    // apply the release's migrations, before any traffic
)

// Step is one action of a rollout plan.
type Step struct {
	Kind StepKind `json:"kind"`
	// Weight is the canary percentage for StepWeight.
	Weight int `json:"weight,omitempty"`
	// Duration is the bake time of StepWeight, StepInternal, StepObserve
	// and StepBatch, or the delay of StepScaleDown.
	Duration time.Duration `json:"duration,omitempty"`
	// Count is the number of instances StepBatch replaces.
	Count int `json:"count,omitempty"`
	// NoBake marks a step whose bake a person ended (promote) or skipped
	// ahead of time (promote --full, on rolling batches): the step still
	// sets its traffic or replaces its instances, but does not bake. It is
	// persisted so that a resumed rollout does not bake again.
	NoBake bool `json:"no_bake,omitempty"`
}

// Phase is where a rollout is in its life.
type Phase string

// Rollout phases. Succeeded, RolledBack and Failed are final.
const (
	PhaseRunning     Phase = "running"
	PhaseRollingBack Phase = "rolling_back"
	PhaseSucceeded   Phase = "succeeded"
	PhaseRolledBack  Phase = "rolled_back"
	PhaseFailed      Phase = "failed"
)

// Final reports whether the phase is an end state.
func (p Phase) Final() bool {
	return p == PhaseSucceeded || p == PhaseRolledBack || p == PhaseFailed
}

// Kind says why a rollout exists.
type Kind string

// Rollout kinds.
const (
	KindDeploy   Kind = "deploy"   // a new release
	KindRollback Kind = "rollback" // a manual rollback that brings an earlier release back
	KindDrill    Kind = "drill"    // a rollback drill: bring the previous release back, check it, restore
)

// Rollout is one attempt to move an environment from its stable release to
// a new one. It is persisted after every change.
type Rollout struct {
	ID   int64  `json:"id"`
	App  string `json:"app"`
	Env  string `json:"env"`
	Kind Kind   `json:"kind"`
	// Version is the release being rolled out.
	Version string `json:"version"`
	// FromVersion is the stable release when the rollout began; "" for an
	// environment's first deploy.
	FromVersion string `json:"from_version,omitempty"`
	Phase       Phase  `json:"phase"`
	// Steps is the plan, fixed when the rollout is created.
	Steps []Step `json:"steps"`
	// Spec is the environment's configuration as it was when the rollout
	// was created (strategy, analysis, gates, smoke checks, internal
	// users, the instance template, router addresses), less the values of
	// its variables: the steps run what was planned, whatever happened to
	// the config file since.
	Spec *Spec `json:"spec,omitempty"`
	// LegacyStage is the configuration a rollout recorded before Specs
	// (the config's own stage, as JSON); Specs.Legacy translates it when
	// the rollout is read. Nil for rollouts created since.
	LegacyStage json.RawMessage `json:"stage,omitempty"`
	// StepIndex is the step being run (len(Steps) when all are done).
	StepIndex int `json:"step_index"`
	// StepStartedAt is when the current step began.
	StepStartedAt time.Time `json:"step_started_at"`
	// Weight is the canary weight the router has now.
	Weight int `json:"weight"`
	// Seed salts the router's sticky hashing for this rollout.
	Seed string `json:"seed"`
	// New holds the instances of the new release.
	New []Instance `json:"new_instances,omitempty"`
	// Old holds the instances of the stable release at the start, less
	// those a rolling rollout already replaced.
	Old []Instance `json:"old_instances,omitempty"`
	// Replaced holds the old instances a rolling rollout stopped; a
	// rollback starts as many again.
	Replaced []Instance `json:"replaced_instances,omitempty"`
	// Vars are the names (never the values) of the release variables the
	// rollout runs with.
	Vars []string `json:"vars,omitempty"`
	// Image is the release's own container image (deploy --image), empty
	// when it runs the environment's kubernetes.image or a command.
	Image string `json:"image,omitempty"`
	// Actor is who asked for the rollout.
	Actor string `json:"actor"`
	// Reason is why the rollout was asked for (manual rollback), or why it
	// ended as it did.
	Reason string `json:"reason,omitempty"`
	// Analysis is the latest judgement of the canary.
	Analysis *Judgement `json:"analysis,omitempty"`
	// Bake is what the running step's bake has gathered so far, so that a
	// resumed bake goes on with the same evidence and the time it had
	// left.
	Bake *BakeState `json:"bake,omitempty"`
	// Blue is what the old release measured before a blue-green switch:
	// the baseline of the observe step.
	Blue *Counters `json:"blue,omitempty"`
	// Paused, when set, says why the rollout waits for a person: a gate
	// stayed inconclusive with on_inconclusive: pause. shipgate promote
	// ends the step as passed, shipgate rollback rolls back.
	Paused string `json:"paused,omitempty"`
	// SettledAt is when the last step that can roll the release back by
	// itself (a bake, an observe, a post-deploy smoke check) ended: from
	// then on only the old release's scale-down is left. Zero until then.
	SettledAt time.Time `json:"settled_at,omitzero"`
	// Strategy is canary, blue_green or rolling.
	Strategy string `json:"strategy,omitempty"`
	// Hotfix is true for an emergency deploy; Bypassed lists the gates it
	// skipped.
	Hotfix   bool     `json:"hotfix,omitempty"`
	Bypassed []string `json:"bypassed,omitempty"`
	// Approval is set once the rollout has all the approvals it needs
	// (the last one); Approvals are those given so far, and ApprovalRule
	// the stage's rule as it was at deploy.
	Approval     *Approval     `json:"approval,omitempty"`
	Approvals    []Approval    `json:"approvals,omitempty"`
	ApprovalRule *ApprovalRule `json:"approval_rule,omitempty"`
	// Migrated are the migration versions this rollout applied, in order:
	// exactly the ones its rollback reverts.
	Migrated []int64 `json:"migrated,omitempty"`
	// Migrating are the versions the migrate step set out to apply,
	// recorded before it applies them: after a crash, those no longer
	// pending were applied by this rollout, and join Migrated.
	Migrating []int64 `json:"migrating,omitempty"`
	// MigrationFailed is set when a migration failed: the rollout ends
	// failed with the database as the last successful migration left it,
	// and MigrationStatus says where it stopped and the way out.
	MigrationFailed bool   `json:"migration_failed,omitempty"`
	MigrationStatus string `json:"migration_status,omitempty"`
	// FirstTrafficAt is when the new release first got user traffic.
	FirstTrafficAt time.Time `json:"first_traffic_at,omitzero"`
	// PromotedAt is when the new release got 100% of traffic.
	PromotedAt time.Time `json:"promoted_at,omitzero"`
	// RollbackStartedAt is when the rollback began; TrafficRestoredAt when
	// all traffic was back on the old release.
	RollbackStartedAt time.Time `json:"rollback_started_at,omitzero"`
	TrafficRestoredAt time.Time `json:"traffic_restored_at,omitzero"`
	CreatedAt         time.Time `json:"created_at"`
	UpdatedAt         time.Time `json:"updated_at"`
	FinishedAt        time.Time `json:"finished_at,omitzero"`
}

// Approval records who approved a rollout, and for which release: a
// change to the release's checks after the approval voids it.
type Approval struct {
	By      string    `json:"by"`
	At      time.Time `json:"at"`
	Comment string    `json:"comment,omitempty"`
	// Digest identifies the release as it was approved.
	Digest string `json:"digest"`
}

// ApprovalRule says who must approve a rollout: how many different
// people, whether the deployer may be one of them, and which token roles
// may approve (any when empty).
type ApprovalRule struct {
	Required            int      `json:"required"`
	PreventSelfApproval bool     `json:"prevent_self_approval,omitempty"`
	Roles               []string `json:"roles,omitempty"`
}

// Judgement is one analysis of the canary against its gates.
type Judgement struct {
	At      time.Time         `json:"at"`
	Verdict analysis.Verdict  `json:"verdict"`
	Results []analysis.Result `json:"results"`
	Canary  Summary           `json:"canary"`
	Stable  Summary           `json:"stable"`
}

// Summary is a short view of a traffic window.
type Summary struct {
	Requests  uint64        `json:"requests"`
	Errors    uint64        `json:"errors"`
	ErrorRate float64       `json:"error_rate"`
	P50       time.Duration `json:"p50"`
	P99       time.Duration `json:"p99"`
}

// EnvState is what is live in one environment of an app.
type EnvState struct {
	App string `json:"app"`
	Env string `json:"env"`
	// Stable is the release serving 100% of users when no rollout runs.
	Stable string `json:"stable"`
	// Instances are the stable release's instances.
	Instances []Instance `json:"instances"`
	// Previous is the release that was stable before Stable, the target
	// of a manual rollback.
	Previous string `json:"previous,omitempty"`
	// History holds the releases that were stable here before, newest
	// first, less those rolled back from: the targets of rollback --to.
	History   []string  `json:"history,omitempty"`
	UpdatedAt time.Time `json:"updated_at"`
}
