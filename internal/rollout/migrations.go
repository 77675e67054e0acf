package rollout

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/shipgate/shipgate/internal/audit"
)

// openMigrator opens the migrations a release brings, against the database
// of a stage, with the release's variables substituted in both.
func (e *deps) openMigrator(ctx context.Context, st *Spec, rel Release) (Migrator, error) {
	m := st.Migrations
	if m == nil {
		return nil, errors.New("the config declares no migrations")
	}
	if e.migrations == nil {
		return nil, errors.New("the config declares migrations but this server has no migration runner")
	}
	// Variables are never frozen into a rollout (they may be secrets):
	// st has them from the live config, rel its own.
	vars := releaseVars(st, rel)
	dir, err := Expand(m.Dir, vars)
	if err != nil {
		return nil, &FieldError{Field: "migrations.dir", Message: err.Error()}
	}
	db, err := Expand(m.Database, vars)
	if err != nil {
		return nil, &FieldError{Field: "migrations.database", Message: err.Error()}
	}
	return e.migrations.Open(ctx, st.Path(dir), db)
}

// checkMigrations is the migration gate: a release whose migrations cannot
// all be undone does not start. It is never skipped, not even by a hotfix.
func (e *Engine) checkMigrations(ctx context.Context, st *Spec, rel Release) error {
	if st.Migrations == nil {
		return nil
	}
	m, err := e.openMigrator(ctx, st, rel)
	if err != nil {
		return &GateError{Gate: "migrations", Message: err.Error()}
	}
	defer m.Close()
	problems, err := m.Verify(ctx, st.Path(st.Migrations.Seed))
	if err != nil {
		return &GateError{Gate: "migrations", Message: "verify: " + err.Error()}
	}
	if len(problems) > 0 {
		return &GateError{Gate: "migrations", Message: fmt.Sprintf("%d problem(s) on a scratch database: %s", len(problems), strings.Join(problems, "; "))}
	}
	return irreversibleGate(st, m.Irreversible())
}

// irreversibleGate lets a release whose migrations include some marked
// irreversible deploy only behind an approval: a rollback would not undo
// them, so a person decides, and the approval is audited with who and
// when. A hotfix whose rules skip the approval skips it here too, and
// that bypass is audited.
func irreversibleGate(st *Spec, irreversible []string) error {
	if len(irreversible) == 0 || st.Gates.Approval != nil {
		return nil
	}
	return &GateError{Gate: "migrations", Message: fmt.Sprintf("irreversible on purpose: %s; a rollback cannot undo it, so this stage needs an approval before traffic: add gates: {approval: true} to environment %s and approve the rollout",
		strings.Join(irreversible, ", "), st.Name)}
}

// stepMigrate applies the release's pending migrations before it gets any
// traffic, recording each applied version in the rollout. A failure ends
// the rollout failed, with the database as the last successful migration
// left it and the status saying where it stopped.
func (e *reconciler) stepMigrate(ctx context.Context, st *Spec, r *Rollout) error {
	rel, err := e.store.GetRelease(ctx, r.App, r.Version)
	if err != nil {
		return err
	}
	m, err := e.openMigrator(ctx, st, rel)
	if err != nil {
		return err
	}
	defer m.Close()
	if len(r.Migrating) == 0 {
		// The intent first: a crash between Up and the commit after it
		// must not lose which versions this rollout applied (its
		// rollback reverts exactly those).
		pending, err := m.Pending(ctx)
		if err != nil {
			return fmt.Errorf("pending migrations: %w", err)
		}
		if len(pending) == 0 {
			return nil
		}
		r.Migrating = pending
		if err := e.save(ctx, r, nil); err != nil {
			return err
		}
	}
	applied, upErr := m.Up(ctx)
	if still, err := m.Pending(ctx); err == nil {
		applied = nil
		for _, v := range r.Migrating {
			if !slices.Contains(still, v) && !slices.Contains(r.Migrated, v) {
				applied = append(applied, v)
			}
		}
	}
	r.Migrated = append(r.Migrated, applied...)
	var events []audit.Event
	if len(applied) > 0 {
		ev := e.event(r, ActorEngine, audit.ActionMigrateUp, fmt.Sprintf("applied %d migration(s)", len(applied)))
		ev.Data["versions"] = versions(applied)
		events = append(events, ev)
	}
	if upErr == nil {
		return e.save(ctx, r, nil, events...)
	}
	if ctx.Err() != nil {
		_ = e.save(ctx, r, nil, events...)
		return ctx.Err()
	}
	status, err := m.Status(ctx)
	if err != nil {
		status = "status unknown: " + err.Error()
	}
	r.MigrationFailed, r.MigrationStatus = true, status
	ev := e.event(r, ActorEngine, audit.ActionMigrateFailed, upErr.Error())
	ev.Outcome = "failed"
	ev.Data["status"] = status
	events = append(events, ev)
	if err := e.save(ctx, r, nil, events...); err != nil {
		return err
	}
	return failf("migration failed: %v; the database is as the last successful migration left it (%s); fix the migration and deploy again, or revert with shipgate migrate down", upErr, status)
}

// revertMigrations runs the downs of exactly the migrations r applied,
// newest first, after traffic is back on the old release.
func (e *reconciler) revertMigrations(ctx context.Context, r *Rollout) error {
	st := e.rolloutSpecOrLive(ctx, r)
	if len(r.Migrated) == 0 || r.MigrationFailed || st.Migrations == nil {
		return nil
	}
	rel, err := e.store.GetRelease(ctx, r.App, r.Version)
	if err != nil {
		return err
	}
	m, err := e.openMigrator(ctx, st, rel)
	if err != nil {
		return err
	}
	defer m.Close()
	downs := make([]int64, len(r.Migrated))
	for i, v := range r.Migrated {
		downs[len(downs)-1-i] = v
	}
	ev := e.event(r, ActorEngine, audit.ActionMigrateDown, fmt.Sprintf("reverted %d migration(s) applied by this rollout", len(downs)))
	ev.Data["versions"] = versions(downs)
	if err := m.Down(ctx, r.Migrated); err != nil {
		status, _ := m.Status(ctx)
		r.MigrationStatus = status
		ev.Outcome, ev.Reason = "failed", err.Error()
		ev.Data["status"] = status
		_ = e.save(ctx, r, nil, ev)
		return fmt.Errorf("revert migrations %s: %w", versions(downs), err)
	}
	r.Migrated = nil
	return e.save(ctx, r, nil, ev)
}

func versions(vs []int64) string {
	s := make([]string, len(vs))
	for i, v := range vs {
		s[i] = strconv.FormatInt(v, 10)
	}
	return strings.Join(s, ",")
}
