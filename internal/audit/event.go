// Package audit defines the append-only, hash-chained record of everything
// Shipgate did or was told to do: who, what, when, why, and the outcome.
//
// The store appends events inside the same transaction as the state change
// they describe, setting Seq and PrevHash from the last event and Hash with
// Event.ComputeHash; Verify checks a chain read back from any store.
package audit

import "time"

// Actions recorded by the rollout engine and the API.
const (
	ActionDeploy         = "deploy"          // a rollout was requested
	ActionStep           = "rollout.step"    // a rollout entered a step
	ActionPromote        = "rollout.promote" // the new release took 100% of traffic
	ActionSucceed        = "rollout.succeed" // the rollout finished, old instances stopped
	ActionRollbackAuto   = "rollback.auto"   // a gate, a smoke check or an instance failed
	ActionRollbackManual = "rollback.manual" // a person asked for a rollback
	ActionRolledBack     = "rollback.done"   // traffic is on the old release, new instances stopped
	ActionGateBypass     = "gate.bypass"     // a hotfix skipped a deploy gate
	ActionGateRefuse     = "gate.refuse"     // a gate refused a deploy (data: gate; reason: why)
	ActionApprove        = "rollout.approve" // someone approved a rollout waiting for approval
	ActionPause          = "rollout.pause"   // a gate stayed inconclusive: the rollout waits for a person
	ActionPromoteManual  = "rollout.skip"    // a person ended a bake early (shipgate promote)
	ActionResume         = "rollout.resume"  // a person let a paused bake go on
	ActionApprovalVoid   = "approval.void"   // the release changed after it was approved
	ActionRelease        = "release.record"  // CI recorded a release or its check results
	ActionDrill          = "drill"           // a rollback drill ended (outcome ok or failed)
	ActionMigrateUp      = "migrate.up"      // a rollout applied migrations (the versions in data)
	ActionMigrateDown    = "migrate.down"    // a rollback reverted the migrations its rollout applied
	ActionMigrateFailed  = "migrate.failed"  // a migration failed; data says where
	ActionTokenCreate    = "token.create"    // an admin created an API token (data: role)
	ActionTokenRevoke    = "token.revoke"    // an admin revoked an API token
	ActionConfigApply    = "config.apply"    // the server's apps were reloaded (shipgate apply, SIGHUP); outcome ok or refused
	ActionLeave          = "env.leave"       // an admin handed an environment's routing back (shipgate kubernetes leave); data: route, lost_traffic
	// ActionClusterChange is a change Shipgate made to a Kubernetes
	// cluster (a Deployment or Service created, scaled or deleted, the
	// HTTPRoute's rules set); the reason says what, in words.
	ActionClusterChange = "cluster.change"
)

// Event is one audit record. Seq, PrevHash and Hash are set by the store.
type Event struct {
	// Seq is the event's position in the log, from 1.
	Seq int64 `json:"seq"`
	// Time is when the event happened, in UTC.
	Time time.Time `json:"time"`
	// Actor is who caused it: "user:<token name>" or "shipgate" for the engine.
	Actor string `json:"actor"`
	// Action is what happened, one of the Action constants.
	Action string `json:"action"`
	// Subject is what it happened to: "app/env/version", or "rollout/<id>".
	Subject string `json:"subject"`
	// Reason is why, in words: the user's --reason, or the failed gate.
	Reason string `json:"reason,omitempty"`
	// Outcome is "ok" or "failed".
	Outcome string `json:"outcome,omitempty"`
	// Data holds details: the gate, the measured value, the threshold...
	Data map[string]string `json:"data,omitempty"`
	// PrevHash is the Hash of the event before, "" for the first.
	PrevHash string `json:"prev_hash"`
	// Hash is the SHA-256 (hex) of this event's fields and PrevHash.
	Hash string `json:"hash"`
}

// Filter selects events for listing, newest first.
type Filter struct {
	// Subject, when set, keeps events whose subject starts with it.
	Subject string
	// Action, when set, keeps events with exactly this action.
	Action string
	// Limit caps the number of events; 0 means 100.
	Limit int
}
