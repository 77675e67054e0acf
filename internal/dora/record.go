package dora

import "time"

// Kind says what a rollout was for.
type Kind string

// Rollout kinds that matter to DORA.
const (
	// KindDeploy is a rollout of a new release: a deployment.
	KindDeploy Kind = "deploy"
	// KindRollback is a manual rollback rollout that brings the previous
	// release back after a deploy finished.
	KindRollback Kind = "rollback"
)

// Deploy is one rollout of an app to an environment, as far as DORA needs
// it. Times are zero when the event did not happen.
type Deploy struct {
	// ID is the rollout id.
	ID      int64  `json:"id"`
	App     string `json:"app"`
	Env     string `json:"env"`
	Kind    Kind   `json:"kind"`
	Version string `json:"version"`
	// FromVersion is the release that was stable when the rollout began.
	FromVersion string `json:"from_version,omitempty"`
	// Hotfix is an emergency deploy (it may have bypassed gates).
	Hotfix bool `json:"hotfix,omitempty"`
	// StartedAt is when the rollout was asked for.
	StartedAt time.Time `json:"started_at"`
	// FirstTrafficAt is when users first reached the new release.
	FirstTrafficAt time.Time `json:"first_traffic_at,omitzero"`
	// LiveAt is when the new release got 100% of traffic.
	LiveAt time.Time `json:"live_at,omitzero"`
	// RolledBack is set when this rollout was rolled back; ManualRollback
	// when a person asked for it. RollbackStartedAt is when the failure
	// was detected and TrafficRestoredAt when all traffic was back.
	RolledBack        bool      `json:"rolled_back,omitempty"`
	ManualRollback    bool      `json:"manual_rollback,omitempty"`
	RollbackStartedAt time.Time `json:"rollback_started_at,omitzero"`
	TrafficRestoredAt time.Time `json:"traffic_restored_at,omitzero"`
	// Reason is why the rollout was rolled back, in words; Gate, Value and
	// Threshold are the evidence when a gate convicted it.
	Reason    string `json:"reason,omitempty"`
	Gate      string `json:"gate,omitempty"`
	Value     string `json:"value,omitempty"`
	Threshold string `json:"threshold,omitempty"`
	// FirstCommitAt is the time of the first commit of the change (the
	// oldest commit since the previous release); zero when unknown.
	FirstCommitAt time.Time `json:"first_commit_at,omitzero"`
	// Size is the change's size; nil when it was not recorded.
	Size *Size `json:"size,omitempty"`
}

// Size is how big a change was.
type Size struct {
	Files int `json:"files"`
	Lines int `json:"lines"`
	PRs   int `json:"prs"`
}

// reachedUsers reports whether the rollout got any user traffic.
func (d Deploy) reachedUsers() bool { return !d.FirstTrafficAt.IsZero() || !d.LiveAt.IsZero() }

// Incident is a production problem recorded by a person and linked to the
// deploy that caused it by id, not by guesswork.
type Incident struct {
	ID  int64  `json:"id"`
	App string `json:"app"`
	Env string `json:"env"`
	// DeployID is the rollout that caused the incident; 0 when unknown
	// (the incident then blames no deployment).
	DeployID int64 `json:"deploy_id,omitempty"`
	// FixDeployID is the deploy (usually a hotfix) that fixed it; 0 when
	// none did. That deploy counts as rework.
	FixDeployID int64     `json:"fix_deploy_id,omitempty"`
	Title       string    `json:"title"`
	OpenedAt    time.Time `json:"opened_at"`
	ResolvedAt  time.Time `json:"resolved_at,omitzero"`
}

// History is everything Summarize reads: all rollouts and incidents, not
// only those of the period, since a failure may be found weeks later.
type History struct {
	Deploys   []Deploy
	Incidents []Incident
}

// Commit is one commit of a change.
type Commit struct {
	SHA  string    `json:"sha"`
	Time time.Time `json:"time"`
}

// Change is what a release changed since the previous one: its commits
// (for lead time) and its size (for the fail rate by change size).
type Change struct {
	App     string   `json:"app"`
	Version string   `json:"version"`
	Commits []Commit `json:"commits,omitempty"`
	// Size is nil when it was not recorded.
	Size *Size `json:"size,omitempty"`
}

// FirstCommitAt returns the time of the change's oldest commit, zero when
// it has none.
func (c Change) FirstCommitAt() time.Time {
	var first time.Time
	for _, cm := range c.Commits {
		if !cm.Time.IsZero() && (first.IsZero() || cm.Time.Before(first)) {
			first = cm.Time
		}
	}
	return first
}
