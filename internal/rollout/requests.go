package rollout

import "time"

// DeployRequest asks for a release to be rolled out to an environment.
type DeployRequest struct {
	App string `json:"app"`
	// Env is the environment; "" picks "production" when the app has it,
	// or the app's only environment.
	Env     string `json:"env,omitempty"`
	Version string `json:"version"`
	// Commit is the source commit SHA, recorded with the release.
	Commit string `json:"commit,omitempty"`
	// Vars are release variables (override the app's vars).
	Vars map[string]string `json:"vars,omitempty"`
	// Image is the container image of the release, recorded with it, for
	// an environment on Kubernetes; it replaces the environment's
	// kubernetes.image. A local-process environment refuses it.
	Image string `json:"image,omitempty"`
	// Hotfix applies the config's emergency rules: the gates they allow
	// are skipped (each skip audited) and bakes are shorter. Needs Reason.
	Hotfix bool `json:"hotfix,omitempty"`
	// Reason says why; required for a hotfix.
	Reason string `json:"reason,omitempty"`
	// Actor is who asks; set by the API from the token, never by the client.
	Actor string `json:"-"`
}

// RollbackRequest asks for an environment to go back to its last good
// release: the stable one while a rollout runs, the previous one otherwise.
type RollbackRequest struct {
	App    string `json:"app"`
	Env    string `json:"env,omitempty"`
	Reason string `json:"reason"`
	// To, when set, is the release to go back to: any release that was
	// stable in the environment before (EnvState.History), not only the
	// previous one. Only without a rollout running.
	To    string `json:"to,omitempty"`
	Actor string `json:"-"`
}

// AppStatus is what is live in each environment of an app.
type AppStatus struct {
	App  string      `json:"app"`
	Envs []EnvStatus `json:"environments"`
	// ControlPlane, when several servers share the store, says which
	// leads and whether the one that answered does.
	ControlPlane *ControlPlaneStatus `json:"control_plane,omitempty"`
}

// ControlPlaneStatus is the leadership of servers sharing a store.
type ControlPlaneStatus struct {
	// Server is the server that answered; Leading whether it leads.
	Server  string `json:"server"`
	Leading bool   `json:"leading"`
	// Leader is the server holding the leader lease ("" when none), in
	// Term.
	Leader string `json:"leader"`
	Term   int64  `json:"term"`
	// ConfigRevision is the revision of the apps' config (in the store)
	// this server runs; ConfigPending a newer one it could not apply,
	// with ConfigError saying why (it runs the older one meanwhile).
	ConfigRevision int64  `json:"config_revision,omitempty"`
	ConfigPending  int64  `json:"config_pending,omitempty"`
	ConfigError    string `json:"config_error,omitempty"`
}

// EnvStatus is one environment: its router address, what is stable, and
// the rollout in progress if any.
type EnvStatus struct {
	Env    string    `json:"env"`
	Listen string    `json:"listen"`
	State  *EnvState `json:"state,omitempty"`
	// Image is the stable release's own image (deploy --image), when it
	// has one.
	Image  string   `json:"image,omitempty"`
	Active *Rollout `json:"active,omitempty"`
}

// CheckState is the outcome of a CI check recorded with a release.
type CheckState string

// Check states.
const (
	CheckPassed  CheckState = "passed"
	CheckFailed  CheckState = "failed"
	CheckPending CheckState = "pending"
)

// ReleaseRequest records a release with its CI check results; CI calls it
// (shipgate release create) after the build. Recording the same version
// again may add or update checks; a different commit is a conflict.
type ReleaseRequest struct {
	App        string                `json:"app"`
	Version    string                `json:"version"`
	Commit     string                `json:"commit,omitempty"`
	CommitTime time.Time             `json:"commit_time,omitzero"`
	Checks     map[string]CheckState `json:"checks,omitempty"`
	Vars       map[string]string     `json:"vars,omitempty"`
	// Image is the release's container image (see DeployRequest.Image).
	Image string `json:"image,omitempty"`
	Actor string `json:"-"`
}

// ApproveRequest approves the rollout waiting for approval in an
// environment.
type ApproveRequest struct {
	App string `json:"app"`
	Env string `json:"env,omitempty"`
	// Version, when set, must be the version of the waiting rollout, so
	// that nobody approves a rollout that replaced the one they looked at.
	Version string `json:"version,omitempty"`
	Comment string `json:"comment,omitempty"`
	Actor   string `json:"-"`
	// Role is the role of the approver's token; set by the API.
	Role string `json:"-"`
}

// PromoteRequest asks for the bake of the running step to end now, as
// passed: a paused rollout goes on, a baking one skips the rest of its
// bake.
type PromoteRequest struct {
	App    string `json:"app"`
	Env    string `json:"env,omitempty"`
	Reason string `json:"reason"`
	// Full skips every remaining bake and analysis as well: the rollout
	// goes straight to 100% on the new release (rolling batches still
	// replace the old instances, without baking).
	Full  bool   `json:"full,omitempty"`
	Actor string `json:"-"`
}

// PauseRequest asks for the bake of the running step to hold (Pause) or
// to go on (Resume).
type PauseRequest struct {
	App    string `json:"app"`
	Env    string `json:"env,omitempty"`
	Reason string `json:"reason"`
	Actor  string `json:"-"`
}

// RetryRequest asks for an environment's last deploy, rolled back or
// failed, to be deployed again.
type RetryRequest struct {
	App   string `json:"app"`
	Env   string `json:"env,omitempty"`
	Actor string `json:"-"`
}

// DrillRequest asks for a rollback drill: the environment's previous
// release is brought back and checked, then the current one is restored.
type DrillRequest struct {
	App   string `json:"app"`
	Env   string `json:"env,omitempty"`
	Actor string `json:"-"`
}

// PlanView is what a deploy would do, computed without doing anything.
type PlanView struct {
	App      string `json:"app"`
	Env      string `json:"env"`
	Version  string `json:"version"`
	From     string `json:"from,omitempty"`
	Strategy string `json:"strategy"`
	Hotfix   bool   `json:"hotfix,omitempty"`
	// Vars are the names (never the values) of the release variables the
	// deploy would run with.
	Vars []string `json:"vars,omitempty"`
	// Image is the release's own image (deploy --image), else the
	// environment's image template as configured; empty for local
	// processes.
	Image string `json:"image,omitempty"`
	// Allowed is true when every gate passes or is bypassed: the deploy
	// would start.
	Allowed bool `json:"allowed"`
	// Gates are the deploy gates and whether they pass now.
	Gates []GateStatus `json:"gates"`
	// Steps are the rollout's steps, each with what a rollback at that
	// step would do.
	Steps []PlannedStep `json:"steps"`
	// Migrations are the versions the deploy would apply; a rollback runs
	// their downs, newest first.
	Migrations []int64 `json:"migrations,omitempty"`
	// Evidence is the traffic each bake needs for its gates to pass in
	// time; Warnings name the bakes the expected traffic cannot bring
	// there (analysis.expected_rps).
	Evidence []EvidenceNeed `json:"evidence,omitempty"`
	Warnings []string       `json:"warnings,omitempty"`
}

// PlannedStep is one step of a plan.
type PlannedStep struct {
	Kind        StepKind `json:"kind"`
	Description string   `json:"description"`
	Rollback    string   `json:"rollback"`
}

// GateStatus is the state of one deploy gate.
type GateStatus struct {
	// Gate is pipeline, checks, approval, drill or drift.
	Gate   string `json:"gate"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail"`
	// Bypassed is true when a hotfix skips this gate.
	Bypassed bool `json:"bypassed,omitempty"`
}

// DriftReport compares two environments of an app.
type DriftReport struct {
	App     string       `json:"app"`
	Env     string       `json:"env"`
	Against string       `json:"against"`
	Diffs   []Difference `json:"differences"`
	// OK is false when a difference is not allowed by the drift gate.
	OK bool `json:"ok"`
}

// Difference is one way two environments differ.
type Difference struct {
	// Kind is vars, command, instances or migrations.
	Kind    string `json:"kind"`
	Detail  string `json:"detail"`
	Allowed bool   `json:"allowed"`
}

// GateError is a deploy refused by a gate. It matches ErrConflict.
type GateError struct {
	Gate    string
	Message string
}

func (e *GateError) Error() string { return e.Gate + " gate: " + e.Message }

// Is reports whether target is ErrConflict.
func (e *GateError) Is(target error) bool { return target == ErrConflict }
