package rollout

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/shipgate/shipgate/internal/clock"
)

// ActorEngine is the audit actor of what the engine does by itself.
const ActorEngine = "shipgate"

// Options are what an Engine is built from.
type Options struct {
	// Specs is the live configuration of the app, in the engine's terms
	// (internal/plan translates the config file).
	Specs Specs
	Store Store
	// Environments gives each environment's runtime, router, metric
	// source, prober and drainer.
	Environments Environments
	// Migrations runs the releases' migrations; needed when the config
	// declares migrations.
	Migrations Migrations
	// Tests judges releases on their recorded test results (the
	// flaky_tests, ci_time and require_levels gates); nil skips them.
	Tests TestJudge
	// Clock defaults to the wall clock.
	Clock  Clock
	Logger *slog.Logger
	// Tick is how often a bake looks at the new instances' health between
	// two analyses. Default 200ms.
	Tick time.Duration
	// DrainTimeout bounds how long the engine waits for a router to finish
	// the requests in flight to instances before it stops them. Default
	// 30s.
	DrainTimeout time.Duration
	// VerifyTimeout bounds how long a router's data plane may take to
	// serve a routing change (TrafficRouter.VerifyRoutes). Default 2m.
	VerifyTimeout time.Duration
	// DigestKey is the secret key of the release digests written to the
	// audit log and to approvals (see releaseDigest). The server keeps it
	// in its store; without it the digests are keyed with an empty key,
	// which only tests should do.
	DigestKey []byte
}

// deps are what the commands (Engine) and the reconciler share: the
// ports and settings New was given. They are set once by New and only
// read after, so they need no lock.
type deps struct {
	specs      Specs
	store      Store
	envs       Environments
	migrations Migrations
	tests      TestJudge
	clock      Clock
	log        *slog.Logger
	tick       time.Duration
	drain      time.Duration
	verify     time.Duration
	digestKey  []byte
}

// Engine is the commands side: the exported API the server calls
// (Deploy, Rollback, Approve, Promote, Pause, Plan, Drill, Drift,
// releases...). A command checks its request, commits what it decided and
// hands the rollout to the reconciler, which drives it.
type Engine struct {
	*deps
	rec *reconciler
}

// reconciler drives rollouts. Each environment has at most one active
// rollout, driven by its own goroutine; the reconciler owns those
// goroutines and stops them on close. A stopped rollout is resumed from
// its last committed step by the next start.
type reconciler struct {
	*deps

	// mu guards drivers, base and stop. A command that creates a
	// rollout holds it from its check that the environment is free until
	// the rollout is launched, so that an environment has one driver.
	mu      sync.Mutex
	drivers map[string]*driver // by environment
	base    context.Context
	stop    context.CancelFunc
	// halt stops the drivers from within (a write refused because another
	// server leads); it takes no lock. Set by start.
	halt func()
	wg   sync.WaitGroup
}

// Failure is why a rollout is rolled back.
type Failure struct {
	Reason string
	// Gate, Value and Threshold are set when an analysis gate failed.
	Gate      string
	Value     float64
	Threshold float64
	// Manual is true for a rollback a person asked for.
	Manual bool
	Actor  string
	// Command is the identity of the stored command that asked for it
	// (WithCommand), recorded with the audit event it causes.
	Command string
}

func (f *Failure) Error() string { return f.Reason }

func failf(format string, args ...any) *Failure {
	return &Failure{Reason: fmt.Sprintf(format, args...)}
}

// New returns an Engine; call Start before use.
func New(o Options) (*Engine, error) {
	if o.Specs == nil || o.Store == nil || o.Environments == nil {
		return nil, errors.New("rollout: specs, store and environments are required")
	}
	for _, name := range o.Specs.EnvNames() {
		en, err := o.Environments.For(o.Specs.App(), name)
		if err != nil {
			return nil, fmt.Errorf("rollout: environment %q: %w", name, err)
		}
		if en.Runtime == nil || en.Router == nil || en.Metrics == nil || en.Prober == nil {
			return nil, fmt.Errorf("rollout: environment %q needs a runtime, a router, a metric source and a prober", name)
		}
	}
	e := &deps{
		specs: o.Specs, store: stampingStore{o.Store}, envs: o.Environments, migrations: o.Migrations, tests: o.Tests,
		clock: o.Clock, log: o.Logger, tick: o.Tick, drain: o.DrainTimeout, verify: o.VerifyTimeout, digestKey: o.DigestKey,
	}
	if e.clock == nil {
		e.clock = clock.Real{}
	}
	if e.log == nil {
		e.log = slog.New(slog.DiscardHandler)
	}
	if e.tick <= 0 {
		e.tick = 200 * time.Millisecond
	}
	if e.drain <= 0 {
		e.drain = 30 * time.Second
	}
	if e.verify <= 0 {
		e.verify = 2 * time.Minute
	}
	return &Engine{deps: e, rec: &reconciler{deps: e, drivers: map[string]*driver{}}}, nil
}

// Start restores every environment's routes from the store, re-adopts the
// instances an earlier server left running (restarting the stable release
// if its instances are gone), and resumes every active rollout.
func (e *Engine) Start(ctx context.Context) error {
	return e.rec.startDrivers(ctx)
}

// nextEnvState is the environment state once stable (with insts) serves
// everyone, keeping the history of releases that were stable before,
// newest first. The release it replaces joins the history; a rollback
// (back true) goes back in it instead: the releases newer than stable are
// dropped, as they were rolled back from. It reads the current state, so
// that calling it again after a crash gives the same result.
func (e *deps) nextEnvState(ctx context.Context, r *Rollout, stable string, insts []Instance, back bool) EnvState {
	cur, err := e.store.GetEnvState(ctx, r.App, r.Env)
	if err != nil && !errors.Is(err, ErrNotFound) {
		e.log.Error("read env state", "env", r.Env, "err", err)
	}
	earlier := cur.History
	if len(earlier) == 0 && cur.Previous != "" {
		earlier = []string{cur.Previous} // a state written before the history was kept
	}
	all := append([]string{cur.Stable}, earlier...)
	if i := slices.Index(all, stable); back && i >= 0 {
		all = all[i+1:]
	}
	var hist []string
	for _, v := range all {
		if v != "" && v != stable && !slices.Contains(hist, v) {
			hist = append(hist, v)
		}
	}
	if len(hist) > historyDepth {
		hist = hist[:historyDepth]
	}
	next := EnvState{App: r.App, Env: r.Env, Stable: stable, Instances: insts, History: hist, UpdatedAt: e.clock.Now()}
	if len(hist) > 0 {
		next.Previous = hist[0]
	}
	return next
}

// liveState returns what is live in env, or ErrNotFound when nothing is:
// before the first deploy, or after a first deploy that failed.
func (e *deps) liveState(ctx context.Context, app, env string) (EnvState, error) {
	st, err := e.store.GetEnvState(ctx, app, env)
	if err == nil && st.Stable == "" {
		return EnvState{}, fmt.Errorf("nothing is live in %s/%s: %w", app, env, ErrNotFound)
	}
	return st, err
}

// Close stops driving rollouts and waits for the drivers to return. The
// rollouts stay active in the store and resume on the next Start (of this
// Engine too: a server that leads again starts it again); routes and
// instances are left as they are.
func (e *Engine) Close() {
	e.rec.stopDrivers()
}

func addrs(insts []Instance) []string {
	out := make([]string, len(insts))
	for i, inst := range insts {
		out[i] = inst.Addr
	}
	return out
}

func sameInstances(a, b []Instance) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].ID != b[i].ID {
			return false
		}
	}
	return true
}

func newSeed() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func orNone(v string) string {
	if v == "" {
		return "nothing"
	}
	return v
}
