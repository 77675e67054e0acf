// Package retire deletes things safely: a route of the builtin router (a
// path prefix), a flag or an environment goes through five stages, each
// audited and, until the last, undoable:
//
//  1. check: no traffic (or evaluation) for a whole business cycle;
//  2. backup: the config, the release history and the audit log are
//     exported, and the configured backup command must exit 0;
//  3. disable: the route answers 410 Gone, the flag serves its off
//     variant, the environment's instances stop (kept, not removed);
//  4. watch: for a window, any request or evaluation re-enables it and
//     raises an alert, and the retirement stops there;
//  5. delete: only then it is deleted, and the references left in the
//     repository (git grep) are listed for the people to clean up.
//
// The package is pure: the subject, the backup, the search for references,
// the alerts and the store are ports; waiting runs on a Clock, so a week
// of business cycle and a day of watch pass in a test in milliseconds.
package retire

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Kind is what is retired.
type Kind string

// The kinds of subject.
const (
	KindRoute Kind = "route"
	KindFlag  Kind = "flag"
	KindEnv   Kind = "env"
)

// Stage is where a retirement is.
type Stage string

// The stages. Refused, Failed, Reenabled, Cancelled and Deleted are
// final.
const (
	StageCheck     Stage = "check"
	StageBackup    Stage = "backup"
	StageWatch     Stage = "watch"
	StageDeleted   Stage = "deleted"
	StageRefused   Stage = "refused"
	StageFailed    Stage = "failed"
	StageReenabled Stage = "reenabled"
	StageCancelled Stage = "cancelled"
)

// Final reports whether nothing more happens in s.
func (s Stage) Final() bool {
	switch s {
	case StageDeleted, StageRefused, StageFailed, StageReenabled, StageCancelled:
		return true
	}
	return false
}

// Defaults.
const (
	// DefaultCycle is the business cycle without traffic a subject needs.
	DefaultCycle = 7 * 24 * time.Hour
	// DefaultWatch is how long a disabled subject is watched.
	DefaultWatch = 24 * time.Hour
	// DefaultPoll is how often the watch looks at the counters.
	DefaultPoll = 10 * time.Second
)

// Retirement is one attempt to retire a subject. It is persisted after
// every stage.
type Retirement struct {
	ID   int64 `json:"id"`
	Kind Kind  `json:"kind"`
	// App is the app whose router serves a route; "" for a flag (the
	// server's), and for a route retired before several apps (the
	// server's first app).
	App string `json:"app,omitempty"`
	// Env is the environment of a route or the environment retired.
	Env string `json:"env,omitempty"`
	// Subject is the route's path prefix, the flag's key, or the
	// environment's name.
	Subject string `json:"subject"`
	Actor   string `json:"actor"`
	Reason  string `json:"reason,omitempty"`
	// Cycle is the business cycle without traffic; Watch the window.
	Cycle time.Duration `json:"cycle"`
	Watch time.Duration `json:"watch"`
	Stage Stage         `json:"stage"`
	// Detail says why the retirement is where it is, in words.
	Detail string `json:"detail,omitempty"`
	// Backup is where the backup was written.
	Backup string `json:"backup,omitempty"`
	// Baseline is the subject's request count when it was disabled: the
	// watch looks for any request beyond it.
	Baseline uint64 `json:"baseline"`
	// References are the places in the repository that still name the
	// subject, found after the deletion.
	References []string  `json:"references,omitempty"`
	StartedAt  time.Time `json:"started_at"`
	DisabledAt time.Time `json:"disabled_at,omitzero"`
	WatchUntil time.Time `json:"watch_until,omitzero"`
	FinishedAt time.Time `json:"finished_at,omitzero"`
}

// Usage is what a subject's counters say.
type Usage struct {
	// Total is the number of requests or evaluations ever counted.
	Total uint64
	// Since counts those after the time asked for.
	Since uint64
	// Last is when the last one was seen; zero for never.
	Last time.Time
	// TrackedSince is when counting began: before it, nothing is known.
	TrackedSince time.Time
}

// Subject is the thing retired, as the retirement acts on it. Every
// method is idempotent.
type Subject interface {
	// Usage returns the subject's counters, with Since counting from since.
	Usage(ctx context.Context, since time.Time) (Usage, error)
	// Disable makes the subject unusable but keeps it: a route answers
	// 410, a flag serves its off variant, instances stop.
	Disable(ctx context.Context) error
	// Enable undoes Disable.
	Enable(ctx context.Context) error
	// Delete removes the subject for good.
	Delete(ctx context.Context) error
	// Terms are the strings to search the repository for.
	Terms() []string
}

// Backup takes a backup before anything is disabled.
type Backup interface {
	// Run writes the backup of r and returns where; an error stops the
	// retirement before anything is disabled.
	Run(ctx context.Context, r Retirement) (where string, err error)
}

// References finds the places that still name the subject.
type References interface {
	Find(ctx context.Context, terms []string) ([]string, error)
}

// Alerter tells people that a retired subject was used.
type Alerter interface {
	Alert(ctx context.Context, r Retirement, message string) error
}

// Journal persists a retirement and appends the audit event of a stage,
// in one transaction.
type Journal interface {
	// Save persists r (setting its ID the first time) and appends the
	// event of action by actor.
	Save(ctx context.Context, r *Retirement, actor, action, detail string) error
}

// Clock tells the time and wakes waiters; tests step it.
type Clock interface {
	Now() time.Time
	After(d time.Duration) <-chan time.Time
}

// Audit actions of a retirement; the subject of each event is
// "retire/<kind>/<subject without its leading slash>", such as
// retire/route/api/v1/legacy.
const (
	ActionStart     = "retire.start"
	ActionRefuse    = "retire.refuse"
	ActionBackup    = "retire.backup"
	ActionFail      = "retire.fail"
	ActionDisable   = "retire.disable"
	ActionReenable  = "retire.reenable"
	ActionDelete    = "retire.delete"
	ActionUndo      = "retire.undo"
	ActionReference = "retire.references"
	// ActionAdopt records that a route retired before several apps was
	// given to the server's first app.
	ActionAdopt = "retire.adopt"
)

// ActorRetire is the actor of the stages the retirement takes by itself.
const ActorRetire = "shipgate"

// ErrFinal means the retirement is over and cannot be undone.
var ErrFinal = errors.New("the retirement is over")

// Retirer runs retirements.
type Retirer struct {
	Journal    Journal
	Backup     Backup
	References References
	Alerter    Alerter
	Clock      Clock
	// Poll is how often the watch looks at the counters. Default 10s.
	Poll time.Duration
}

// Start records a new retirement of subject and runs its first stages:
// the traffic check, the backup and the disabling. It returns the
// retirement as it stands then: refused, failed, or watching.
func (rt *Retirer) Start(ctx context.Context, r Retirement, s Subject) (Retirement, error) {
	if r.Cycle <= 0 {
		r.Cycle = DefaultCycle
	}
	if r.Watch <= 0 {
		r.Watch = DefaultWatch
	}
	now := rt.Clock.Now()
	r.Stage, r.StartedAt = StageCheck, now
	if err := rt.Journal.Save(ctx, &r, r.Actor, ActionStart, fmt.Sprintf("retire %s %s: no traffic for %s, then backup, disable, watch %s, delete", r.Kind, r.Subject, r.Cycle, r.Watch)); err != nil {
		return r, err
	}
	u, err := s.Usage(ctx, now.Add(-r.Cycle))
	if err != nil {
		return r, fmt.Errorf("read the usage of %s: %w", r.Subject, err)
	}
	switch {
	case u.TrackedSince.IsZero():
		return rt.finish(ctx, r, StageRefused, ActionRefuse, "its traffic is not counted yet, so there is no evidence that it is unused")
	case u.TrackedSince.After(now.Add(-r.Cycle)):
		return rt.finish(ctx, r, StageRefused, ActionRefuse, fmt.Sprintf("its traffic has been counted only since %s, less than the business cycle of %s: try again after %s",
			stamp(u.TrackedSince), r.Cycle, stamp(u.TrackedSince.Add(r.Cycle))))
	case u.Since > 0:
		return rt.finish(ctx, r, StageRefused, ActionRefuse, fmt.Sprintf("%d %s in the last %s, the last at %s: it is still used", u.Since, uses(r.Kind), r.Cycle, stamp(u.Last)))
	}
	r.Stage = StageBackup
	where, err := rt.Backup.Run(ctx, r)
	if err != nil {
		return rt.finish(ctx, r, StageFailed, ActionFail, "backup failed, nothing was disabled: "+err.Error())
	}
	r.Backup = where
	if err := rt.Journal.Save(ctx, &r, r.Actor, ActionBackup, "backup written to "+where); err != nil {
		return r, err
	}
	// Persisted before it is acted on: a crash after this line finds the
	// retirement watching and Disable, idempotent, is done again.
	r.Stage, r.DisabledAt, r.WatchUntil, r.Baseline = StageWatch, rt.Clock.Now(), rt.Clock.Now().Add(r.Watch), u.Total
	r.Detail = fmt.Sprintf("disabled; watched until %s: any use enables it again", stamp(r.WatchUntil))
	if err := rt.Journal.Save(ctx, &r, r.Actor, ActionDisable, r.Detail); err != nil {
		return r, err
	}
	if err := s.Disable(ctx); err != nil {
		return rt.finish(ctx, r, StageFailed, ActionFail, "disable failed: "+err.Error())
	}
	return r, nil
}

// Watch waits out the watch window of a retirement that is watching: any
// use re-enables the subject and raises an alert; at the end of the
// window the subject is deleted and the references left are listed. It
// returns when the retirement is final or ctx ends.
func (rt *Retirer) Watch(ctx context.Context, r Retirement, s Subject) (Retirement, error) {
	poll := rt.Poll
	if poll <= 0 {
		poll = DefaultPoll
	}
	for r.Stage == StageWatch {
		if err := s.Disable(ctx); err != nil { // idempotent: a restarted watch re-asserts it
			return r, err
		}
		u, err := s.Usage(ctx, r.DisabledAt)
		if err != nil {
			return r, fmt.Errorf("read the usage of %s: %w", r.Subject, err)
		}
		if u.Total > r.Baseline {
			msg := fmt.Sprintf("%s %s was used %d times while retired (last at %s): it is enabled again and the retirement stops", r.Kind, r.Subject, u.Total-r.Baseline, stamp(u.Last))
			if err := s.Enable(ctx); err != nil {
				return r, fmt.Errorf("re-enable %s: %w", r.Subject, err)
			}
			if rt.Alerter != nil {
				_ = rt.Alerter.Alert(ctx, r, msg) // the audit event is the record; an alert is best effort
			}
			return rt.finish(ctx, r, StageReenabled, ActionReenable, msg)
		}
		now := rt.Clock.Now()
		if !now.Before(r.WatchUntil) {
			return rt.delete(ctx, r, s)
		}
		select {
		case <-ctx.Done():
			return r, ctx.Err()
		case <-rt.Clock.After(min(poll, r.WatchUntil.Sub(now))):
		}
	}
	return r, nil
}

func (rt *Retirer) delete(ctx context.Context, r Retirement, s Subject) (Retirement, error) {
	if err := s.Delete(ctx); err != nil {
		return r, fmt.Errorf("delete %s: %w", r.Subject, err)
	}
	// The references are found before the stage is saved, so that whoever
	// sees the retirement deleted sees them too.
	detail := fmt.Sprintf("no use in the %s watch window: deleted", r.Watch)
	if rt.References != nil {
		refs, err := rt.References.Find(ctx, s.Terms())
		if err != nil {
			detail += "; the search for references failed: " + err.Error()
		}
		r.References = refs
	}
	r, err := rt.finish(ctx, r, StageDeleted, ActionDelete, detail)
	if err != nil || rt.References == nil {
		return r, err
	}
	msg := fmt.Sprintf("%d references left in the repository", len(r.References))
	if len(r.References) == 0 {
		msg = "no reference left in the repository"
	}
	return r, rt.Journal.Save(ctx, &r, ActorRetire, ActionReference, msg)
}

// Undo stops a retirement that is not over and enables the subject
// again.
func (rt *Retirer) Undo(ctx context.Context, r Retirement, s Subject, actor, reason string) (Retirement, error) {
	if r.Stage.Final() {
		return r, fmt.Errorf("retirement %d of %s is %s: %w", r.ID, r.Subject, r.Stage, ErrFinal)
	}
	if err := s.Enable(ctx); err != nil {
		return r, fmt.Errorf("re-enable %s: %w", r.Subject, err)
	}
	return rt.finishBy(ctx, r, actor, StageCancelled, ActionUndo, "undone: "+reason)
}

// finish ends a retirement; the stages that end it on their own are the
// engine's doing, except a refusal, answered to who asked.
func (rt *Retirer) finish(ctx context.Context, r Retirement, st Stage, action, detail string) (Retirement, error) {
	actor := ActorRetire
	if st == StageRefused {
		actor = r.Actor
	}
	return rt.finishBy(ctx, r, actor, st, action, detail)
}

func (rt *Retirer) finishBy(ctx context.Context, r Retirement, actor string, st Stage, action, detail string) (Retirement, error) {
	r.Stage, r.Detail, r.FinishedAt = st, detail, rt.Clock.Now()
	return r, rt.Journal.Save(ctx, &r, actor, action, detail)
}

// uses names what is counted of a kind of subject.
func uses(k Kind) string {
	if k == KindFlag {
		return "evaluations"
	}
	return "requests"
}

func stamp(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return t.UTC().Format(time.RFC3339)
}

// RouteCount is the traffic of one path prefix since it was last stored:
// how many requests, and when the last one was.
type RouteCount struct {
	Count uint64
	Last  time.Time
}
