package rollout

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/shipgate/shipgate/internal/analysis"
	"github.com/shipgate/shipgate/internal/audit"
	"github.com/shipgate/shipgate/internal/config"
)

// ActorEngine is the audit actor of what the engine does by itself.
const ActorEngine = "shipgate"

// Options are what an Engine is built from.
type Options struct {
	Config  *config.Config
	Store   Store
	Runtime Runtime
	// Routers holds the router of each environment, by name.
	Routers map[string]Router
	Prober  Prober
	// Migrations runs the releases' migrations; needed when the config
	// declares migrations.
	Migrations Migrations
	// Clock defaults to the wall clock.
	Clock  Clock
	Logger *slog.Logger
	// Tick is how often a bake looks at the new instances' health between
	// two analyses. Default 200ms.
	Tick time.Duration
}

// Adopter is implemented by runtimes that can take over instances started
// by an earlier server process.
type Adopter interface {
	Adopt(ctx context.Context, inst Instance, spec InstanceSpec) error
}

// Engine drives rollouts. Each environment has at most one active rollout,
// driven by its own goroutine; the Engine owns those goroutines and stops
// them on Close. A stopped rollout is resumed from its last committed step
// by the next Start.
type Engine struct {
	cfg        *config.Config
	store      Store
	runtime    Runtime
	routers    map[string]Router
	prober     Prober
	migrations Migrations
	clock      Clock
	log        *slog.Logger
	tick       time.Duration

	mu        sync.Mutex
	drivers   map[string]*driver // by environment
	baselines map[int64]analysis.Sample
	base      context.Context
	stop      context.CancelFunc
	wg        sync.WaitGroup
}

// driver is the goroutine of one active rollout and the ways to reach it.
type driver struct {
	id       int64
	restored chan struct{} // closed once traffic is back on the old release
	done     chan struct{} // closed when the goroutine ends

	mu         sync.Mutex
	cancelStep context.CancelFunc
	abort      *Failure
	hurry      bool
	restoredOK bool
	approval   *Approval // handed over by Approve, recorded by the driver
	stepKind   StepKind  // the step being run, for Approve to check
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
}

func (f *Failure) Error() string { return f.Reason }

func failf(format string, args ...any) *Failure {
	return &Failure{Reason: fmt.Sprintf(format, args...)}
}

// wallClock is the real time.
type wallClock struct{}

func (wallClock) Now() time.Time { return time.Now().UTC() }

// New returns an Engine; call Start before use.
func New(o Options) (*Engine, error) {
	if o.Config == nil || o.Store == nil || o.Runtime == nil || o.Prober == nil {
		return nil, errors.New("rollout: config, store, runtime and prober are required")
	}
	for name := range o.Config.Environments {
		if o.Routers[name] == nil {
			return nil, fmt.Errorf("rollout: no router for environment %q", name)
		}
	}
	e := &Engine{
		cfg: o.Config, store: o.Store, runtime: o.Runtime, routers: o.Routers, prober: o.Prober, migrations: o.Migrations,
		clock: o.Clock, log: o.Logger, tick: o.Tick, drivers: map[string]*driver{}, baselines: map[int64]analysis.Sample{},
	}
	if e.clock == nil {
		e.clock = wallClock{}
	}
	if e.log == nil {
		e.log = slog.New(slog.DiscardHandler)
	}
	if e.tick <= 0 {
		e.tick = 200 * time.Millisecond
	}
	return e, nil
}

// Start restores every environment's routes from the store, re-adopts the
// instances an earlier server left running (restarting the stable release
// if its instances are gone), and resumes every active rollout.
func (e *Engine) Start(ctx context.Context) error {
	e.mu.Lock()
	if e.base != nil {
		e.mu.Unlock()
		return errors.New("rollout: engine already started")
	}
	e.base, e.stop = context.WithCancel(context.WithoutCancel(ctx))
	e.mu.Unlock()

	active, err := e.store.ActiveRollouts(ctx)
	if err != nil {
		return fmt.Errorf("list active rollouts: %w", err)
	}
	byEnv := map[string]Rollout{}
	for _, r := range active {
		if r.App == e.cfg.App {
			byEnv[r.Env] = r
		}
	}
	if err := e.reapOrphans(ctx, active); err != nil {
		return fmt.Errorf("stop orphaned instances: %w", err)
	}
	for _, env := range e.envNames() {
		r, hasActive := byEnv[env]
		if err := e.restoreEnv(ctx, env, &r, hasActive); err != nil {
			return fmt.Errorf("restore %s: %w", env, err)
		}
		if hasActive {
			e.mu.Lock()
			e.launch(r)
			e.mu.Unlock()
		}
	}
	return nil
}

// Lister is implemented by runtimes that can list the instances they (or
// an earlier server on the same data) started and that still run.
type Lister interface {
	List(ctx context.Context) ([]Instance, error)
}

// reapOrphans stops the instances the runtime lists that neither an
// environment nor an active rollout owns: those an earlier server started
// and died before recording. Without it a crash at the wrong moment would
// leave instances running forever, and the resumed rollout would start
// duplicates next to them.
func (e *Engine) reapOrphans(ctx context.Context, active []Rollout) error {
	l, ok := e.runtime.(Lister)
	if !ok {
		return nil
	}
	running, err := l.List(ctx)
	if err != nil {
		return err
	}
	owned := map[string]bool{}
	for _, env := range e.envNames() {
		if st, err := e.store.GetEnvState(ctx, e.cfg.App, env); err == nil {
			for _, inst := range st.Instances {
				owned[inst.ID] = true
			}
		}
	}
	for _, r := range active {
		for _, inst := range slices.Concat(r.New, r.Old, r.Replaced) {
			owned[inst.ID] = true
		}
	}
	var orphans []Instance
	for _, inst := range running {
		if inst.App == e.cfg.App && !owned[inst.ID] {
			orphans = append(orphans, inst)
		}
	}
	if len(orphans) == 0 {
		return nil
	}
	e.log.Warn("stopping orphaned instances", "count", len(orphans))
	return e.runtime.Stop(ctx, orphans)
}

// restoreEnv puts an environment's routes back as the store says they were.
func (e *Engine) restoreEnv(ctx context.Context, env string, r *Rollout, hasActive bool) error {
	state, err := e.store.GetEnvState(ctx, e.cfg.App, env)
	if errors.Is(err, ErrNotFound) {
		if !hasActive {
			return nil
		}
	} else if err != nil {
		return err
	}
	if err == nil && (!hasActive || r.PromotedAt.IsZero()) {
		insts, err := e.adoptOrStart(ctx, env, state.Stable, state.Instances)
		if err != nil {
			return err
		}
		if !sameInstances(insts, state.Instances) {
			state.Instances = insts
			state.UpdatedAt = e.clock.Now()
			c := Change{Env: &state}
			if hasActive {
				r.Old = insts
				r.UpdatedAt = state.UpdatedAt
				cp := *r
				c.Rollout = &cp
			}
			if err := e.store.Commit(ctx, c); err != nil {
				return err
			}
		}
	}
	if hasActive {
		for _, inst := range append(append([]Instance(nil), r.New...), r.Old...) {
			e.adopt(ctx, env, inst)
		}
	}
	st, err := e.cfg.Stage(env)
	if err != nil {
		return err
	}
	routes := Routes{}
	switch {
	case hasActive && !r.PromotedAt.IsZero():
		routes = e.stableRoutes(r.Version, r.New, r.Seed)
		if st.Env.PreviewListen != "" && r.Kind == KindDeploy && len(r.Old) > 0 {
			routes.Preview = Backend{Version: r.FromVersion, Addrs: addrs(r.Old)}
		}
	case hasActive && r.Phase == PhaseRunning && (r.Weight > 0 || r.reached(StepInternal)):
		routes = e.routes(st, r, r.Weight)
	case hasActive && r.Phase == PhaseRunning && len(r.New) > 0:
		routes = e.routes(st, r, 0)
	case state.Stable != "":
		routes = e.stableRoutes(state.Stable, state.Instances, "")
	}
	return e.routers[env].SetRoutes(ctx, routes)
}

// adoptOrStart returns running instances of version: the given ones if the
// runtime can adopt them, or new ones.
func (e *Engine) adoptOrStart(ctx context.Context, env, version string, insts []Instance) ([]Instance, error) {
	alive := len(insts) > 0
	for _, inst := range insts {
		if !e.adopt(ctx, env, inst) {
			alive = false
		}
	}
	if alive {
		return insts, nil
	}
	e.log.Warn("stable instances are gone, starting new ones", "env", env, "version", version)
	_ = e.runtime.Stop(ctx, insts)
	rel, err := e.store.GetRelease(ctx, e.cfg.App, version)
	if err != nil {
		return nil, err
	}
	spec, err := instanceSpec(e.cfg, env, rel)
	if err != nil {
		return nil, err
	}
	return e.runtime.Start(ctx, spec)
}

// adopt hands an instance of an earlier server to the runtime, and reports
// whether it is alive.
func (e *Engine) adopt(ctx context.Context, env string, inst Instance) bool {
	if st := e.runtime.Status(ctx, inst); st.State == InstanceRunning {
		return true
	}
	a, ok := e.runtime.(Adopter)
	if !ok {
		return false
	}
	rel, err := e.store.GetRelease(ctx, e.cfg.App, inst.Version)
	if err != nil {
		return false
	}
	spec, err := instanceSpec(e.cfg, env, rel)
	if err != nil {
		return false
	}
	if err := a.Adopt(ctx, inst, spec); err != nil {
		e.log.Info("instance not adopted", "instance", inst.ID, "err", err)
		return false
	}
	return true
}

// Close stops driving rollouts and waits for the drivers to return. The
// rollouts stay active in the store and resume on the next Start; routes
// and instances are left as they are.
func (e *Engine) Close() {
	e.mu.Lock()
	stop := e.stop
	e.mu.Unlock()
	if stop != nil {
		stop()
	}
	e.wg.Wait()
}

var versionRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$`)

// Deploy records the release and starts rolling it out. It returns once
// the rollout is committed; the rollout goes on in the background.
func (e *Engine) Deploy(ctx context.Context, req DeployRequest) (Rollout, error) {
	env, err := e.checkTarget(req.App, req.Env)
	if err != nil {
		return Rollout{}, err
	}
	if !versionRE.MatchString(req.Version) {
		return Rollout{}, &FieldError{Field: "version", Message: fmt.Sprintf("%q is not a version: use letters, digits, '.', '_', '+', '-'", req.Version)}
	}
	rel, err := e.release(ctx, req)
	if err != nil {
		return Rollout{}, err
	}
	if _, err := instanceSpec(e.cfg, env, rel); err != nil {
		return Rollout{}, err
	}

	if req.Hotfix && req.Reason == "" {
		return Rollout{}, &FieldError{Field: "reason", Message: "a hotfix needs a reason; it goes into the audit log with every gate it skips"}
	}
	st, err := e.cfg.Stage(env)
	if err != nil {
		return Rollout{}, &FieldError{Field: "env", Message: err.Error()}
	}
	gates, err := e.checkGates(ctx, st, rel, req.Hotfix)
	if err != nil {
		return Rollout{}, err
	}
	if err := e.checkMigrations(ctx, st, rel); err != nil {
		return Rollout{}, err
	}

	e.mu.Lock()
	defer e.mu.Unlock()
	if err := e.makeRoom(ctx, env); err != nil {
		return Rollout{}, err
	}
	state, err := e.store.GetEnvState(ctx, req.App, env)
	first := errors.Is(err, ErrNotFound)
	if err != nil && !first {
		return Rollout{}, err
	}
	if !first && state.Stable == req.Version {
		return Rollout{}, fmt.Errorf("%s is already live in %s: %w", req.Version, env, ErrConflict)
	}
	opts := planOptions{first: first, approval: st.Env.Gates.Approval, migrate: e.cfg.Migrations != nil}
	var events []audit.Event
	now := e.clock.Now()
	r := Rollout{
		App: req.App, Env: env, Kind: KindDeploy, Version: req.Version, FromVersion: state.Stable,
		Phase: PhaseRunning, StepStartedAt: now, Seed: newSeed(), Strategy: strategyOf(st),
		Old: state.Instances, Actor: req.Actor, CreatedAt: now, UpdatedAt: now, Hotfix: req.Hotfix,
	}
	if req.Hotfix {
		opts.bakeScale = e.cfg.Hotfix.BakeScale
		r.Reason = "hotfix: " + req.Reason
		for _, g := range gates {
			if !g.Bypassed {
				continue
			}
			if g.Gate == "approval" {
				opts.approval = false
			}
			r.Bypassed = append(r.Bypassed, g.Gate)
			ev := e.event(&r, req.Actor, audit.ActionGateBypass, req.Reason)
			ev.Data["gate"], ev.Data["detail"] = g.Gate, g.Detail
			events = append(events, ev)
		}
	}
	r.Steps = Plan(st, opts)
	ev := e.event(&r, req.Actor, audit.ActionDeploy, fmt.Sprintf("deploy %s (from %s)", req.Version, orNone(state.Stable)))
	if req.Hotfix {
		ev.Reason += " as a hotfix: " + req.Reason
	}
	events = append([]audit.Event{ev}, events...)
	if err := e.store.Commit(ctx, Change{Rollout: &r, Audit: events}); err != nil {
		return Rollout{}, fmt.Errorf("record rollout: %w", err)
	}
	e.log.Info("rollout created", "rollout", r.ID, "env", env, "version", r.Version, "from", r.FromVersion, "strategy", r.Strategy)
	e.launch(r)
	return r, nil
}

// makeRoom makes sure no rollout of env is active. A rollout that is only
// waiting to scale down its old release is told to do so now; any other
// is a conflict. Called with e.mu held.
func (e *Engine) makeRoom(ctx context.Context, env string) error {
	d := e.drivers[env]
	if d == nil {
		return nil
	}
	r, err := e.store.GetRollout(ctx, d.id)
	if err != nil {
		return err
	}
	if r.Phase != PhaseRunning || r.StepIndex >= len(r.Steps) || r.Steps[r.StepIndex].Kind != StepScaleDown {
		return fmt.Errorf("rollout %d of %s/%s is still %s; wait for it or roll it back: %w", r.ID, r.App, r.Env, describe(r), ErrConflict)
	}
	d.mu.Lock()
	d.hurry = true
	d.mu.Unlock()
	e.mu.Unlock()
	defer e.mu.Lock()
	select {
	case <-d.done:
		return nil
	case <-time.After(2 * time.Minute):
		return fmt.Errorf("rollout %d is still scaling down: %w", r.ID, ErrConflict)
	case <-ctx.Done():
		return ctx.Err()
	}
}

func describe(r Rollout) string {
	if r.Phase == PhaseRunning && r.StepIndex < len(r.Steps) {
		return fmt.Sprintf("at step %d/%d (%s)", r.StepIndex+1, len(r.Steps), describeStep(r.Steps[r.StepIndex]))
	}
	return string(r.Phase)
}

// release returns the release a deploy names, recording it if it is new.
func (e *Engine) release(ctx context.Context, req DeployRequest) (Release, error) {
	old, err := e.store.GetRelease(ctx, req.App, req.Version)
	switch {
	case err == nil && req.Commit == "" && len(req.Vars) == 0:
		return old, nil
	case err != nil && !errors.Is(err, ErrNotFound):
		return Release{}, err
	}
	rel := Release{App: req.App, Version: req.Version, Commit: req.Commit, Vars: req.Vars, CreatedAt: e.clock.Now()}
	if err == nil {
		rel.CreatedAt = old.CreatedAt
	}
	if err := e.store.PutRelease(ctx, rel); err != nil {
		return Release{}, err
	}
	return rel, nil
}

// Rollback puts an environment back on its last good release. While a
// rollout runs, that is the stable release: traffic moves at once and
// Rollback returns when it has. Otherwise it is the previous release, which
// is started, smoke-checked and switched to in one step.
func (e *Engine) Rollback(ctx context.Context, req RollbackRequest) (Rollout, error) {
	env, err := e.checkTarget(req.App, req.Env)
	if err != nil {
		return Rollout{}, err
	}
	if req.Reason == "" {
		return Rollout{}, &FieldError{Field: "reason", Message: "say why you roll back; it goes into the audit log"}
	}
	e.mu.Lock()
	if d := e.drivers[env]; d != nil {
		e.mu.Unlock()
		d.requestAbort(&Failure{Reason: req.Reason, Manual: true, Actor: req.Actor})
		select {
		case <-d.restored:
		case <-d.done:
		case <-ctx.Done():
			return Rollout{}, ctx.Err()
		}
		return e.store.GetRollout(ctx, d.id)
	}
	defer e.mu.Unlock()
	state, err := e.store.GetEnvState(ctx, req.App, env)
	if err != nil {
		return Rollout{}, fmt.Errorf("nothing is deployed in %s: %w", env, err)
	}
	if state.Previous == "" {
		return Rollout{}, fmt.Errorf("%s has no earlier release to roll back to from %s: %w", env, state.Stable, ErrConflict)
	}
	st, err := e.cfg.Stage(env)
	if err != nil {
		return Rollout{}, err
	}
	now := e.clock.Now()
	r := Rollout{
		App: req.App, Env: env, Kind: KindRollback, Version: state.Previous, FromVersion: state.Stable,
		Phase: PhaseRunning, Steps: rollbackPlan(st), StepStartedAt: now, Seed: newSeed(),
		Old: state.Instances, Actor: req.Actor, Reason: req.Reason, CreatedAt: now, UpdatedAt: now,
	}
	ev := e.event(&r, req.Actor, audit.ActionRollbackManual, req.Reason)
	ev.Data["to"], ev.Data["from"] = state.Previous, state.Stable
	if err := e.store.Commit(ctx, Change{Rollout: &r, Audit: []audit.Event{ev}}); err != nil {
		return Rollout{}, fmt.Errorf("record rollback: %w", err)
	}
	e.launch(r)
	return r, nil
}

// Status returns what is live in each environment of app.
func (e *Engine) Status(ctx context.Context, app string) (AppStatus, error) {
	if _, err := e.checkTarget(app, e.anyEnv()); err != nil {
		return AppStatus{}, err
	}
	active, err := e.store.ActiveRollouts(ctx)
	if err != nil {
		return AppStatus{}, err
	}
	out := AppStatus{App: app}
	for _, env := range e.envNames() {
		es := EnvStatus{Env: env, Listen: e.cfg.Environments[env].Listen}
		state, err := e.store.GetEnvState(ctx, app, env)
		switch {
		case err == nil:
			es.State = &state
		case !errors.Is(err, ErrNotFound):
			return AppStatus{}, err
		}
		for i := range active {
			if active[i].App == app && active[i].Env == env {
				es.Active = &active[i]
			}
		}
		out.Envs = append(out.Envs, es)
	}
	return out, nil
}

// GetRollout returns one rollout.
func (e *Engine) GetRollout(ctx context.Context, id int64) (Rollout, error) {
	return e.store.GetRollout(ctx, id)
}

// History returns an app's rollouts, newest first.
func (e *Engine) History(ctx context.Context, app, env string, limit int) ([]Rollout, error) {
	if _, err := e.checkTarget(app, e.anyEnv()); err != nil {
		return nil, err
	}
	if env != "" {
		if _, err := e.cfg.Environment(env); err != nil {
			return nil, &FieldError{Field: "env", Message: err.Error()}
		}
	}
	return e.store.ListRollouts(ctx, app, env, limit)
}

// Audit returns audit events, newest first.
func (e *Engine) Audit(ctx context.Context, f audit.Filter) ([]audit.Event, error) {
	return e.store.ListAudit(ctx, f)
}

// Wait blocks until the rollout of env driven now, if any, has ended.
func (e *Engine) Wait(ctx context.Context, env string) error {
	e.mu.Lock()
	d := e.drivers[env]
	e.mu.Unlock()
	if d == nil {
		return nil
	}
	select {
	case <-d.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (e *Engine) checkTarget(app, env string) (string, error) {
	if app != e.cfg.App {
		return "", fmt.Errorf("app %q is not managed by this server (it manages %q): %w", app, e.cfg.App, ErrNotFound)
	}
	if env == "" {
		name, err := e.cfg.DefaultEnv()
		if err != nil {
			return "", &FieldError{Field: "env", Message: err.Error()}
		}
		return name, nil
	}
	if _, err := e.cfg.Environment(env); err != nil {
		return "", &FieldError{Field: "env", Message: err.Error()}
	}
	return env, nil
}

func (e *Engine) anyEnv() string {
	names := e.envNames()
	if len(names) == 0 {
		return ""
	}
	return names[0]
}

func (e *Engine) envNames() []string {
	names := make([]string, 0, len(e.cfg.Environments))
	for n := range e.cfg.Environments {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// launch starts the goroutine that drives r. Called with e.mu held.
func (e *Engine) launch(r Rollout) {
	d := &driver{id: r.ID, restored: make(chan struct{}), done: make(chan struct{})}
	e.drivers[r.Env] = d
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		defer close(d.done)
		defer func() {
			e.mu.Lock()
			if e.drivers[r.Env] == d {
				delete(e.drivers, r.Env)
			}
			e.mu.Unlock()
		}()
		e.drive(e.base, d, r)
	}()
}

// requestAbort asks the driver to roll back, interrupting the current step.
func (d *driver) requestAbort(f *Failure) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.abort == nil {
		d.abort = f
	}
	if d.cancelStep != nil {
		d.cancelStep()
	}
}

func (d *driver) takeAbort() *Failure {
	d.mu.Lock()
	defer d.mu.Unlock()
	f := d.abort
	d.abort = nil
	return f
}

func (d *driver) markRestored() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.restoredOK {
		d.restoredOK = true
		close(d.restored)
	}
}

func (d *driver) hurried() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.hurry
}

// drive runs r's steps until it reaches a final phase or ctx ends.
func (e *Engine) drive(ctx context.Context, d *driver, r Rollout) {
	for !r.Phase.Final() && ctx.Err() == nil {
		if r.Phase == PhaseRollingBack {
			e.rollBack(ctx, d, &r)
			continue
		}
		if r.StepIndex >= len(r.Steps) {
			e.succeed(ctx, &r)
			continue
		}
		stepCtx, cancel := context.WithCancel(ctx)
		d.mu.Lock()
		d.cancelStep = cancel
		pending := d.abort != nil
		d.mu.Unlock()
		var err error
		if !pending {
			err = e.runStep(stepCtx, d, &r)
		}
		cancel()
		if f := d.takeAbort(); f != nil {
			e.beginRollback(ctx, &r, f)
			continue
		}
		if ctx.Err() != nil {
			return // shutting down: the next Start resumes from the committed step
		}
		if err != nil {
			var f *Failure
			if !errors.As(err, &f) {
				f = &Failure{Reason: err.Error()}
			}
			e.beginRollback(ctx, &r, f)
			continue
		}
		e.advance(ctx, &r)
	}
}

func (e *Engine) runStep(ctx context.Context, d *driver, r *Rollout) error {
	step := r.Steps[r.StepIndex]
	d.mu.Lock()
	d.stepKind = step.Kind
	d.mu.Unlock()
	st, err := e.cfg.Stage(r.Env)
	if err != nil {
		return err
	}
	switch step.Kind {
	case StepStart:
		return e.stepStart(ctx, r)
	case StepSmoke:
		return e.stepSmoke(ctx, st, r)
	case StepApproval:
		return e.stepApproval(ctx, d, r)
	case StepInternal, StepWeight:
		return e.stepWeight(ctx, st, r, step)
	case StepBatch:
		return e.stepBatch(ctx, st, r, step)
	case StepPromote:
		return e.stepPromote(ctx, st, r)
	case StepPostSmoke:
		return e.stepPostSmoke(ctx, st, r)
	case StepObserve:
		return e.stepObserve(ctx, st, r, step)
	case StepRestore:
		return e.stepRestore(ctx, r)
	case StepMigrate:
		return e.stepMigrate(ctx, st, r)
	case StepScaleDown:
		return e.stepScaleDown(ctx, d, r, step)
	}
	return fmt.Errorf("unknown step %q", step.Kind)
}

func (e *Engine) stepStart(ctx context.Context, r *Rollout) error {
	if len(r.New) > 0 {
		if e.allRunning(ctx, r.New) {
			return nil
		}
		_ = e.runtime.Stop(ctx, r.New)
		r.New = nil
	}
	rel, err := e.store.GetRelease(ctx, r.App, r.Version)
	if err != nil {
		return err
	}
	spec, err := instanceSpec(e.cfg, r.Env, rel)
	if err != nil {
		return err
	}
	insts, err := e.runtime.Start(ctx, spec)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return failf("%s did not start: %v", r.Version, err)
	}
	r.New = insts
	return e.save(ctx, r, nil)
}

func (e *Engine) allRunning(ctx context.Context, insts []Instance) bool {
	for _, inst := range insts {
		if e.runtime.Status(ctx, inst).State != InstanceRunning {
			return false
		}
	}
	return true
}

func (e *Engine) stepSmoke(ctx context.Context, st *config.Stage, r *Rollout) error {
	if st.Env.PreviewListen != "" {
		// The preview address shows the new release to smoke checks and to
		// people before any user sees it.
		if err := e.routers[r.Env].SetRoutes(ctx, e.routes(st, r, r.Weight)); err != nil {
			return fmt.Errorf("set preview: %w", err)
		}
		for _, c := range smokeChecks(st.Smoke) {
			if err := e.prober.Probe(ctx, st.Env.PreviewListen, c); err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				return failf("smoke check GET %s through the preview address %s failed: %v", c.Path, st.Env.PreviewListen, err)
			}
		}
	}
	for _, inst := range r.New {
		for _, c := range smokeChecks(st.Smoke) {
			if err := e.prober.Probe(ctx, inst.Addr, c); err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				return failf("smoke check GET %s on %s failed: %v", c.Path, inst.ID, err)
			}
		}
	}
	return nil
}

func (e *Engine) stepWeight(ctx context.Context, st *config.Stage, r *Rollout, step Step) error {
	router := e.routers[r.Env]
	weight := step.Weight
	if step.Kind == StepInternal {
		weight = 0
	}
	baseline, err := router.Stats(ctx)
	if err != nil {
		return fmt.Errorf("read router stats: %w", err)
	}
	if err := router.SetRoutes(ctx, e.routes(st, r, weight)); err != nil {
		return fmt.Errorf("set canary weight %d%%: %w", weight, err)
	}
	if r.Weight != weight || r.FirstTrafficAt.IsZero() {
		r.Weight = weight
		if r.FirstTrafficAt.IsZero() {
			r.FirstTrafficAt = e.clock.Now()
		}
		if err := e.save(ctx, r, nil); err != nil {
			return err
		}
	}
	// Internal users are few: their bake fails on evidence but does not
	// wait for enough of it to pass.
	return e.bake(ctx, st, r, step, baseline, r.Version, r.FromVersion, nil, step.Kind != StepInternal)
}

// bake holds a step for its duration while judging the canary version
// against the stable one every analysis interval (or against a fixed
// stable sample, when given). It fails at once on a failed gate; with
// needPass, it ends only once every gate passes (waiting up to as long
// again, at least five intervals), otherwise when the time is over.
func (e *Engine) bake(ctx context.Context, st *config.Stage, r *Rollout, step Step, baseline map[string]analysis.Sample, canaryV, stableV string, fixedStable *analysis.Sample, needPass bool) error {
	router := e.routers[r.Env]
	a := st.Analysis
	seq := analysis.NewSequence(Gates(a), JudgeOptions(a, r.Steps))
	interval := a.Interval.D()
	extra := max(step.Duration, 5*interval)
	next := e.clock.Now().Add(interval)
	ticker := time.NewTicker(min(e.tick, interval))
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-ticker.C:
		}
		if f := e.checkInstances(ctx, r.New); f != nil {
			return f
		}
		now := e.clock.Now()
		if now.Before(next) {
			continue
		}
		next = now.Add(interval)
		var canary, stable analysis.Sample
		var verdict analysis.Verdict
		var results []analysis.Result
		if stats, err := router.Stats(ctx); err != nil {
			// An inconclusive look; the step fails if the source stays down.
			verdict, results = seq.SourceError(fmt.Errorf("read router stats: %w", err))
		} else {
			canary = stats[canaryV].Sub(baseline[canaryV])
			stable = stats[stableV].Sub(baseline[stableV])
			if fixedStable != nil {
				stable = *fixedStable
			}
			verdict, results = seq.Look(now.Sub(r.StepStartedAt), canary, stable)
		}
		r.Analysis = &Judgement{At: now, Verdict: verdict, Results: results, Canary: summarize(canary), Stable: summarize(stable)}
		if err := e.save(ctx, r, nil); err != nil {
			return err
		}
		elapsed := now.Sub(r.StepStartedAt)
		switch {
		case verdict == analysis.Fail:
			for _, res := range results {
				if res.Verdict == analysis.Fail {
					return &Failure{Reason: "gate " + res.Gate + " failed: " + res.Detail, Gate: res.Gate, Value: res.Value, Threshold: res.Threshold}
				}
			}
		case elapsed >= step.Duration && (verdict == analysis.Pass || !needPass):
			return nil
		case elapsed >= step.Duration+extra:
			for _, res := range results {
				if res.Verdict != analysis.Pass {
					return &Failure{Reason: "gate " + res.Gate + " still inconclusive after " + elapsed.Round(time.Second).String() + ": " + res.Detail, Gate: res.Gate, Value: res.Value, Threshold: res.Threshold}
				}
			}
		}
	}
}

// routes is the routing table of r at a canary weight: stable and canary
// backends, internal users when the plan has them and they were reached,
// the preview backend and the router's health check.
func (e *Engine) routes(st *config.Stage, r *Rollout, weight int) Routes {
	rt := Routes{
		Stable: Backend{Version: r.FromVersion, Addrs: addrs(r.Old)},
		Canary: Backend{Version: r.Version, Addrs: addrs(r.New)},
		Weight: weight, Seed: r.Seed, Health: e.routeHealth(),
	}
	if r.FromVersion == "" || len(r.Old) == 0 {
		rt.Stable = Backend{}
	}
	if len(r.New) == 0 {
		rt.Canary = Backend{}
	}
	if st.Env.PreviewListen != "" && len(r.New) > 0 {
		rt.Preview = Backend{Version: r.Version, Addrs: addrs(r.New)}
	}
	if c := st.Strategy.Canary; c != nil && c.Internal != nil && r.reached(StepInternal) {
		in := c.Internal
		rt.Match = &Match{Header: in.Header, Cookie: in.Cookie, Values: in.Values, Users: in.Users}
	}
	return rt
}

// stableRoutes sends everything to one version.
func (e *Engine) stableRoutes(version string, insts []Instance, seed string) Routes {
	return Routes{Stable: Backend{Version: version, Addrs: addrs(insts)}, Seed: seed, Health: e.routeHealth()}
}

func (e *Engine) routeHealth() *RouteHealth {
	h := e.cfg.Run.Health
	return &RouteHealth{Path: h.Path, Interval: h.Interval.D(), Timeout: h.Timeout.D(), FailureThreshold: h.FailureThreshold}
}

// reached reports whether the rollout has entered a step of kind k.
func (r *Rollout) reached(k StepKind) bool {
	for i := 0; i <= r.StepIndex && i < len(r.Steps); i++ {
		if r.Steps[i].Kind == k {
			return true
		}
	}
	return false
}

// checkInstances returns a Failure if a new instance exited or is unhealthy.
func (e *Engine) checkInstances(ctx context.Context, insts []Instance) *Failure {
	for _, inst := range insts {
		st := e.runtime.Status(ctx, inst)
		if st.State == InstanceExited || st.State == InstanceUnhealthy {
			return failf("instance %s is %s: %s", inst.ID, st.State, st.Reason)
		}
	}
	return nil
}

func summarize(s analysis.Sample) Summary {
	return Summary{
		Requests: s.Requests, Errors: s.Errors(), ErrorRate: s.ErrorRate(),
		P50: s.Latency.Quantile(0.5), P99: s.Latency.Quantile(0.99),
	}
}

func (e *Engine) stepPromote(ctx context.Context, st *config.Stage, r *Rollout) error {
	if err := e.checkApproval(ctx, r); err != nil {
		return err
	}
	router := e.routers[r.Env]
	if stats, err := router.Stats(ctx); err == nil {
		// What the old release measured before the switch is the baseline
		// a blue-green observe step judges the new one against.
		e.setBaseline(r.ID, stats[r.FromVersion])
	}
	routes := e.stableRoutes(r.Version, r.New, r.Seed)
	if st.Env.PreviewListen != "" && r.Kind == KindDeploy && len(r.Old) > 0 {
		// Blue stays reachable on the preview address while it runs.
		routes.Preview = Backend{Version: r.FromVersion, Addrs: addrs(r.Old)}
	}
	if err := router.SetRoutes(ctx, routes); err != nil {
		return fmt.Errorf("promote: %w", err)
	}
	now := e.clock.Now()
	r.Weight, r.PromotedAt = 100, now
	if r.FirstTrafficAt.IsZero() {
		r.FirstTrafficAt = now
	}
	env := EnvState{App: r.App, Env: r.Env, Stable: r.Version, Instances: r.New, UpdatedAt: now}
	switch r.Kind {
	case KindDeploy:
		env.Previous = r.FromVersion
	case KindDrill:
		env.Previous = r.FromVersion
	}
	ev := e.event(r, ActorEngine, audit.ActionPromote, fmt.Sprintf("%s takes 100%% of traffic", r.Version))
	return e.save(ctx, r, &env, ev)
}

func (e *Engine) stepScaleDown(ctx context.Context, d *driver, r *Rollout, step Step) error {
	deadline := r.StepStartedAt.Add(step.Duration)
	ticker := time.NewTicker(min(e.tick, 100*time.Millisecond))
	defer ticker.Stop()
	for e.clock.Now().Before(deadline) && !d.hurried() {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-ticker.C:
		}
	}
	stop := r.Old
	keep, keepInsts := r.Version, r.New
	if r.Kind == KindDrill {
		// The drill switched back: the previous release is the one to stop.
		stop, keep, keepInsts = r.New, r.FromVersion, r.Old
	}
	// Take the old release off the preview address before it stops.
	if err := e.routers[r.Env].SetRoutes(ctx, e.stableRoutes(keep, keepInsts, r.Seed)); err != nil {
		return fmt.Errorf("clear the preview: %w", err)
	}
	if err := e.runtime.Stop(ctx, stop); err != nil {
		return fmt.Errorf("stop %s: %w", orNone(r.FromVersion), err)
	}
	return nil
}

// advance commits the move to the next step before it is acted on.
func (e *Engine) advance(ctx context.Context, r *Rollout) {
	r.StepIndex++
	r.StepStartedAt = e.clock.Now()
	var evs []audit.Event
	if r.StepIndex < len(r.Steps) {
		step := r.Steps[r.StepIndex]
		ev := e.event(r, ActorEngine, audit.ActionStep, describeStep(step))
		ev.Data["step"] = strconv.Itoa(r.StepIndex + 1)
		evs = append(evs, ev)
	}
	e.mustSave(ctx, r, nil, evs...)
}

func (e *Engine) succeed(ctx context.Context, r *Rollout) {
	now := e.clock.Now()
	r.Phase, r.FinishedAt = PhaseSucceeded, now
	ev := e.event(r, ActorEngine, audit.ActionSucceed, fmt.Sprintf("%s is stable; %s stopped", r.Version, orNone(r.FromVersion)))
	if r.Kind == KindDrill {
		ev = e.event(r, r.Actor, audit.ActionDrill, fmt.Sprintf("%s came back, served, and %s was restored", r.Version, r.FromVersion))
	}
	e.mustSave(ctx, r, nil, ev)
	e.log.Info("rollout succeeded", "rollout", r.ID, "env", r.Env, "version", r.Version)
}

// beginRollback commits the decision to roll back, with why.
func (e *Engine) beginRollback(ctx context.Context, r *Rollout, f *Failure) {
	now := e.clock.Now()
	r.Phase, r.RollbackStartedAt = PhaseRollingBack, now
	action, actor := audit.ActionRollbackAuto, ActorEngine
	if f.Manual {
		action, actor = audit.ActionRollbackManual, f.Actor
		r.Reason = "rolled back by " + f.Actor + ": " + f.Reason
	} else {
		r.Reason = f.Reason
	}
	ev := e.event(r, actor, action, f.Reason)
	if r.StepIndex < len(r.Steps) {
		ev.Data["step"] = describeStep(r.Steps[r.StepIndex])
	}
	if f.Gate != "" {
		ev.Data["gate"] = f.Gate
		ev.Data["value"] = strconv.FormatFloat(f.Value, 'g', 4, 64)
		ev.Data["threshold"] = strconv.FormatFloat(f.Threshold, 'g', 4, 64)
	}
	e.log.Warn("rolling back", "rollout", r.ID, "env", r.Env, "version", r.Version, "reason", r.Reason)
	if err := e.save(ctx, r, nil, ev); err != nil {
		// Traffic comes first: roll back now and record it as soon as the
		// store answers again.
		e.log.Error("record rollback decision", "rollout", r.ID, "err", err)
	}
}

// rollBack moves all traffic to the old release, then stops the new one.
// For a rolling rollout it then starts again as many old instances as were
// replaced.
func (e *Engine) rollBack(ctx context.Context, d *driver, r *Rollout) {
	var env *EnvState
	if r.FromVersion != "" {
		old := e.alive(ctx, r.Old)
		if len(old) == 0 {
			insts, err := e.adoptOrStart(ctx, r.Env, r.FromVersion, nil)
			if err != nil {
				e.log.Error("restart old release for rollback", "rollout", r.ID, "err", err)
			} else {
				old, r.Replaced = insts, nil
			}
		}
		if !e.setRoutesRetry(ctx, r, e.stableRoutes(r.FromVersion, old, r.Seed)) {
			return
		}
		r.TrafficRestoredAt = e.clock.Now()
		if len(r.Replaced) > 0 {
			more, err := e.startInstances(ctx, r.Env, r.FromVersion, len(r.Replaced))
			if err != nil {
				e.log.Error("restore replaced instances", "rollout", r.ID, "err", err)
			} else {
				old = append(old, more...)
				r.Replaced = nil
				if !e.setRoutesRetry(ctx, r, e.stableRoutes(r.FromVersion, old, r.Seed)) {
					return
				}
			}
		}
		r.Old = old
		if !r.PromotedAt.IsZero() || r.Strategy == StrategyRolling {
			env = &EnvState{App: r.App, Env: r.Env, Stable: r.FromVersion, Instances: old, UpdatedAt: e.clock.Now()}
			if prev, err := e.store.GetEnvState(ctx, r.App, r.Env); err == nil && prev.Stable == r.FromVersion {
				env.Previous = prev.Previous
			}
		}
	}
	r.Weight = 0
	if r.TrafficRestoredAt.IsZero() {
		r.TrafficRestoredAt = e.clock.Now()
	}
	e.mustSave(ctx, r, env)
	d.markRestored()
	final := PhaseRolledBack
	if r.MigrationFailed {
		final = PhaseFailed
	}
	if err := e.revertMigrations(ctx, r); err != nil {
		// The old release serves, but the schema is not what it was: say
		// so loudly rather than call the rollback done.
		e.log.Error("revert migrations", "rollout", r.ID, "err", err)
		r.Reason += "; " + err.Error()
		final = PhaseFailed
	}
	if err := e.runtime.Stop(ctx, r.New); err != nil {
		e.log.Error("stop rolled back instances", "rollout", r.ID, "err", err)
	}
	now := e.clock.Now()
	r.Phase, r.FinishedAt = final, now
	ev := e.event(r, ActorEngine, audit.ActionRolledBack, fmt.Sprintf("traffic back on %s; %s stopped", orNone(r.FromVersion), r.Version))
	if !r.FirstTrafficAt.IsZero() {
		ev.Data["seconds_from_first_traffic"] = strconv.FormatFloat(r.TrafficRestoredAt.Sub(r.FirstTrafficAt).Seconds(), 'f', 2, 64)
	}
	ev.Data["seconds_to_restore_traffic"] = strconv.FormatFloat(r.TrafficRestoredAt.Sub(r.RollbackStartedAt).Seconds(), 'f', 3, 64)
	events := []audit.Event{ev}
	if r.Kind == KindDrill {
		drill := e.event(r, r.Actor, audit.ActionDrill, "drill failed: "+r.Reason)
		drill.Outcome = "failed"
		events = append(events, drill)
	}
	e.mustSave(ctx, r, nil, events...)
}

// setRoutesRetry sets routes until the router takes them or ctx ends.
func (e *Engine) setRoutesRetry(ctx context.Context, r *Rollout, routes Routes) bool {
	for err := e.routers[r.Env].SetRoutes(ctx, routes); err != nil; err = e.routers[r.Env].SetRoutes(ctx, routes) {
		e.log.Error("move traffic back", "rollout", r.ID, "err", err)
		if !sleep(ctx, time.Second) {
			return false
		}
	}
	return true
}

// alive returns the instances not known to have exited.
func (e *Engine) alive(ctx context.Context, insts []Instance) []Instance {
	var out []Instance
	for _, inst := range insts {
		if e.runtime.Status(ctx, inst).State != InstanceExited {
			out = append(out, inst)
		}
	}
	return out
}

// startInstances starts n instances of version in env.
func (e *Engine) startInstances(ctx context.Context, env, version string, n int) ([]Instance, error) {
	rel, err := e.store.GetRelease(ctx, e.cfg.App, version)
	if err != nil {
		return nil, err
	}
	spec, err := instanceSpec(e.cfg, env, rel)
	if err != nil {
		return nil, err
	}
	spec.Count = n
	return e.runtime.Start(ctx, spec)
}

// save commits r (and env, and events) with a fresh UpdatedAt.
func (e *Engine) save(ctx context.Context, r *Rollout, env *EnvState, events ...audit.Event) error {
	r.UpdatedAt = e.clock.Now()
	cp := *r
	if err := e.store.Commit(ctx, Change{Rollout: &cp, Env: env, Audit: events}); err != nil {
		return fmt.Errorf("record rollout %d: %w", r.ID, err)
	}
	return nil
}

// mustSave retries a commit until it succeeds or ctx ends: the step it
// records has already happened and must not be forgotten.
func (e *Engine) mustSave(ctx context.Context, r *Rollout, env *EnvState, events ...audit.Event) {
	for {
		err := e.save(ctx, r, env, events...)
		if err == nil {
			return
		}
		e.log.Error("record rollout, retrying", "rollout", r.ID, "err", err)
		if !sleep(ctx, time.Second) {
			return
		}
	}
}

func (e *Engine) event(r *Rollout, actor, action, reason string) audit.Event {
	return audit.Event{
		Time: e.clock.Now(), Actor: actor, Action: action,
		Subject: r.App + "/" + r.Env + "/" + r.Version, Reason: reason, Outcome: "ok",
		Data: rolloutData(r.ID),
	}
}

// rolloutData starts an event's data with the rollout id, once it has one.
func rolloutData(id int64) map[string]string {
	if id == 0 {
		return map[string]string{}
	}
	return map[string]string{"rollout": strconv.FormatInt(id, 10)}
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
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
