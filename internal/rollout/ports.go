package rollout

import (
	"context"
	"errors"
	"time"

	"github.com/shipgate/shipgate/internal/analysis"
	"github.com/shipgate/shipgate/internal/audit"
	"github.com/shipgate/shipgate/internal/clock"
)

// Store persists releases, rollouts, environment states and the audit log.
// Implementations return errors wrapping ErrNotFound and ErrConflict.
type Store interface {
	// PutRelease records a release. Recording the same release again is a
	// no-op; a different release with the same app and version is ErrConflict.
	PutRelease(ctx context.Context, r Release) error
	// GetRelease returns a release or ErrNotFound.
	GetRelease(ctx context.Context, app, version string) (Release, error)
	// Commit writes everything in c in one transaction.
	Commit(ctx context.Context, c Change) error
	// GetRollout returns a rollout or ErrNotFound.
	GetRollout(ctx context.Context, id int64) (Rollout, error)
	// ListRollouts returns an app's rollouts in env ("" for all), newest
	// first, at most limit.
	ListRollouts(ctx context.Context, app, env string, limit int) ([]Rollout, error)
	// ActiveRollouts returns every rollout whose phase is not final.
	ActiveRollouts(ctx context.Context) ([]Rollout, error)
	// GetEnvState returns what is live in an environment, or ErrNotFound
	// before its first deploy.
	GetEnvState(ctx context.Context, app, env string) (EnvState, error)
	// ListAudit returns audit events matching f, newest first.
	ListAudit(ctx context.Context, f audit.Filter) ([]audit.Event, error)
}

// Change is what Store.Commit writes atomically. Nil fields are left alone.
type Change struct {
	// Release is recorded as PutRelease would, in the same transaction:
	// the release a deploy brings exists only if its rollout does.
	Release *Release
	// Rollout is inserted when its ID is 0 (the store sets ID) and
	// updated otherwise.
	Rollout *Rollout
	// Env replaces the environment state of Env.App and Env.Env.
	Env *EnvState
	// Audit events are appended in order; the store sets Seq, PrevHash
	// and Hash on the events in the slice.
	Audit []audit.Event
}

// ReleaseRef names one release in one environment.
type ReleaseRef struct{ App, Env, Version string }

// Runtime runs releases at a number of instances. Instances are observed,
// not owned by the engine: a rescheduled pod is not a dead canary.
//
// Local processes keep per-instance control behind these verbs: a rolling
// batch is Ensure(new, k) then Ensure(old, n-k), "scaling two
// Deployments".
type Runtime interface {
	// Ensure makes exactly spec.Count instances of spec's release run and
	// returns them once all are healthy (scaling up or down; Count 0 is
	// Remove). If they cannot become healthy within spec.StartTimeout it
	// returns an error that says why (exit code and last output lines,
	// ImagePullBackOff / CrashLoopBackOff / Unschedulable with the pod's
	// last log lines, the failed health check) and leaves none of the
	// instances it started serving. Calling it again with the same spec
	// is a no-op that returns the same instances.
	Ensure(ctx context.Context, spec InstanceSpec) ([]Instance, error)
	// Observe returns the release's instances as the runtime sees them now,
	// each with its status. A release with no instances is an empty slice.
	Observe(ctx context.Context, ref ReleaseRef) ([]ObservedInstance, error)
	// Remove stops every instance of the release (gracefully, bounded by
	// StopGrace). Removing a release that is gone is not an error.
	Remove(ctx context.Context, ref ReleaseRef) error
}

// ObservedInstance is an instance with its status now.
type ObservedInstance struct {
	Instance
	Status InstanceStatus
}

// ErrNotReady is wrapped by TrafficRouter.VerifyRoutes while an
// asynchronous data plane converges: the engine retries until a bound.
var ErrNotReady = errors.New("not ready")

// TrafficRouter sends an environment's traffic to releases.
type TrafficRouter interface {
	// SetRoutes replaces the environment's routing atomically. Requests in
	// flight finish on the backend they started on.
	SetRoutes(ctx context.Context, r Routes) error
	// VerifyRoutes returns nil once the data plane serves r. Asynchronous
	// data planes (Gateway API) return an error wrapping ErrNotReady while
	// converging (the engine retries until a bound, then fails the step)
	// and any other error when r can never be served. A router that
	// routes by version (one Service per release) ignores Backend.Addrs.
	VerifyRoutes(ctx context.Context, r Routes) error
}

// MetricSource measures a release's traffic (the builtin router's
// counters, Prometheus).
type MetricSource interface {
	// Window returns what was measured for version since the given time
	// (requests, failures, latency histogram), or an error that names the
	// source and what failed. No data is an empty sample, never a pass.
	Window(ctx context.Context, version string, since time.Time) (analysis.Sample, error)
}

// Environment is what one environment of one app is made of.
type Environment struct {
	Runtime Runtime
	Router  TrafficRouter
	Metrics MetricSource
	// Prober sends smoke checks straight to an instance's Addr.
	Prober Prober
	// Drainer is optional (nil: no in-flight knowledge).
	Drainer Drainer
	// Leaver is optional: an environment whose routing Shipgate shares
	// with the user's own (an HTTPRoute) hands it back with it.
	Leaver Leaver
}

// Leaver hands an environment's routing back to its owner: Shipgate's
// rules go, the user's stay (shipgate kubernetes leave).
type Leaver interface {
	// Leave takes Shipgate's routing out of the environment, and with
	// req.DeleteReleases removes the releases it runs but req.Live. When
	// no rule of the user's would serve some of the traffic Shipgate's
	// rules serve, it changes nothing and returns an error wrapping
	// ErrConflict that says what would lose its backend, unless
	// req.Force; the report then lists it in LostTraffic.
	Leave(ctx context.Context, req LeaveRequest) (LeaveReport, error)
}

// LeaveRequest asks an environment to leave Shipgate.
type LeaveRequest struct {
	App    string `json:"app"`
	Env    string `json:"env"`
	Reason string `json:"reason"`
	// Force leaves even when requests would then match no rule of the
	// user's.
	Force bool `json:"force,omitempty"`
	// DeleteReleases removes the releases Shipgate created, but the live
	// one and any a rule of the user's still sends traffic to.
	DeleteReleases bool `json:"delete_releases,omitempty"`
	// Live is the release live in the environment (the engine sets it).
	Live string `json:"-"`
	// Actor is who asked (the API sets it from the token).
	Actor string `json:"-"`
}

// LeaveReport says what leaving changed.
type LeaveReport struct {
	App string `json:"app"`
	Env string `json:"env"`
	// Live is the release that was live: what the user's own routing
	// must point at.
	Live string `json:"live,omitempty"`
	// Route is the route left (namespace/name); RouteDeleted is true when
	// it was Shipgate's own and is deleted.
	Route        string `json:"route,omitempty"`
	RouteDeleted bool   `json:"route_deleted"`
	// RemovedRules are Shipgate's rules taken out of the route.
	RemovedRules []string `json:"removed_rules"`
	// LostTraffic says what no rule of the user's serves now (with force).
	LostTraffic []string `json:"lost_traffic,omitempty"`
	// DeletedReleases and KeptReleases are Shipgate's releases removed and
	// left running (with why), with DeleteReleases.
	DeletedReleases []string `json:"deleted_releases,omitempty"`
	KeptReleases    []string `json:"kept_releases,omitempty"`
}

// Environments gives the engine each environment's adapters; the server
// builds it from config (local processes + builtin router by default,
// Kubernetes + Gateway API, Prometheus). Nothing in the engine
// type-switches on an adapter.
type Environments interface {
	// For returns the adapters of env of app, or an error wrapping
	// ErrNotFound when the server has no such environment.
	For(app, env string) (Environment, error)
}

// Drainer is implemented by routers that know the requests in flight to
// each address: the engine stops an instance only once the router has
// none on its way to it (or a bound passed).
type Drainer interface {
	// Drain returns once no request is in flight to any of addrs, or an
	// error when ctx ends first.
	Drain(ctx context.Context, addrs []string) error
}

// Prober sends smoke checks straight to an instance.
type Prober interface {
	// Probe sends one smoke check to addr and returns nil if it passed,
	// or an error that says what was expected and what came back.
	Probe(ctx context.Context, addr string, check SmokeCheck) error
}

// SmokeCheck is one request of a smoke test.
type SmokeCheck struct {
	Path         string        `json:"path"`
	ExpectStatus int           `json:"expect_status,omitempty"`
	ExpectBody   string        `json:"expect_body,omitempty"`
	Timeout      time.Duration `json:"timeout,omitempty"`
}

// Clock tells the time and makes the timers and tickers every wait of the
// engine uses, so that tests run bakes on virtual time
// (clocktest.Fake).
type Clock = clock.Clock

// Migrations opens the schema migrations of a release against a database.
type Migrations interface {
	// Open loads the migrations in dir for database (a postgres:// URL or
	// sqlite:PATH). The caller closes the Migrator.
	Open(ctx context.Context, dir, database string) (Migrator, error)
}

// Migrator runs one release's migrations against one database.
type Migrator interface {
	// Verify checks, on a scratch database of the same kind, that every
	// migration has a down and that each down restores the schema (and,
	// with a seed file, the data). It returns the problems, none when all
	// is well.
	Verify(ctx context.Context, seedFile string) (problems []string, err error)
	// Up applies the pending migrations and returns the versions it
	// applied, also when it fails (those before the failure).
	Up(ctx context.Context) (applied []int64, err error)
	// Down reverts exactly these versions, newest first.
	Down(ctx context.Context, versions []int64) error
	// Status describes the database's migration state in words: the
	// version, and where and why the last migration failed.
	Status(ctx context.Context) (string, error)
	// Pending returns the versions Up would apply, in order.
	Pending(ctx context.Context) ([]int64, error)
	// Irreversible returns "ID (reason)" for each migration marked
	// "-- shipgate:irreversible REASON": its down does not restore
	// everything, on purpose.
	Irreversible() []string
	Close() error
}
