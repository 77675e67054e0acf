package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"strings"
	"time"

	"github.com/shipgate/shipgate/internal/audit"
	"github.com/shipgate/shipgate/internal/rollout"
)

// defaultRolloutLimit is the page size of ListRollouts when the caller
// gives none.
const defaultRolloutLimit = 50

// PutRelease records a release. Recording the same release again (same
// commit and vars) keeps the first CreatedAt and merges the check results
// given into the recorded ones (a CI job reports checks as they finish); a
// release with the same app and version but another commit, other vars or
// another image is an error wrapping rollout.ErrConflict. A zero CreatedAt is stored as
// now.
func (s *Store) PutRelease(ctx context.Context, r rollout.Release) error {
	vars, err := marshalVars(r.Vars)
	if err != nil {
		return fmt.Errorf("put release %s %s: %w", r.App, r.Version, err)
	}
	err = s.inTx(ctx, func(tx *sql.Tx) error { return s.putRelease(ctx, tx, r, vars) })
	if err != nil {
		return fmt.Errorf("put release %s %s: %w", r.App, r.Version, err)
	}
	return nil
}

// putRelease is PutRelease inside tx, with the vars already encoded.
func (s *Store) putRelease(ctx context.Context, tx *sql.Tx, r rollout.Release, vars string) error {
	checks, err := marshalChecks(r.Checks)
	if err != nil {
		return err
	}
	res, err := tx.ExecContext(ctx, `
INSERT INTO releases (app, version, commit_sha, vars, created_at, commit_time, checks, image) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (app, version) DO NOTHING`,
		r.App, r.Version, r.Commit, vars, formatTime(s.orNow(r.CreatedAt)), formatOptionalTime(r.CommitTime), checks, r.Image)
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil || n == 1 {
		return err
	}
	old, err := getRelease(ctx, tx, r.App, r.Version)
	if err != nil {
		return err
	}
	switch {
	case old.Commit != r.Commit:
		return fmt.Errorf("%w: version exists with commit %q, not %q; give the new build a new version",
			rollout.ErrConflict, old.Commit, r.Commit)
	case !maps.Equal(old.Vars, r.Vars):
		return fmt.Errorf("%w: version exists with other vars; give the new build a new version",
			rollout.ErrConflict)
	case old.Image != r.Image:
		return fmt.Errorf("%w: version exists with the image %q, not %q; give the new build a new version",
			rollout.ErrConflict, old.Image, r.Image)
	}
	if len(r.Checks) == 0 && (r.CommitTime.IsZero() || !old.CommitTime.IsZero()) {
		return nil
	}
	merged := maps.Clone(old.Checks)
	if merged == nil {
		merged = map[string]rollout.CheckState{}
	}
	maps.Copy(merged, r.Checks)
	if checks, err = marshalChecks(merged); err != nil {
		return err
	}
	commitTime := old.CommitTime
	if commitTime.IsZero() {
		commitTime = r.CommitTime
	}
	_, err = tx.ExecContext(ctx, `UPDATE releases SET checks = ?, commit_time = ? WHERE app = ? AND version = ?`,
		checks, formatOptionalTime(commitTime), r.App, r.Version)
	return err
}

func marshalChecks(checks map[string]rollout.CheckState) (string, error) {
	if len(checks) == 0 {
		return "{}", nil
	}
	b, err := json.Marshal(checks)
	if err != nil {
		return "", fmt.Errorf("encode checks: %w", err)
	}
	return string(b), nil
}

func formatOptionalTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return formatTime(t)
}

// GetRelease returns a release or an error wrapping rollout.ErrNotFound.
func (s *Store) GetRelease(ctx context.Context, app, version string) (rollout.Release, error) {
	r, err := getRelease(ctx, s.read, app, version)
	if err != nil {
		return rollout.Release{}, fmt.Errorf("get release %s %s: %w", app, version, err)
	}
	return r, nil
}

func getRelease(ctx context.Context, q querier, app, version string) (rollout.Release, error) {
	r := rollout.Release{App: app, Version: version}
	var vars, created, commitTime, checks string
	err := q.QueryRowContext(ctx, `SELECT commit_sha, vars, created_at, commit_time, checks, image FROM releases WHERE app = ? AND version = ?`,
		app, version).Scan(&r.Commit, &vars, &created, &commitTime, &checks, &r.Image)
	if errors.Is(err, sql.ErrNoRows) {
		return rollout.Release{}, fmt.Errorf("release: %w", rollout.ErrNotFound)
	}
	if err != nil {
		return rollout.Release{}, err
	}
	if err := json.Unmarshal([]byte(vars), &r.Vars); err != nil {
		return rollout.Release{}, fmt.Errorf("decode vars: %w", err)
	}
	if len(r.Vars) == 0 {
		r.Vars = nil
	}
	if r.CreatedAt, err = parseTime(created); err != nil {
		return rollout.Release{}, err
	}
	if commitTime != "" {
		if r.CommitTime, err = parseTime(commitTime); err != nil {
			return rollout.Release{}, err
		}
	}
	if err := json.Unmarshal([]byte(checks), &r.Checks); err != nil {
		return rollout.Release{}, fmt.Errorf("decode checks: %w", err)
	}
	if len(r.Checks) == 0 {
		r.Checks = nil
	}
	return r, nil
}

// marshalVars encodes vars as a JSON object, "{}" when there are none.
func marshalVars(vars map[string]string) (string, error) {
	if len(vars) == 0 {
		return "{}", nil
	}
	b, err := json.Marshal(vars)
	if err != nil {
		return "", fmt.Errorf("encode vars: %w", err)
	}
	return string(b), nil
}

// Commit writes everything in c in one transaction: the rollout (inserted
// when its ID is 0, updated otherwise), the environment state, and the
// audit events appended to the chain. If anything fails nothing is
// written, c is left as it was, and the error wraps rollout.ErrNotFound
// when the rollout to update does not exist.
//
// On success Commit writes back what the store assigned: the new rollout's
// ID, zero CreatedAt and UpdatedAt of the rollout and the environment
// state (set to now), and each event's Seq, Time (now when zero; always in
// UTC), PrevHash and Hash. An event without Actor or Action is rejected.
func (s *Store) Commit(ctx context.Context, c rollout.Change) error {
	if c.Release == nil && c.Rollout == nil && c.Env == nil && len(c.Audit) == 0 {
		return nil
	}
	var (
		ro     rollout.Rollout
		env    rollout.EnvState
		events = make([]audit.Event, len(c.Audit))
	)
	if c.Rollout != nil {
		ro = *c.Rollout
		now := s.now().UTC()
		if ro.CreatedAt.IsZero() {
			ro.CreatedAt = now
		}
		if ro.UpdatedAt.IsZero() {
			ro.UpdatedAt = now
		}
	}
	if c.Env != nil {
		env = *c.Env
		env.UpdatedAt = s.orNow(env.UpdatedAt)
	}
	copy(events, c.Audit)

	var relVars string
	if c.Release != nil {
		v, err := marshalVars(c.Release.Vars)
		if err != nil {
			return fmt.Errorf("commit: %w", err)
		}
		relVars = v
	}
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		if c.Release != nil {
			if err := s.putRelease(ctx, tx, *c.Release, relVars); err != nil {
				return fmt.Errorf("put release %s %s: %w", c.Release.App, c.Release.Version, err)
			}
		}
		if c.Rollout != nil {
			if err := putRollout(ctx, tx, &ro); err != nil {
				return err
			}
		}
		if c.Env != nil {
			if err := putEnvState(ctx, tx, env); err != nil {
				return err
			}
		}
		return s.appendAudit(ctx, tx, events)
	})
	if err != nil {
		return fmt.Errorf("commit: %w", err)
	}

	if c.Rollout != nil {
		*c.Rollout = ro
	}
	if c.Env != nil {
		*c.Env = env
	}
	copy(c.Audit, events)
	return nil
}

// putRollout inserts r when its ID is 0, setting r.ID, and updates it
// otherwise.
func putRollout(ctx context.Context, tx *sql.Tx, r *rollout.Rollout) error {
	if r.ID == 0 {
		// The row is inserted first to learn its ID, which the stored
		// document then carries too.
		res, err := tx.ExecContext(ctx, `
INSERT INTO rollouts (app, env, phase, created_at, updated_at, doc) VALUES (?, ?, ?, ?, ?, '{}')`,
			r.App, r.Env, string(r.Phase), formatTime(r.CreatedAt), formatTime(r.UpdatedAt))
		if err != nil {
			return fmt.Errorf("insert rollout: %w", err)
		}
		if r.ID, err = res.LastInsertId(); err != nil {
			return fmt.Errorf("insert rollout: %w", err)
		}
	}
	doc, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("encode rollout %d: %w", r.ID, err)
	}
	res, err := tx.ExecContext(ctx, `
UPDATE rollouts SET app = ?, env = ?, phase = ?, created_at = ?, updated_at = ?, doc = ? WHERE id = ?`,
		r.App, r.Env, string(r.Phase), formatTime(r.CreatedAt), formatTime(r.UpdatedAt), string(doc), r.ID)
	if err != nil {
		return fmt.Errorf("update rollout %d: %w", r.ID, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("update rollout %d: %w", r.ID, err)
	}
	if n == 0 {
		return fmt.Errorf("update rollout %d: %w", r.ID, rollout.ErrNotFound)
	}
	return nil
}

func putEnvState(ctx context.Context, tx *sql.Tx, e rollout.EnvState) error {
	doc, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("encode env state %s/%s: %w", e.App, e.Env, err)
	}
	if _, err := tx.ExecContext(ctx, `
INSERT INTO env_states (app, env, updated_at, doc) VALUES (?, ?, ?, ?)
ON CONFLICT (app, env) DO UPDATE SET updated_at = excluded.updated_at, doc = excluded.doc`,
		e.App, e.Env, formatTime(e.UpdatedAt), string(doc)); err != nil {
		return fmt.Errorf("put env state %s/%s: %w", e.App, e.Env, err)
	}
	return nil
}

// GetRollout returns a rollout or an error wrapping rollout.ErrNotFound.
func (s *Store) GetRollout(ctx context.Context, id int64) (rollout.Rollout, error) {
	rs, err := s.queryRollouts(ctx, `SELECT id, doc FROM rollouts WHERE id = ?`, id)
	if err != nil {
		return rollout.Rollout{}, fmt.Errorf("get rollout %d: %w", id, err)
	}
	if len(rs) == 0 {
		return rollout.Rollout{}, fmt.Errorf("get rollout %d: %w", id, rollout.ErrNotFound)
	}
	return rs[0], nil
}

// ListRollouts returns the rollouts of app in env, newest (highest ID)
// first, at most limit of them. An empty env means every environment, an
// empty app every app, and a limit of 0 or less means 50.
func (s *Store) ListRollouts(ctx context.Context, app, env string, limit int) ([]rollout.Rollout, error) {
	if limit <= 0 {
		limit = defaultRolloutLimit
	}
	var (
		where []string
		args  []any
	)
	if app != "" {
		where, args = append(where, "app = ?"), append(args, app)
	}
	if env != "" {
		where, args = append(where, "env = ?"), append(args, env)
	}
	query := `SELECT id, doc FROM rollouts`
	if len(where) > 0 {
		query += ` WHERE ` + strings.Join(where, " AND ")
	}
	query += ` ORDER BY id DESC LIMIT ?`
	rs, err := s.queryRollouts(ctx, query, append(args, limit)...)
	if err != nil {
		return nil, fmt.Errorf("list rollouts of %s/%s: %w", app, env, err)
	}
	return rs, nil
}

// ActiveRollouts returns every rollout whose phase is not final, oldest
// first, so that a restarted server resumes them in the order they began.
func (s *Store) ActiveRollouts(ctx context.Context) ([]rollout.Rollout, error) {
	rs, err := s.queryRollouts(ctx, `SELECT id, doc FROM rollouts WHERE phase NOT IN (?, ?, ?) ORDER BY id`,
		string(rollout.PhaseSucceeded), string(rollout.PhaseRolledBack), string(rollout.PhaseFailed))
	if err != nil {
		return nil, fmt.Errorf("list active rollouts: %w", err)
	}
	return rs, nil
}

func (s *Store) queryRollouts(ctx context.Context, query string, args ...any) ([]rollout.Rollout, error) {
	return queryRollouts(ctx, s.read, query, args...)
}

func queryRollouts(ctx context.Context, q rowsQuerier, query string, args ...any) ([]rollout.Rollout, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer func() { _ = rows.Close() }()
	var rs []rollout.Rollout
	for rows.Next() {
		var (
			id  int64
			doc string
			r   rollout.Rollout
		)
		if err := rows.Scan(&id, &doc); err != nil {
			return nil, err
		}
		if err := json.Unmarshal([]byte(doc), &r); err != nil {
			return nil, fmt.Errorf("decode rollout %d: %w", id, err)
		}
		r.ID = id
		rs = append(rs, r)
	}
	return rs, rows.Err()
}

// GetEnvState returns what is live in an environment, or an error wrapping
// rollout.ErrNotFound before its first deploy.
func (s *Store) GetEnvState(ctx context.Context, app, env string) (rollout.EnvState, error) {
	var doc string
	err := s.read.QueryRowContext(ctx, `SELECT doc FROM env_states WHERE app = ? AND env = ?`, app, env).Scan(&doc)
	if errors.Is(err, sql.ErrNoRows) {
		return rollout.EnvState{}, fmt.Errorf("get env state %s/%s: %w", app, env, rollout.ErrNotFound)
	}
	if err != nil {
		return rollout.EnvState{}, fmt.Errorf("get env state %s/%s: %w", app, env, err)
	}
	var e rollout.EnvState
	if err := json.Unmarshal([]byte(doc), &e); err != nil {
		return rollout.EnvState{}, fmt.Errorf("get env state %s/%s: decode: %w", app, env, err)
	}
	return e, nil
}
