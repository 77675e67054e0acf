package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/shipgate/shipgate/internal/audit"
	"github.com/shipgate/shipgate/internal/rollout"
)

// defaultRolloutLimit is the page size of ListRollouts when the caller
// gives none.
const defaultRolloutLimit = 50

type querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// PutRelease records a release. Recording the same release again (same
// commit and vars) keeps the first CreatedAt and merges the check results
// given into the recorded ones; a release with the same app and version but
// another commit, other vars or another image is an error wrapping
// rollout.ErrConflict.
func (s *Store) PutRelease(ctx context.Context, r rollout.Release) error {
	vars, err := marshalVars(r.Vars)
	if err != nil {
		return fmt.Errorf("put release %s %s: %w", r.App, r.Version, err)
	}
	err = s.inTx(ctx, func(tx pgx.Tx) error { return s.putRelease(ctx, tx, r, vars) })
	if err != nil {
		return fmt.Errorf("put release %s %s: %w", r.App, r.Version, err)
	}
	return nil
}

func (s *Store) putRelease(ctx context.Context, tx pgx.Tx, r rollout.Release, vars string) error {
	checks, err := marshalChecks(r.Checks)
	if err != nil {
		return err
	}
	tag, err := tx.Exec(ctx, `
INSERT INTO releases (app, version, commit_sha, vars, created_at, commit_time, checks, image) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
ON CONFLICT (app, version) DO NOTHING`,
		r.App, r.Version, r.Commit, vars, formatTime(s.orNow(r.CreatedAt)), formatOptionalTime(r.CommitTime), checks, r.Image)
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 1 {
		return nil
	}
	// FOR UPDATE: two servers merging checks into one release queue.
	old, err := getRelease(ctx, tx, r.App, r.Version, " FOR UPDATE")
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
	_, err = tx.Exec(ctx, `UPDATE releases SET checks = $1, commit_time = $2 WHERE app = $3 AND version = $4`,
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

// GetRelease returns a release or an error wrapping rollout.ErrNotFound.
func (s *Store) GetRelease(ctx context.Context, app, version string) (rollout.Release, error) {
	r, err := getRelease(ctx, s.pool, app, version, "")
	if err != nil {
		return rollout.Release{}, fmt.Errorf("get release %s %s: %w", app, version, err)
	}
	return r, nil
}

const releaseColumns = `app, version, commit_sha, vars, created_at, commit_time, checks, image`

func getRelease(ctx context.Context, q querier, app, version, lock string) (rollout.Release, error) {
	r, err := scanRelease(q.QueryRow(ctx, `SELECT `+releaseColumns+` FROM releases WHERE app = $1 AND version = $2`+lock, app, version))
	if isNoRows(err) {
		return rollout.Release{}, fmt.Errorf("release: %w", rollout.ErrNotFound)
	}
	return r, err
}

func scanRelease(row pgx.Row) (rollout.Release, error) {
	var (
		r                                 rollout.Release
		vars, created, commitTime, checks string
	)
	if err := row.Scan(&r.App, &r.Version, &r.Commit, &vars, &created, &commitTime, &checks, &r.Image); err != nil {
		return rollout.Release{}, err
	}
	if err := json.Unmarshal([]byte(vars), &r.Vars); err != nil {
		return rollout.Release{}, fmt.Errorf("decode vars: %w", err)
	}
	if len(r.Vars) == 0 {
		r.Vars = nil
	}
	var err error
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

// Commit writes everything in c in one transaction, as the SQLite store's
// Commit does: the release, the rollout (inserted when its ID is 0,
// updated otherwise), the environment state and the audit events appended
// to the chain. If anything fails nothing is written and c is left as it
// was; on success Commit writes back what the store assigned.
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
	err := s.inTx(ctx, func(tx pgx.Tx) error {
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
func putRollout(ctx context.Context, tx pgx.Tx, r *rollout.Rollout) error {
	if r.ID == 0 {
		if err := tx.QueryRow(ctx, `
INSERT INTO rollouts (app, env, phase, created_at, updated_at, doc) VALUES ($1, $2, $3, $4, $5, '{}') RETURNING id`,
			r.App, r.Env, string(r.Phase), formatTime(r.CreatedAt), formatTime(r.UpdatedAt)).Scan(&r.ID); err != nil {
			return fmt.Errorf("insert rollout: %w", err)
		}
	}
	doc, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("encode rollout %d: %w", r.ID, err)
	}
	tag, err := tx.Exec(ctx, `
UPDATE rollouts SET app = $1, env = $2, phase = $3, created_at = $4, updated_at = $5, doc = $6 WHERE id = $7`,
		r.App, r.Env, string(r.Phase), formatTime(r.CreatedAt), formatTime(r.UpdatedAt), string(doc), r.ID)
	if err != nil {
		return fmt.Errorf("update rollout %d: %w", r.ID, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("update rollout %d: %w", r.ID, rollout.ErrNotFound)
	}
	return nil
}

func putEnvState(ctx context.Context, tx pgx.Tx, e rollout.EnvState) error {
	doc, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("encode env state %s/%s: %w", e.App, e.Env, err)
	}
	if _, err := tx.Exec(ctx, `
INSERT INTO env_states (app, env, updated_at, doc) VALUES ($1, $2, $3, $4)
ON CONFLICT (app, env) DO UPDATE SET updated_at = excluded.updated_at, doc = excluded.doc`,
		e.App, e.Env, formatTime(e.UpdatedAt), string(doc)); err != nil {
		return fmt.Errorf("put env state %s/%s: %w", e.App, e.Env, err)
	}
	return nil
}

// GetRollout returns a rollout or an error wrapping rollout.ErrNotFound.
func (s *Store) GetRollout(ctx context.Context, id int64) (rollout.Rollout, error) {
	rs, err := s.queryRollouts(ctx, `SELECT id, doc FROM rollouts WHERE id = $1`, id)
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
		args = append(args, app)
		where = append(where, "app = $"+strconv.Itoa(len(args)))
	}
	if env != "" {
		args = append(args, env)
		where = append(where, "env = $"+strconv.Itoa(len(args)))
	}
	query := `SELECT id, doc FROM rollouts`
	if len(where) > 0 {
		query += ` WHERE ` + strings.Join(where, " AND ")
	}
	args = append(args, limit)
	query += ` ORDER BY id DESC LIMIT $` + strconv.Itoa(len(args))
	rs, err := s.queryRollouts(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("list rollouts of %s/%s: %w", app, env, err)
	}
	return rs, nil
}

// ActiveRollouts returns every rollout whose phase is not final, oldest
// first.
func (s *Store) ActiveRollouts(ctx context.Context) ([]rollout.Rollout, error) {
	rs, err := s.queryRollouts(ctx, `SELECT id, doc FROM rollouts WHERE phase NOT IN ($1, $2, $3) ORDER BY id`,
		string(rollout.PhaseSucceeded), string(rollout.PhaseRolledBack), string(rollout.PhaseFailed))
	if err != nil {
		return nil, fmt.Errorf("list active rollouts: %w", err)
	}
	return rs, nil
}

func (s *Store) queryRollouts(ctx context.Context, query string, args ...any) ([]rollout.Rollout, error) {
	return queryRollouts(ctx, s.pool, query, args...)
}

func queryRollouts(ctx context.Context, q querier, query string, args ...any) ([]rollout.Rollout, error) {
	rows, err := q.Query(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
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
	err := s.pool.QueryRow(ctx, `SELECT doc FROM env_states WHERE app = $1 AND env = $2`, app, env).Scan(&doc)
	if isNoRows(err) {
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
