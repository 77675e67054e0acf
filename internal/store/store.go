// Package store names what a Shipgate store is, whatever holds it: the
// ports of the engine, the flags service and the API in one interface, and
// the snapshot that copies a whole store (history, audit chain, tokens,
// flags) from one kind of store to another.
package store

import (
	"context"
	"errors"
	"fmt"

	"time"

	"github.com/shipgate/shipgate/internal/audit"
	"github.com/shipgate/shipgate/internal/auth"
	"github.com/shipgate/shipgate/internal/dora"
	"github.com/shipgate/shipgate/internal/flags"
	"github.com/shipgate/shipgate/internal/notify"
	"github.com/shipgate/shipgate/internal/retire"
	"github.com/shipgate/shipgate/internal/rollout"
	"github.com/shipgate/shipgate/internal/testsignal"
)

// Store is everything the server asks of its store. The SQLite store
// (internal/sqlite) and the PostgreSQL store (internal/postgres) implement
// it, and pass the same contract suite (internal/storetest). A feature
// that keeps something new in the store adds its methods here (or to one
// of the interfaces below), so that a store missing them does not build.
type Store interface {
	rollout.Store
	flags.Store
	DORA
	Outbox
	testsignal.Store
	Routes

	// CreateToken records an API token under the SHA-256 of its secret.
	// A token with the same name or secret is an error wrapping
	// rollout.ErrConflict.
	CreateToken(ctx context.Context, t auth.Token, secretHash string) error
	// CreateTokenAudited is CreateToken with its audit event, in one
	// transaction.
	CreateTokenAudited(ctx context.Context, t auth.Token, secretHash string, e audit.Event) error
	// TokenByHash returns the token whose secret hashes to secretHash, or
	// an error wrapping rollout.ErrNotFound.
	TokenByHash(ctx context.Context, secretHash string) (auth.Token, error)
	// ListTokens returns every token, by name.
	ListTokens(ctx context.Context) ([]auth.Token, error)
	// DeleteToken deletes a token; an error wrapping rollout.ErrNotFound
	// when there is none.
	DeleteToken(ctx context.Context, name string) error
	// DeleteTokenAudited is DeleteToken with the event event makes of the
	// deleted token, in one transaction.
	DeleteTokenAudited(ctx context.Context, name string, event func(auth.Token) audit.Event) error
	// AuditChain returns every audit event from seq fromSeq on, oldest
	// first, for audit.Verify.
	AuditChain(ctx context.Context, fromSeq int64) ([]audit.Event, error)
	// Secret returns the server secret called name, made (32 random bytes)
	// and kept the first time it is asked for, the same for every server
	// on the store.
	Secret(ctx context.Context, name string) ([]byte, error)

	// Export reads the whole store in one consistent snapshot.
	Export(ctx context.Context) (*Snapshot, error)
	// Import writes s into an empty store in one transaction, keeping
	// every ID, sequence number and hash; a store that holds anything is
	// an error wrapping rollout.ErrConflict.
	Import(ctx context.Context, s *Snapshot) error

	Close() error
}

// DORA is what the DORA numbers keep beyond rollouts: each release's
// change and the incidents.
type DORA interface {
	// PutChangeAudited records the commits and size of a release's change,
	// replacing what was recorded, with its audit event; an unknown
	// release wraps rollout.ErrNotFound.
	PutChangeAudited(ctx context.Context, c dora.Change, e audit.Event) error
	// ListChanges returns the change of every release; a release without
	// a recorded one is its own commit.
	ListChanges(ctx context.Context) ([]dora.Change, error)
	// OpenIncidentAudited records in, setting its ID, with its audit event.
	OpenIncidentAudited(ctx context.Context, in *dora.Incident, event func(dora.Incident) audit.Event) error
	// ResolveIncidentAudited resolves incident id with its audit event; an
	// unknown id wraps rollout.ErrNotFound, a resolved one
	// rollout.ErrConflict.
	ResolveIncidentAudited(ctx context.Context, id int64, resolvedAt time.Time, fixDeployID int64, event func(dora.Incident) audit.Event) (dora.Incident, error)
	// ListIncidents returns incidents oldest first ("" matches all).
	ListIncidents(ctx context.Context, app, env string) ([]dora.Incident, error)
}

// Outbox is the notification outbox (notify.Store) and its listing.
type Outbox interface {
	notify.Store
	// ListNotifications returns up to limit deliveries in state ("" for
	// all), newest first.
	ListNotifications(ctx context.Context, state string, limit int) ([]notify.Delivery, error)
}

// Routes is the route traffic counted per path prefix and day, and the
// retirements' journal.
type Routes interface {
	retire.Journal
	// TrackRoutes records that env's traffic is counted from now on,
	// unless it already was.
	TrackRoutes(ctx context.Context, env string, now time.Time) error
	// TrackedSince returns when the first environment began to be
	// counted, zero before any.
	TrackedSince(ctx context.Context) (time.Time, error)
	// AddRouteUsage adds counts per path prefix of env to the day of
	// their last request.
	AddRouteUsage(ctx context.Context, env string, deltas map[string]retire.RouteCount) error
	// RouteUsage returns the traffic of a path prefix of env.
	RouteUsage(ctx context.Context, env, prefix string, since time.Time) (retire.Usage, error)
	// MoveRouteCounters moves the counts and the tracking of from to to,
	// in one transaction, unless to is counted already; it does nothing
	// when from is not counted. (The counters of a server of before
	// several apps are kept by environment; they move under the app.)
	MoveRouteCounters(ctx context.Context, from, to string) error
	// GetRetirement returns a retirement or an error wrapping
	// rollout.ErrNotFound.
	GetRetirement(ctx context.Context, id int64) (retire.Retirement, error)
	// ListRetirements returns the retirements in one of stages (all when
	// none), oldest first.
	ListRetirements(ctx context.Context, stages ...retire.Stage) ([]retire.Retirement, error)
}

// Snapshot is the whole content of a store.
type Snapshot struct {
	Releases []rollout.Release
	// Rollouts keep their IDs; the store's next ID follows the highest.
	Rollouts []rollout.Rollout
	Envs     []rollout.EnvState
	// Audit is the whole chain, oldest first.
	Audit    []audit.Event
	Tokens   []Token
	Flags    []*flags.Flag
	Segments []flags.Segment
	Usage    map[string]flags.Usage

	// Changes are the recorded changes of releases, by app and version.
	Changes []Change
	// Incidents keep their IDs.
	Incidents []dora.Incident
	// NotifyCursor is the notifier's place in the audit log, nil before
	// its first run.
	NotifyCursor *int64
	// Outbox is every queued delivery, by ID (which it keeps).
	Outbox []notify.Delivery
	// TestRuns are every test run with its cases, by ID (which it keeps).
	TestRuns []testsignal.Run
	// RouteUsage is the traffic counted per environment, prefix and day.
	RouteUsage []RouteDay
	// RouteTracking says since when each environment's traffic is counted.
	RouteTracking []RouteTracking
	// Retirements keep their IDs.
	Retirements []Retirement
	// Secrets are the server secrets (the key of the release digests),
	// by name: a copy keeps them, so that the digests recorded in the
	// audit log and in approvals are computed alike on the new store.
	Secrets []Secret
	// FlagGuards are the guarded flag rollouts, the latest of each flag.
	FlagGuards []flags.GuardRecord
}

// Secret is a server secret as stored. Its String never shows the value.
type Secret struct {
	Name      string
	Value     []byte
	CreatedAt time.Time
}

// String names the secret without its value, so that printing a snapshot
// does not leak it.
func (s Secret) String() string { return fmt.Sprintf("secret %s (%d bytes)", s.Name, len(s.Value)) }

// ErrSecretMismatch means Import was given a store that already holds a
// server secret of the same name with another value: a server started on
// it and made its own, and the copied history's digests would not match.
var ErrSecretMismatch = errors.New("the target store holds another server secret")

// Change is a release's change as stored: only what was recorded (not
// the release's own commit, which ListChanges adds).
type Change struct {
	dora.Change
	UpdatedAt time.Time
}

// RouteDay is the traffic of one path prefix of an environment on one day.
type RouteDay struct {
	Env    string
	Prefix string
	// Day is the UTC date, as 2006-01-02.
	Day   string
	Count uint64
	Last  time.Time
}

// RouteTracking is when an environment's traffic began to be counted.
type RouteTracking struct {
	Env   string
	Since time.Time
}

// Retirement is a retirement as stored.
type Retirement struct {
	retire.Retirement
	UpdatedAt time.Time
}

// Token is an API token as stored: never its secret, only the secret's
// hash.
type Token struct {
	auth.Token
	SecretHash string
}

// Counts says how many of each kind a snapshot holds, for a person to check
// a copy.
type Counts struct {
	Releases    int `json:"releases"`
	Rollouts    int `json:"rollouts"`
	Envs        int `json:"environments"`
	AuditEvents int `json:"audit_events"`
	Tokens      int `json:"tokens"`
	Flags       int `json:"flags"`
	Segments    int `json:"segments"`
	Changes     int `json:"release_changes"`
	Incidents   int `json:"incidents"`
	Outbox      int `json:"notifications"`
	TestRuns    int `json:"test_runs"`
	RouteDays   int `json:"route_usage_days"`
	Retirements int `json:"retirements"`
	Secrets     int `json:"server_secrets"`
	FlagGuards  int `json:"guarded_flag_rollouts"`
}

// Counts counts what s holds.
func (s *Snapshot) Counts() Counts {
	return Counts{
		Releases: len(s.Releases), Rollouts: len(s.Rollouts), Envs: len(s.Envs), AuditEvents: len(s.Audit),
		Tokens: len(s.Tokens), Flags: len(s.Flags), Segments: len(s.Segments),
		Changes: len(s.Changes), Incidents: len(s.Incidents), Outbox: len(s.Outbox), TestRuns: len(s.TestRuns),
		RouteDays: len(s.RouteUsage), Retirements: len(s.Retirements), Secrets: len(s.Secrets),
		FlagGuards: len(s.FlagGuards),
	}
}

// Copy copies the whole of from into the empty store to: it refuses a
// source whose audit chain does not verify, and verifies the chain as the
// target stored it before returning.
func Copy(ctx context.Context, from, to Store) (Counts, error) {
	snap, err := from.Export(ctx)
	if err != nil {
		return Counts{}, fmt.Errorf("read source: %w", err)
	}
	if err := audit.Verify(snap.Audit); err != nil {
		return Counts{}, fmt.Errorf("the source's audit chain does not verify, nothing copied: %w", err)
	}
	if err := to.Import(ctx, snap); err != nil {
		return Counts{}, fmt.Errorf("write target: %w", err)
	}
	chain, err := to.AuditChain(ctx, 1)
	if err != nil {
		return Counts{}, fmt.Errorf("read back the target's audit chain: %w", err)
	}
	if err := audit.Verify(chain); err != nil {
		return Counts{}, fmt.Errorf("the target's audit chain does not verify after the copy: %w", err)
	}
	if len(chain) != len(snap.Audit) {
		return Counts{}, fmt.Errorf("the target holds %d audit events after the copy, the source %d", len(chain), len(snap.Audit))
	}
	return snap.Counts(), nil
}

// ErrNotEmpty means Import was given a store that already holds data.
var ErrNotEmpty = errors.New("the target store is not empty")
