package server

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/shipgate/shipgate/internal/api"
	"github.com/shipgate/shipgate/internal/audit"
	"github.com/shipgate/shipgate/internal/config"
	"github.com/shipgate/shipgate/internal/postgres"
	"github.com/shipgate/shipgate/internal/rollout"
)

// ApplyResult says what a reload of the config changed.
type ApplyResult = api.ApplyResult

// Reload reads the config again from the path the server was started
// with (SIGHUP does this) and applies it like Apply.
func (cp *ControlPlane) Reload(ctx context.Context, actor, reason string) (ApplyResult, error) {
	if cp.configPath == "" {
		return ApplyResult{}, fmt.Errorf("this server was started without a config path: use shipgate apply -f: %w", rollout.ErrConflict)
	}
	files, err := readAppFiles(cp.configPath)
	var cfgs []*config.Config
	if err == nil {
		cfgs, err = config.ParseFiles(files)
	}
	if err != nil {
		cp.auditApply(ctx, actor, reason, cp.configPath, ApplyResult{}, err)
		return ApplyResult{}, err
	}
	return cp.apply(ctx, cfgs, files, actor, reason, cp.configPath, nil)
}

// Apply parses app files sent by shipgate apply and makes them the apps
// the server manages, like Reload.
func (cp *ControlPlane) Apply(ctx context.Context, files []config.File, actor, reason string) (ApplyResult, error) {
	names := make([]string, len(files))
	for i, f := range files {
		names[i] = f.Name
	}
	source := strings.Join(names, ", ")
	cfgs, err := config.ParseFiles(files)
	if err != nil {
		cp.auditApply(ctx, actor, reason, source, ApplyResult{}, err)
		return ApplyResult{}, err
	}
	return cp.apply(ctx, cfgs, files, actor, reason, source, nil)
}

// apply makes cfgs the apps the server manages, all or nothing:
//
//   - an app whose config is unchanged is left alone;
//   - an added app gets its routers started and its engine started;
//   - a changed app gets a new engine on the new config; its routers are
//     kept where their addresses did not change. Its rollout in progress
//     is resumed by the new engine from its last persisted step, with the
//     spec frozen into it at deploy (as after a server restart);
//   - a removed app has its routers and instances stopped.
//
// Removing an app, or an environment, that has a rollout in progress is
// refused, and so is a config with any problem: then nothing changes.
// Every apply, refused or not, is audited (config.apply).
//
// On a store several servers share (cp.ha), the apply, once everything
// it needs started, records files as the store's next config revision
// before it swaps anything: a revision recorded meanwhile by another
// server refuses it, and every other server then applies the revision
// (followConfig, which passes it as from: not recorded again nor
// audited again). Only the leader starts the new engines.
func (cp *ControlPlane) apply(ctx context.Context, cfgs []*config.Config, files []config.File, actor, reason, source string, from *postgres.ConfigRevision) (res ApplyResult, err error) {
	cp.reloadMu.Lock()
	defer cp.reloadMu.Unlock()
	if from == nil {
		defer func() { cp.auditApply(ctx, actor, reason, source, res, err) }()
	} else if running, _, _ := cp.revision.get(); from.ID <= running {
		return ApplyResult{Revision: running}, nil // this server recorded it, or applied it already
	}
	res = ApplyResult{Added: []string{}, Removed: []string{}, Changed: []string{}, Unchanged: []string{}}
	if cp.ha != nil && from == nil && cp.revision.same(files) {
		// The files of the revision every server runs, under other
		// names maybe (a SIGHUP of the file that was applied): no new
		// revision, and no engine swapped for a file name.
		res.Apps = cp.Apps.AppNames()
		res.Unchanged = res.Apps
		res.Revision, _, _ = cp.revision.get()
		return res, nil
	}

	old := map[string]*appPlane{}
	var prev []*config.Config
	for _, p := range cp.Apps.planes() {
		old[p.cfg.App] = p
		prev = append(prev, p.cfg)
	}
	if err := checkNotifySecrets(cfgs); err != nil {
		return ApplyResult{}, err
	}
	next := map[string]*config.Config{}
	for _, c := range cfgs {
		next[c.App] = c
	}
	active, err := cp.Store.ActiveRollouts(ctx)
	if err != nil {
		return ApplyResult{}, fmt.Errorf("list active rollouts: %w", err)
	}
	for _, r := range active {
		p := old[r.App]
		if p == nil {
			continue
		}
		c := next[r.App]
		switch {
		case c == nil:
			return ApplyResult{}, fmt.Errorf("app %q is not in the new config but its rollout %d of %s runs in %s: let it finish or roll it back, then apply again: %w",
				r.App, r.ID, r.Version, r.Env, rollout.ErrConflict)
		case c.Environments[r.Env] == nil:
			return ApplyResult{}, fmt.Errorf("environment %q of app %q is not in the new config (%s) but its rollout %d of %s runs there: let it finish or roll it back, then apply again: %w",
				r.Env, r.App, c.Source, r.ID, r.Version, rollout.ErrConflict)
		}
		if changed := readLive(p.cfg, c, r.Env); len(changed) > 0 {
			return ApplyResult{}, fmt.Errorf("app %q: %s would change under its rollout %d of %s in %s, which reads them as it goes: apply again once it has ended: %w",
				r.App, strings.Join(changed, ", "), r.ID, r.Version, r.Env, rollout.ErrConflict)
		}
	}

	// Build what changes, starting the new routers; nothing is swapped
	// until everything started.
	planes := make([]*appPlane, 0, len(cfgs))
	var built []*appPlane
	for _, c := range cfgs {
		p := old[c.App]
		switch {
		case p != nil && reflect.DeepEqual(p.cfg, c):
			planes = append(planes, p)
			res.Unchanged = append(res.Unchanged, c.App)
			continue
		case p != nil:
			res.Changed = append(res.Changed, c.App)
		default:
			res.Added = append(res.Added, c.App)
		}
		var reuse map[string]Router
		var reuseCfg *config.Config
		if p != nil {
			reuse, reuseCfg = p.routers, p.cfg
		}
		np, err := cp.deps.startApp(ctx, c, cfgs, reuse, reuseCfg)
		if err != nil {
			for _, b := range built {
				b.stopStarted(context.WithoutCancel(ctx), cp.log)
			}
			return ApplyResult{}, err
		}
		built = append(built, np)
		planes = append(planes, np)
	}
	for name := range old {
		if next[name] == nil {
			res.Removed = append(res.Removed, name)
		}
	}
	slices.Sort(res.Removed)

	if pg, ok := cp.Store.(*postgres.Store); ok && cp.ha != nil {
		running, _, _ := cp.revision.get()
		res.Revision = running
		switch {
		case from != nil:
			res.Revision = from.ID
		case len(res.Added)+len(res.Changed)+len(res.Removed) > 0:
			rev, err := pg.AddConfigRevision(ctx, running, postgres.ConfigRevision{Files: files, Source: source, Actor: actor, Reason: reason, Server: cp.ha.commands.Server})
			if err != nil {
				for _, b := range built {
					b.stopStarted(context.WithoutCancel(ctx), cp.log)
				}
				return ApplyResult{}, err
			}
			res.Revision = rev.ID
		}
	}

	// Swap: the old engines of changed apps stop driving (their rollouts
	// are persisted at every step), the new ones take over. No command
	// reaches an engine meanwhile: one sent to the old engine after its
	// close would be lost to the new one, which lists the active
	// rollouts as it starts.
	cp.Apps.calls.Lock()
	for _, name := range res.Changed {
		old[name].engine.Close()
	}
	var errs []error
	for _, np := range built {
		if cp.ha != nil && !cp.ha.leading {
			break // a follower's engines wait for it to lead (haPlane.lead)
		}
		if err := np.engine.Start(ctx); err != nil {
			errs = append(errs, fmt.Errorf("start engine of %s: %w", np.cfg.App, err))
		}
	}
	cp.Apps.set(planes)
	cp.Apps.calls.Unlock()
	for _, name := range res.Changed {
		kept := map[Router]bool{}
		for _, p := range planes {
			for _, r := range p.routers {
				kept[r] = true
			}
		}
		for env, r := range old[name].routers {
			if !kept[r] {
				if err := stopRouter(ctx, r); err != nil {
					errs = append(errs, fmt.Errorf("stop the old router of %s %s: %w", name, env, err))
				}
			}
		}
	}
	for _, name := range res.Removed {
		errs = append(errs, cp.removeApp(ctx, old[name]))
	}
	if err := cp.restartNotifier(ctx, prev, cfgs); err != nil {
		errs = append(errs, err)
	}
	if cp.Retirements != nil && len(built) > 0 {
		// The new routers answer 410 for their app's retired routes too.
		errs = append(errs, cp.Retirements.applyGone(ctx))
	}
	res.Apps = cp.Apps.AppNames()
	if running, _, _ := cp.revision.get(); res.Revision > running {
		cp.revision.set(res.Revision, files) // recorded here, or from (whose files these are)
	}
	for _, name := range res.Added {
		p := planes[slices.IndexFunc(planes, func(p *appPlane) bool { return p.cfg.App == name })]
		for _, env := range sortedEnvs(p.cfg) {
			if r := p.routers[env]; r != nil {
				cp.log.Info("app added", "app", name, "env", env, "router", r.Addr())
			} else {
				cp.log.Info("app added", "app", name, "env", env, "kubernetes", p.cfg.Environments[env].Kubernetes.Namespace)
			}
		}
	}
	for _, e := range errs {
		if e != nil {
			cp.log.Error("config applied, with a problem", "error", e)
			res.Warnings = append(res.Warnings, e.Error())
		}
	}
	return res, nil
}

// removeApp stops a removed app: its engine, its routers (router
// processes too) and its instances. It had no rollout in progress.
func (cp *ControlPlane) removeApp(ctx context.Context, p *appPlane) error {
	p.engine.Close()
	var errs []error
	for env, r := range p.routers {
		if err := stopRouter(ctx, r); err != nil {
			errs = append(errs, fmt.Errorf("stop the router of %s %s: %w", p.cfg.App, env, err))
		}
	}
	var insts []rollout.Instance
	for env := range p.cfg.Environments {
		if st, err := cp.Store.GetEnvState(ctx, p.cfg.App, env); err == nil {
			insts = append(insts, st.Instances...)
		}
	}
	if listed, err := cp.Runtime.List(ctx); err == nil {
		for _, inst := range listed {
			if inst.App == p.cfg.App && !slices.ContainsFunc(insts, func(i rollout.Instance) bool { return i.ID == inst.ID }) {
				insts = append(insts, inst)
			}
		}
	}
	if len(insts) == 0 {
		return errors.Join(errs...)
	}
	if err := cp.Runtime.Stop(ctx, insts); err != nil {
		errs = append(errs, fmt.Errorf("stop the instances of %s: %w", p.cfg.App, err))
	}
	return errors.Join(errs...)
}

// readLive returns the fields, changed from old to c, that a rollout in
// env still reads from the live config rather than from the spec frozen
// into it at deploy (internal/plan): the variables' values, which are
// not stored with the rollout (they may be secrets). Changing them under
// a rollout would start its later instances unlike its first ones, so a
// reload that does is refused until the rollout ends. The instance
// template, the instance count, the migrations and the steps are frozen
// into the rollout: a reload may change them, for the next deploy.
func readLive(old, c *config.Config, env string) []string {
	var out []string
	if !reflect.DeepEqual(old.Vars, c.Vars) {
		out = append(out, "vars")
	}
	oe, ne := old.Environments[env], c.Environments[env]
	if !reflect.DeepEqual(oe.Vars, ne.Vars) {
		out = append(out, "environments."+env+".vars")
	}
	return out
}

// configService serves POST /v1/config: a config problem is the
// client's mistake (400), listing every problem with file:line.
type configService struct{ cp *ControlPlane }

func (s configService) ApplyConfig(ctx context.Context, req api.ApplyRequest, actor string) (ApplyResult, error) {
	files := make([]config.File, len(req.Files))
	for i, f := range req.Files {
		files[i] = config.File{Name: f.Name, Data: []byte(f.Content)}
	}
	res, err := s.cp.Apply(ctx, files, actor, req.Reason)
	if cerr := (*config.Error)(nil); errors.As(err, &cerr) {
		return res, fmt.Errorf("%w: %w", rollout.ErrInvalid, err)
	}
	return res, err
}

// auditApply records an apply, done or refused, in the audit log.
func (cp *ControlPlane) auditApply(ctx context.Context, actor, reason, source string, res ApplyResult, err error) {
	ev := audit.Event{Time: time.Now().UTC(), Actor: actor, Action: audit.ActionConfigApply, Subject: "config",
		Reason: reason, Outcome: "ok", Data: map[string]string{"source": source}}
	if err != nil {
		ev.Outcome = "refused"
		msg := err.Error()
		if len(msg) > 2000 {
			msg = msg[:2000] + "…"
		}
		ev.Data["error"] = msg
	}
	for k, v := range map[string][]string{"added": res.Added, "removed": res.Removed, "changed": res.Changed} {
		if len(v) > 0 {
			ev.Data[k] = strings.Join(v, ",")
		}
	}
	ev.Data["apps"] = strconv.Itoa(len(res.Apps))
	if res.Revision > 0 {
		ev.Data["revision"] = strconv.FormatInt(res.Revision, 10)
	}
	if cerr := cp.Store.Commit(context.WithoutCancel(ctx), rollout.Change{Audit: []audit.Event{ev}}); cerr != nil {
		cp.log.Error("audit a config apply", "error", cerr)
	}
}
