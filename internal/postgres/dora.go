package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/shipgate/shipgate/internal/audit"
	"github.com/shipgate/shipgate/internal/dora"
	"github.com/shipgate/shipgate/internal/rollout"
)

// This file stores what DORA needs beyond rollouts: each release's change
// (commits and size) and incidents.

// PutChangeAudited records the commits and size of a release's change,
// replacing what was recorded before, and appends e in the same
// transaction. An unknown release wraps rollout.ErrNotFound.
func (s *Store) PutChangeAudited(ctx context.Context, c dora.Change, e audit.Event) error {
	commits, err := json.Marshal(c.Commits)
	if err != nil {
		return fmt.Errorf("put change %s %s: encode commits: %w", c.App, c.Version, err)
	}
	if c.Commits == nil {
		commits = []byte("[]")
	}
	var files, lines, prs *int64
	if c.Size != nil {
		f, l, p := int64(c.Size.Files), int64(c.Size.Lines), int64(c.Size.PRs)
		files, lines, prs = &f, &l, &p
	}
	err = s.inTx(ctx, func(tx pgx.Tx) error {
		if _, err := getRelease(ctx, tx, c.App, c.Version, ""); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `
INSERT INTO release_changes (app, version, commits, files, lines, prs, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7)
ON CONFLICT (app, version) DO UPDATE SET commits = excluded.commits, files = excluded.files,
	lines = excluded.lines, prs = excluded.prs, updated_at = excluded.updated_at`,
			c.App, c.Version, string(commits), files, lines, prs, formatTime(s.now())); err != nil {
			return err
		}
		return s.appendAudit(ctx, tx, []audit.Event{e})
	})
	if err != nil {
		return fmt.Errorf("put change %s %s: %w", c.App, c.Version, err)
	}
	return nil
}

// ListChanges returns the recorded change of every release, and for a
// release without one, its commit and commit time as a one-commit change.
func (s *Store) ListChanges(ctx context.Context) ([]dora.Change, error) {
	rows, err := s.pool.Query(ctx, `
SELECT r.app, r.version, r.commit_sha, r.commit_time, c.commits, c.files, c.lines, c.prs
FROM releases r LEFT JOIN release_changes c ON c.app = r.app AND c.version = r.version
ORDER BY r.app COLLATE "C", r.version COLLATE "C"`)
	if err != nil {
		return nil, fmt.Errorf("list changes: %w", err)
	}
	defer rows.Close()
	var out []dora.Change
	for rows.Next() {
		var (
			c                 dora.Change
			sha, commitTime   string
			commits           *string
			files, lines, prs *int64
		)
		if err := rows.Scan(&c.App, &c.Version, &sha, &commitTime, &commits, &files, &lines, &prs); err != nil {
			return nil, fmt.Errorf("list changes: %w", err)
		}
		if commits != nil {
			if err := json.Unmarshal([]byte(*commits), &c.Commits); err != nil {
				return nil, fmt.Errorf("list changes: decode commits of %s %s: %w", c.App, c.Version, err)
			}
		}
		if commitTime != "" {
			t, err := parseTime(commitTime)
			if err != nil {
				return nil, err
			}
			c.Commits = append(c.Commits, dora.Commit{SHA: sha, Time: t})
		}
		if files != nil {
			c.Size = &dora.Size{Files: int(*files), Lines: int(*lines), PRs: int(*prs)}
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list changes: %w", err)
	}
	return out, nil
}

// OpenIncidentAudited records in (setting its ID) and the audit event
// event makes of it, in one transaction.
func (s *Store) OpenIncidentAudited(ctx context.Context, in *dora.Incident, event func(dora.Incident) audit.Event) error {
	rec := *in
	rec.OpenedAt = s.orNow(rec.OpenedAt).UTC()
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		if err := tx.QueryRow(ctx, `
INSERT INTO incidents (app, env, deploy_id, fix_deploy_id, title, opened_at, resolved_at) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id`,
			rec.App, rec.Env, rec.DeployID, rec.FixDeployID, rec.Title, formatTime(rec.OpenedAt), formatOptionalTime(rec.ResolvedAt)).Scan(&rec.ID); err != nil {
			return err
		}
		return s.appendAudit(ctx, tx, []audit.Event{event(rec)})
	})
	if err != nil {
		return fmt.Errorf("open incident: %w", err)
	}
	*in = rec
	return nil
}

// ResolveIncidentAudited marks incident id resolved at resolvedAt (now
// when zero), fixed by the deploy fixDeployID (0: none), and appends the
// audit event event makes of it. An unknown id wraps rollout.ErrNotFound;
// an incident already resolved wraps rollout.ErrConflict.
func (s *Store) ResolveIncidentAudited(ctx context.Context, id int64, resolvedAt time.Time, fixDeployID int64,
	event func(dora.Incident) audit.Event,
) (dora.Incident, error) {
	var in dora.Incident
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		// FOR UPDATE: two servers resolving one incident queue, and the
		// second finds it resolved.
		ins, err := queryIncidents(ctx, tx, `WHERE id = $1`, " FOR UPDATE", id)
		if err != nil {
			return err
		}
		if len(ins) == 0 {
			return fmt.Errorf("incident %d: %w", id, rollout.ErrNotFound)
		}
		in = ins[0]
		if !in.ResolvedAt.IsZero() {
			return fmt.Errorf("incident %d was resolved at %s: %w", id, in.ResolvedAt.Format(time.RFC3339), rollout.ErrConflict)
		}
		in.ResolvedAt = s.orNow(resolvedAt).UTC()
		if fixDeployID != 0 {
			in.FixDeployID = fixDeployID
		}
		if _, err := tx.Exec(ctx, `UPDATE incidents SET resolved_at = $1, fix_deploy_id = $2 WHERE id = $3`,
			formatTime(in.ResolvedAt), in.FixDeployID, id); err != nil {
			return err
		}
		return s.appendAudit(ctx, tx, []audit.Event{event(in)})
	})
	if err != nil {
		return dora.Incident{}, fmt.Errorf("resolve incident: %w", err)
	}
	return in, nil
}

// ListIncidents returns the incidents of app in env, oldest first; an
// empty app or env matches all.
func (s *Store) ListIncidents(ctx context.Context, app, env string) ([]dora.Incident, error) {
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
	clause := ""
	if len(where) > 0 {
		clause = "WHERE " + strings.Join(where, " AND ")
	}
	ins, err := queryIncidents(ctx, s.pool, clause, "", args...)
	if err != nil {
		return nil, fmt.Errorf("list incidents: %w", err)
	}
	return ins, nil
}

func queryIncidents(ctx context.Context, q querier, clause, lock string, args ...any) ([]dora.Incident, error) {
	rows, err := q.Query(ctx, `
SELECT id, app, env, deploy_id, fix_deploy_id, title, opened_at, resolved_at FROM incidents `+clause+` ORDER BY id`+lock, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []dora.Incident
	for rows.Next() {
		var (
			in               dora.Incident
			opened, resolved string
		)
		if err := rows.Scan(&in.ID, &in.App, &in.Env, &in.DeployID, &in.FixDeployID, &in.Title, &opened, &resolved); err != nil {
			return nil, err
		}
		if in.OpenedAt, err = parseTime(opened); err != nil {
			return nil, err
		}
		if resolved != "" {
			if in.ResolvedAt, err = parseTime(resolved); err != nil {
				return nil, err
			}
		}
		out = append(out, in)
	}
	return out, rows.Err()
}
