// Package notify tells people what Shipgate did: it turns audit events
// (rollout started, rolled back, gate bypassed, flag switched off by its
// guard, incidents) and the weekly report into webhook payloads (generic
// JSON, CDEvents, Slack, Microsoft Teams), signs them, and delivers them
// through a durable outbox in the store with retries and backoff.
//
// The notifier reads the audit log after the engine wrote it: the rollout
// engine never waits for a webhook, so a slow or dead receiver cannot delay
// a rollback. An event is queued in the same transaction that advances the
// notifier's cursor in the audit log, so a crash loses nothing; each
// delivery carries a stable event id, so a receiver can drop the rare
// duplicate (a crash between the receiver's 2xx and the store's commit).
package notify

import (
	"strconv"
	"strings"
	"time"

	"github.com/shipgate/shipgate/internal/audit"
)

// Triggers: the kinds of notification a webhook may subscribe to.
const (
	RolloutStarted          = "rollout.started"
	RolloutStep             = "rollout.step"
	RolloutWaitingApproval  = "rollout.waiting_for_approval"
	RolloutSucceeded        = "rollout.succeeded"
	RolloutRolledBack       = "rollout.rolled_back"
	GateBypassed            = "gate.bypassed"
	FlagGuardDisabled       = "flag.guard_disabled"
	IncidentOpened          = "incident.opened"
	IncidentResolved        = "incident.resolved"
	ReportWeekly            = "report.weekly"
	RolloutPaused           = "rollout.paused"
	RetireReenabled         = "retire.reenabled"
	defaultExcludedTriggers = RolloutStep
)

// Event is one notification, before it is formatted for a receiver.
type Event struct {
	// ID is stable for the same happening: "audit-<seq>" or
	// "report-<week>". Receivers deduplicate on it.
	ID   string    `json:"id"`
	Type string    `json:"type"`
	Time time.Time `json:"time"`
	// Title is one line for people: "shop 1.5.0 rolled back in production".
	Title   string `json:"title"`
	App     string `json:"app,omitempty"`
	Env     string `json:"env,omitempty"`
	Version string `json:"version,omitempty"`
	// Rollout is the rollout id, 0 when none.
	Rollout int64  `json:"rollout,omitempty"`
	Actor   string `json:"actor,omitempty"`
	Reason  string `json:"reason,omitempty"`
	// Data holds the details: gate, value, threshold, step...
	Data map[string]string `json:"data,omitempty"`
	// Report is the weekly report (report.weekly only), as JSON.
	Report any `json:"report,omitempty"`
}

// FromAudit returns the notification an audit event makes, if any.
func FromAudit(e audit.Event) (Event, bool) {
	ev := Event{ID: "audit-" + strconv.FormatInt(e.Seq, 10), Time: e.Time, Actor: e.Actor, Reason: e.Reason, Data: e.Data}
	parts := strings.SplitN(e.Subject, "/", 3)
	if len(parts) == 3 {
		ev.App, ev.Env, ev.Version = parts[0], parts[1], parts[2]
	}
	if id, err := strconv.ParseInt(e.Data["rollout"], 10, 64); err == nil {
		ev.Rollout = id
	}
	where := func(verb string) string { return ev.App + " " + ev.Version + " " + verb + " in " + ev.Env }
	switch e.Action {
	case audit.ActionDeploy:
		ev.Type, ev.Title = RolloutStarted, where("started rolling out")
	case audit.ActionStep:
		if strings.HasPrefix(e.Reason, "wait for approval") {
			ev.Type, ev.Title = RolloutWaitingApproval, where("waits for approval")
		} else {
			ev.Type, ev.Title = RolloutStep, where("is at step "+e.Data["step"]+" ("+e.Reason+")")
		}
	case audit.ActionSucceed:
		ev.Type, ev.Title = RolloutSucceeded, where("is live")
	case audit.ActionRolledBack:
		ev.Type, ev.Title = RolloutRolledBack, where("was rolled back")
	case audit.ActionGateBypass:
		ev.Type, ev.Title = GateBypassed, where("skipped the "+e.Data["gate"]+" gate (hotfix)")
	case "flag.guard.off":
		ev.Type, ev.Title = FlagGuardDisabled, "flag "+strings.TrimPrefix(e.Subject, "flag/")+" was switched off by its guard"
	case audit.ActionPause:
		ev.Type, ev.Title = RolloutPaused, where("is paused, waiting for a person")
	case "retire.reenable": // retire.ActionReenable: a request or evaluation in the watch window
		ev.Type, ev.Title = RetireReenabled, "retiring "+e.Subject+" stopped: it was used while watched, and is enabled again"
	case audit.ActionIncidentOpen:
		ev.Type, ev.Title = IncidentOpened, "incident opened on "+e.Data["app"]+"/"+e.Data["env"]+": "+e.Reason
		ev.App, ev.Env = e.Data["app"], e.Data["env"]
	case audit.ActionIncidentResolve:
		ev.Type, ev.Title = IncidentResolved, "incident resolved on "+e.Data["app"]+"/"+e.Data["env"]+": "+e.Reason
		ev.App, ev.Env = e.Data["app"], e.Data["env"]
	default:
		return Event{}, false
	}
	return ev, true
}

// Delivery states.
const (
	StatePending = "pending" // waiting for its next attempt
	StateSent    = "sent"    // the receiver answered 2xx
	StateFailed  = "failed"  // given up after MaxAttempts or MaxAge
)

// Delivery is one event for one webhook in the outbox.
type Delivery struct {
	ID        int64     `json:"id"`
	EventID   string    `json:"event_id"`
	EventType string    `json:"event_type"`
	Webhook   string    `json:"webhook"`
	Payload   []byte    `json:"-"`
	State     string    `json:"state"`
	Attempts  int       `json:"attempts"`
	NextAt    time.Time `json:"next_attempt_at,omitzero"`
	LastError string    `json:"last_error,omitempty"`
	// LastStatus is the HTTP status of the last attempt, 0 when none came.
	LastStatus int       `json:"last_status,omitempty"`
	CreatedAt  time.Time `json:"created_at"`
	SentAt     time.Time `json:"sent_at,omitzero"`
}
