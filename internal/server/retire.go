package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/shipgate/shipgate/internal/api"
	"github.com/shipgate/shipgate/internal/audit"
	"github.com/shipgate/shipgate/internal/config"
	"github.com/shipgate/shipgate/internal/flags"
	"github.com/shipgate/shipgate/internal/proxy"
	"github.com/shipgate/shipgate/internal/retire"
	"github.com/shipgate/shipgate/internal/rollout"
)

// pathRouter is a router that counts traffic per path prefix and answers
// 410 for retired ones: the in-process builtin router.
type pathRouter interface {
	PathStats() (map[string]proxy.PathCount, bool)
	SetGone(prefixes []string)
}

var _ pathRouter = (*proxy.Proxy)(nil)

// RetireRequest asks to retire a route of an environment.
type RetireRequest struct {
	// Kind is "route"; flags and environments are not retired this way yet.
	Kind retire.Kind `json:"kind"`
	// App is the app whose router serves the route; "" when the server
	// manages one app.
	App string `json:"app,omitempty"`
	Env string `json:"env"`
	// Subject is the route's path prefix, such as /api/v1/legacy.
	Subject string `json:"subject"`
	Reason  string `json:"reason"`
	Actor   string `json:"-"`
}

// Retirements runs the retirements of routes and flags: it keeps the
// routers' per-prefix counters in the store, starts retirements, watches
// them to their end, and answers 410 for the retired prefixes. Routes are
// every app's: each app's routers are counted under "app/env" (routeKey),
// and a route retirement names its app. The apps are read live, so that
// a reload's new routers are counted and told what is gone.
type Retirements struct {
	apps    *Apps
	store   Store
	dataDir string
	log     *slog.Logger
	every   time.Duration
	// flags serves the flags retired; nil leaves flags out.
	flags *flags.Service

	mu      sync.Mutex
	flushMu sync.Mutex
	// snap is the last counts written, by router: a router replaced by a
	// reload starts from zero.
	snap    map[pathRouter]map[string]proxy.PathCount
	tracked map[string]bool // the route keys whose counting is recorded
	watches map[int64]bool
	ctx     context.Context
	stop    context.CancelFunc
	wg      sync.WaitGroup
}

// wallClock is the Clock of a running server.
type wallClock struct{}

func (wallClock) Now() time.Time                         { return time.Now().UTC() }
func (wallClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

func newRetirements(apps *Apps, store Store, fl *flags.Service, dataDir string, poll time.Duration, log *slog.Logger) *Retirements {
	rs := &Retirements{apps: apps, store: store, flags: fl, dataDir: dataDir, log: log, every: poll,
		snap: map[pathRouter]map[string]proxy.PathCount{}, tracked: map[string]bool{}, watches: map[int64]bool{}}
	if rs.every <= 0 {
		rs.every = retire.DefaultPoll
	}
	return rs
}

// routeKey names the route counters of env of app in the store.
func routeKey(app, env string) string { return app + "/" + env }

// first returns the config of the server's first app: its retire section
// is the server's (cycle, watch, backup command), and a retirement of
// before several apps is its.
func (rs *Retirements) first() *config.Config {
	names := rs.apps.AppNames()
	if len(names) == 0 {
		return nil
	}
	return rs.apps.Config(names[0])
}

// appOf returns the app of a route retirement: the first app's for one
// recorded before several apps.
func (rs *Retirements) appOf(r retire.Retirement) string {
	if r.App == "" && r.Kind == retire.KindRoute {
		if c := rs.first(); c != nil {
			return c.App
		}
	}
	return r.App
}

// routers returns the routers that count routes, by route key.
func (rs *Retirements) routers() map[string]pathRouter {
	out := map[string]pathRouter{}
	for _, p := range rs.apps.planes() {
		for env, r := range p.routers {
			if pr, ok := r.(pathRouter); ok {
				out[routeKey(p.cfg.App, env)] = pr
			}
		}
	}
	return out
}

// retirer is the retire.Retirer of a retirement of app ("" for a flag):
// the references to what is retired are looked for in the app's
// repository, where its config is.
func (rs *Retirements) retirer(app string) *retire.Retirer {
	dir := ""
	if c := rs.apps.Config(app); c != nil && c.Source != "" {
		dir = filepath.Dir(c.Source)
	} else if c := rs.first(); c != nil && c.Source != "" {
		dir = filepath.Dir(c.Source)
	}
	return &retire.Retirer{Journal: rs.store, Backup: rs, References: gitGrep{dir: dir}, Alerter: rs, Clock: wallClock{}, Poll: rs.every}
}

// track records that the routers' routes are counted, once per key. The
// counters of a server of before several apps, kept by environment, move
// under the first app first.
func (rs *Retirements) track(ctx context.Context, routers map[string]pathRouter) error {
	for key := range routers {
		if rs.tracked[key] {
			continue
		}
		app, env, _ := strings.Cut(key, "/")
		if c := rs.first(); c != nil && c.App == app {
			if err := rs.store.MoveRouteCounters(ctx, env, key); err != nil {
				return fmt.Errorf("move the route counters of %s under %s: %w", env, app, err)
			}
		}
		if err := rs.store.TrackRoutes(ctx, key, time.Now()); err != nil {
			return fmt.Errorf("start counting the routes of %s %s: %w", app, env, err)
		}
		rs.tracked[key] = true
	}
	return nil
}

// start begins counting, answers 410 for the prefixes retired before a
// restart, resumes the watches and writes the counters every interval.
func (rs *Retirements) start(ctx context.Context) error {
	runCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
	rs.mu.Lock()
	rs.ctx, rs.stop = runCtx, stop
	rs.mu.Unlock()
	rs.flushMu.Lock()
	err := rs.track(ctx, rs.routers())
	rs.flushMu.Unlock()
	if err != nil {
		return err
	}
	if err := rs.adopt(ctx); err != nil {
		return err
	}
	if err := rs.applyGone(ctx); err != nil {
		return err
	}
	if err := rs.resume(ctx); err != nil {
		return err
	}
	rs.wg.Add(1)
	go func() {
		defer rs.wg.Done()
		t := time.NewTicker(rs.every)
		defer t.Stop()
		for {
			select {
			case <-runCtx.Done():
				return
			case <-t.C:
				if err := rs.flush(runCtx); err != nil && runCtx.Err() == nil {
					rs.log.Warn("write route counters", "error", err)
				}
			}
		}
	}()
	return nil
}

// adopt gives the route retirements recorded before several apps (with
// no app) to the server's first app, once, on the record: which router
// answers 410 for them no longer depends on which app is first.
func (rs *Retirements) adopt(ctx context.Context) error {
	first := rs.first()
	if first == nil {
		return nil
	}
	all, err := rs.store.ListRetirements(ctx)
	if err != nil {
		return err
	}
	for _, r := range all {
		if r.Kind != retire.KindRoute || r.App != "" {
			continue
		}
		r.App = first.App
		if err := rs.store.Save(ctx, &r, retire.ActorRetire, retire.ActionAdopt,
			fmt.Sprintf("recorded before several apps: the route of %s, the server's first app", first.App)); err != nil {
			return fmt.Errorf("give retirement %d to %s: %w", r.ID, first.App, err)
		}
	}
	return nil
}

// resume watches the retirements in their watch that this server does
// not watch yet: at start, and, on a shared store, those another server
// started (the store's change feed says when).
func (rs *Retirements) resume(ctx context.Context) error {
	watching, err := rs.store.ListRetirements(ctx, retire.StageWatch)
	if err != nil {
		return err
	}
	for _, r := range watching {
		rs.launch(r)
	}
	return nil
}

// close stops the watches and writes the counters a last time. Calls
// after the first, until the next start, do nothing.
func (rs *Retirements) close() {
	rs.mu.Lock()
	stop := rs.stop
	rs.stop = nil
	rs.mu.Unlock()
	if stop == nil {
		return
	}
	stop()
	rs.wg.Wait()
	_ = rs.flush(context.Background())
}

// flush writes what the routers counted since the last flush.
func (rs *Retirements) flush(ctx context.Context) error {
	rs.flushMu.Lock()
	defer rs.flushMu.Unlock()
	routers := rs.routers()
	if err := rs.track(ctx, routers); err != nil {
		return err
	}
	live := map[pathRouter]bool{}
	for key, r := range routers {
		live[r] = true
		now, _ := r.PathStats()
		last := rs.snap[r]
		deltas := map[string]retire.RouteCount{}
		for prefix, c := range now {
			if d := c.Count - last[prefix].Count; d > 0 {
				deltas[prefix] = retire.RouteCount{Count: d, Last: c.Last}
			}
		}
		if err := rs.store.AddRouteUsage(ctx, key, deltas); err != nil {
			return err
		}
		rs.snap[r] = now
	}
	for r := range rs.snap {
		if !live[r] {
			delete(rs.snap, r) // stopped by a reload
		}
	}
	return nil
}

// applyGone sets each router's retired prefixes: those of the
// retirements watching or done.
func (rs *Retirements) applyGone(ctx context.Context) error {
	list, err := rs.store.ListRetirements(ctx, retire.StageWatch, retire.StageDeleted)
	if err != nil {
		return err
	}
	gone := map[string][]string{}
	for _, r := range list {
		if r.Kind == retire.KindRoute {
			key := routeKey(rs.appOf(r), r.Env)
			gone[key] = append(gone[key], r.Subject)
		}
	}
	for key, pr := range rs.routers() {
		pr.SetGone(gone[key])
	}
	return nil
}

// Retire starts retiring a route and returns the retirement as it stands
// after the check, the backup and the disabling; the watch goes on in the
// background.
func (rs *Retirements) Retire(ctx context.Context, req RetireRequest) (retire.Retirement, error) {
	switch req.Kind {
	case retire.KindRoute:
		if err := rs.checkRoute(&req); err != nil {
			return retire.Retirement{}, err
		}
	case retire.KindFlag:
		if rs.flags == nil {
			return retire.Retirement{}, fmt.Errorf("this server serves no flags: %w", rollout.ErrConflict)
		}
		if _, ok := rs.flags.Snapshot().Flag(req.Subject); !ok {
			return retire.Retirement{}, &rollout.FieldError{Field: "subject", Message: fmt.Sprintf("no flag %q", req.Subject)}
		}
		req.App, req.Env = "", "" // the flags are the server's
	default:
		return retire.Retirement{}, &rollout.FieldError{Field: "kind", Message: fmt.Sprintf("%q cannot be retired: use route or flag", req.Kind)}
	}
	if strings.TrimSpace(req.Reason) == "" {
		return retire.Retirement{}, &rollout.FieldError{Field: "reason", Message: "say why it is retired; it goes into the audit log"}
	}
	open, err := rs.store.ListRetirements(ctx, retire.StageWatch)
	if err != nil {
		return retire.Retirement{}, err
	}
	for _, o := range open {
		if o.Kind == req.Kind && rs.appOf(o) == req.App && o.Env == req.Env && o.Subject == strings.TrimSuffix(req.Subject, "/") {
			return retire.Retirement{}, fmt.Errorf("retirement %d of %s is already watching: %w", o.ID, o.Subject, rollout.ErrConflict)
		}
	}
	r := retire.Retirement{Kind: req.Kind, App: req.App, Env: req.Env, Subject: strings.TrimSuffix(req.Subject, "/"), Actor: req.Actor, Reason: req.Reason}
	if c := rs.first(); c != nil && c.Retire != nil {
		r.Cycle, r.Watch = c.Retire.Cycle.D(), c.Retire.Watch.D()
	}
	r, err = rs.retirer(r.App).Start(ctx, r, rs.subject(r))
	if err != nil {
		return r, err
	}
	if r.Stage == retire.StageWatch {
		rs.launch(r)
	}
	return r, nil
}

// checkRoute checks a route retirement's request and fills its default
// app (the only one) and environment.
func (rs *Retirements) checkRoute(req *RetireRequest) error {
	if !strings.HasPrefix(req.Subject, "/") || req.Subject == "/" || strings.ContainsAny(req.Subject, "?# \t") {
		return &rollout.FieldError{Field: "subject", Message: fmt.Sprintf("%q is not a route: give a path prefix such as /api/v1/legacy", req.Subject)}
	}
	names := rs.apps.AppNames()
	if req.App == "" && len(names) == 1 {
		req.App = names[0]
	}
	if _, err := rs.apps.engine(req.App); err != nil {
		return err // names the apps managed
	}
	cfg := rs.apps.Config(req.App)
	if req.Env == "" {
		req.Env = defaultEnv(cfg)
	}
	if _, err := cfg.Environment(req.Env); err != nil {
		return &rollout.FieldError{Field: "env", Message: err.Error()}
	}
	if _, ok := rs.routers()[routeKey(req.App, req.Env)]; !ok {
		return fmt.Errorf("the router of %s runs as its own process, which does not count routes yet; retire it with the router inside the server: %w", req.Env, rollout.ErrConflict)
	}
	return nil
}

// defaultEnv is production when the app has it, else its only
// environment, else "" (which the caller reports).
func defaultEnv(cfg *config.Config) string {
	if cfg.Environments["production"] != nil {
		return "production"
	}
	if len(cfg.Environments) == 1 {
		for name := range cfg.Environments {
			return name
		}
	}
	return ""
}

// Get returns a retirement.
func (rs *Retirements) Get(ctx context.Context, id int64) (retire.Retirement, error) {
	return rs.store.GetRetirement(ctx, id)
}

// Undo stops a retirement that is not over and enables the route again.
func (rs *Retirements) Undo(ctx context.Context, id int64, actor, reason string) (retire.Retirement, error) {
	if strings.TrimSpace(reason) == "" {
		return retire.Retirement{}, &rollout.FieldError{Field: "reason", Message: "say why the retirement is undone"}
	}
	r, err := rs.store.GetRetirement(ctx, id)
	if err != nil {
		return r, err
	}
	r, err = rs.retirer(rs.appOf(r)).Undo(ctx, r, rs.subject(r), actor, reason)
	if errors.Is(err, retire.ErrFinal) {
		return r, fmt.Errorf("%w: %w", err, rollout.ErrConflict)
	}
	return r, err
}

// launch watches a retirement in the background, once.
func (rs *Retirements) launch(r retire.Retirement) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if rs.stop == nil {
		return // not started, or stopped: on a shared store, the leader watches it
	}
	ctx := rs.ctx
	if rs.watches[r.ID] {
		return
	}
	rs.watches[r.ID] = true
	rs.wg.Add(1)
	go func() {
		defer rs.wg.Done()
		defer func() { rs.mu.Lock(); delete(rs.watches, r.ID); rs.mu.Unlock() }()
		got, err := rs.retirer(rs.appOf(r)).Watch(ctx, r, rs.subject(r))
		if err != nil && ctx.Err() == nil {
			rs.log.Error("watch retirement", "retirement", r.ID, "error", err)
			return
		}
		rs.log.Info("retirement ended", "retirement", got.ID, "stage", got.Stage, "subject", got.Subject)
	}()
}

// subject is the retire.Subject of a route retirement.
func (rs *Retirements) subject(r retire.Retirement) retire.Subject {
	if r.Kind == retire.KindFlag {
		return &flagSubject{rs: rs, key: r.Subject, reason: r.Reason}
	}
	return &routeSubject{rs: rs, app: rs.appOf(r), env: r.Env, prefix: r.Subject, id: r.ID}
}

// flagSubject is a flag, as a retirement acts on it: its evaluations are
// the flags service's counters (stored and not yet flushed), disabling is
// the kill switch (every client falls back to its code default, the off
// variant), and deleting deletes the flag.
type flagSubject struct {
	rs     *Retirements
	key    string
	reason string
}

// Usage counts every evaluation of the flag: the flags service keeps no
// per-day counts, so all of them count as recent when the last one is.
func (s *flagSubject) Usage(ctx context.Context, since time.Time) (retire.Usage, error) {
	all, err := s.rs.flags.Usage(ctx)
	if err != nil {
		return retire.Usage{}, err
	}
	u := all[s.key]
	out := retire.Usage{Total: u.Total(), Last: u.Last}
	if u.Last.After(since) {
		out.Since = out.Total
	}
	if f, ok := s.rs.flags.Snapshot().Flag(s.key); ok {
		out.TrackedSince = f.MetaTime(flags.MetaCreated)
	}
	if out.TrackedSince.IsZero() {
		// A flag imported without its creation time: counted since the
		// server first counted anything.
		out.TrackedSince, err = s.rs.store.TrackedSince(ctx)
	}
	return out, err
}

func (s *flagSubject) who() flags.Who {
	return flags.Who{Actor: retire.ActorRetire, Reason: "retire: " + s.reason}
}

func (s *flagSubject) Disable(ctx context.Context) error {
	f, ok := s.rs.flags.Snapshot().Flag(s.key)
	if ok && f.State == flags.Disabled {
		return nil
	}
	_, err := s.rs.flags.Disable(ctx, s.key, s.who())
	return err
}

func (s *flagSubject) Enable(ctx context.Context) error {
	_, err := s.rs.flags.Enable(ctx, s.key, s.who())
	return err
}

func (s *flagSubject) Delete(ctx context.Context) error {
	err := s.rs.flags.Delete(ctx, s.key, true, s.who())
	if errors.Is(err, flags.ErrNotFound) {
		return nil
	}
	return err
}

func (s *flagSubject) Terms() []string { return []string{s.key} }

// routeSubject is a route of the builtin router, as a retirement acts on
// it.
type routeSubject struct {
	rs     *Retirements
	app    string
	env    string
	prefix string
	id     int64
}

// Usage writes the routers' counters, then reads the prefix's traffic
// from the store: for a route deeper than two segments, the traffic of
// its two-segment ancestor, which includes its own.
func (s *routeSubject) Usage(ctx context.Context, since time.Time) (retire.Usage, error) {
	if err := s.rs.flush(ctx); err != nil {
		return retire.Usage{}, err
	}
	return s.rs.store.RouteUsage(ctx, routeKey(s.app, s.env), proxy.CountedPrefix(s.prefix), since)
}

// Disable, Enable and Delete re-apply the retired prefixes from the
// store, where the retirement's stage was saved before: the router then
// answers 410 for a route watching or deleted, and serves it otherwise.
// A deleted route keeps answering 410; removing its code is the team's
// part, and the references listed say where.
func (s *routeSubject) Disable(ctx context.Context) error { return s.rs.applyGone(ctx) }
func (s *routeSubject) Enable(ctx context.Context) error  { return s.reapply(ctx) }
func (s *routeSubject) Delete(ctx context.Context) error  { return s.rs.applyGone(ctx) }
func (s *routeSubject) Terms() []string                   { return []string{s.prefix} }

// reapply sets the routers' prefixes without this one: Enable runs before
// the stage that says so is saved.
func (s *routeSubject) reapply(ctx context.Context) error {
	list, err := s.rs.store.ListRetirements(ctx, retire.StageWatch, retire.StageDeleted)
	if err != nil {
		return err
	}
	var gone []string
	for _, r := range list {
		if r.Kind == retire.KindRoute && s.rs.appOf(r) == s.app && r.Env == s.env && r.ID != s.id {
			gone = append(gone, r.Subject)
		}
	}
	if pr := s.rs.routers()[routeKey(s.app, s.env)]; pr != nil {
		pr.SetGone(gone)
	}
	return nil
}

// Run takes the backup of a retirement: the config of its app (the first
// app's for a flag), the app's release history and the audit log written
// to a directory of the data dir, then the configured backup command (the
// server's: the first app's retire section) with SHIPGATE_BACKUP_DIR set
// to it.
func (rs *Retirements) Run(ctx context.Context, r retire.Retirement) (string, error) {
	dir := filepath.Join(rs.dataDir, "backups", fmt.Sprintf("retire-%d-%s", r.ID, time.Now().UTC().Format("20060102T150405Z")))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("make the backup directory: %w", err)
	}
	first := rs.first()
	cfg := rs.apps.Config(rs.appOf(r))
	if cfg == nil {
		cfg = first
	}
	if cfg == nil {
		return "", fmt.Errorf("back up: app %q is not managed by this server: %w", r.App, rollout.ErrNotFound)
	}
	if cfg.Source != "" {
		b, err := os.ReadFile(cfg.Source)
		if err != nil {
			return "", fmt.Errorf("back up the config: %w", err)
		}
		if err := os.WriteFile(filepath.Join(dir, "shipgate.yaml"), b, 0o600); err != nil {
			return "", fmt.Errorf("back up the config: %w", err)
		}
	}
	rollouts, err := rs.store.ListRollouts(ctx, cfg.App, "", 100000)
	if err != nil {
		return "", fmt.Errorf("back up the release history: %w", err)
	}
	events, err := rs.store.ListAudit(ctx, audit.Filter{Limit: 1 << 30})
	if err != nil {
		return "", fmt.Errorf("back up the audit log: %w", err)
	}
	for name, v := range map[string]any{"rollouts.json": rollouts, "audit.json": events} {
		b, err := json.MarshalIndent(v, "", "  ")
		if err != nil {
			return "", err
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			return "", fmt.Errorf("write %s: %w", name, err)
		}
	}
	c := first.Retire
	if c == nil || len(c.BackupCommand) == 0 {
		return dir, nil
	}
	cmd := exec.CommandContext(ctx, c.BackupCommand[0], c.BackupCommand[1:]...) //nolint:gosec // the command the config names
	cmd.Dir = filepath.Dir(first.Source)
	cmd.Env = append(os.Environ(), "SHIPGATE_BACKUP_DIR="+dir)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return dir, fmt.Errorf("backup command %s: %w: %s", strings.Join(c.BackupCommand, " "), err, lastLine(out.String()))
	}
	return dir, nil
}

// Alert logs that a retired route or flag was used; the audit event of the
// re-enabling is the record.
func (rs *Retirements) Alert(_ context.Context, r retire.Retirement, message string) error {
	rs.log.Warn("retired subject used: enabled again", "retirement", r.ID, "kind", r.Kind, "env", r.Env, "subject", r.Subject, "detail", message)
	return nil
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		s = s[i+1:]
	}
	if len(s) > 300 {
		s = s[:300]
	}
	return s
}

// gitGrep finds the references to a subject left in a git work tree.
type gitGrep struct{ dir string }

// Find runs git grep for each term and returns file:line: text.
func (g gitGrep) Find(ctx context.Context, terms []string) ([]string, error) {
	var out []string
	for _, term := range terms {
		cmd := exec.CommandContext(ctx, "git", "grep", "-n", "-I", "-F", "-e", term) //nolint:gosec // fixed program, the term as data
		cmd.Dir = g.dir
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		var ee *exec.ExitError
		switch {
		case errors.As(err, &ee) && ee.ExitCode() == 1:
			continue // nothing found
		case err != nil:
			return out, fmt.Errorf("git grep in %s: %w: %s", g.dir, err, lastLine(stderr.String()))
		}
		for _, line := range strings.Split(strings.TrimSpace(stdout.String()), "\n") {
			if line != "" {
				out = append(out, line)
			}
		}
	}
	return out, nil
}

// retireAPI serves the retirement routes of the API.
type retireAPI struct{ rs *Retirements }

func (a retireAPI) Retire(ctx context.Context, req api.RetireRequest) (retire.Retirement, error) {
	return a.rs.Retire(ctx, RetireRequest(req))
}

func (a retireAPI) Get(ctx context.Context, id int64) (retire.Retirement, error) {
	return a.rs.Get(ctx, id)
}

func (a retireAPI) Undo(ctx context.Context, id int64, actor, reason string) (retire.Retirement, error) {
	return a.rs.Undo(ctx, id, actor, reason)
}
