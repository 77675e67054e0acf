package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/shipgate/shipgate/internal/dora"
	"github.com/shipgate/shipgate/internal/store"
	"github.com/shipgate/shipgate/internal/testsignal"
)

// This file exports and imports what later features keep in the store:
// DORA's release changes and incidents, the notification outbox, test
// runs, route usage and retirements.

func exportHistory(ctx context.Context, tx *sql.Tx, snap *store.Snapshot) error {
	var err error
	if snap.Changes, err = exportChanges(ctx, tx); err != nil {
		return fmt.Errorf("release changes: %w", err)
	}
	if snap.Incidents, err = queryIncidents(ctx, tx, ""); err != nil {
		return fmt.Errorf("incidents: %w", err)
	}
	var cursor int64
	switch err := tx.QueryRowContext(ctx, `SELECT seq FROM notification_cursor WHERE id = 1`).Scan(&cursor); {
	case err == nil:
		snap.NotifyCursor = &cursor
	case !errors.Is(err, sql.ErrNoRows):
		return fmt.Errorf("notification cursor: %w", err)
	}
	if snap.Outbox, err = queryOutbox(ctx, tx, `SELECT `+outboxColumns+` FROM notification_outbox ORDER BY id`); err != nil {
		return fmt.Errorf("notification outbox: %w", err)
	}
	if snap.TestRuns, err = exportTestRuns(ctx, tx); err != nil {
		return fmt.Errorf("test runs: %w", err)
	}
	if snap.RouteUsage, snap.RouteTracking, err = exportRoutes(ctx, tx); err != nil {
		return fmt.Errorf("route usage: %w", err)
	}
	if snap.Retirements, err = exportRetirements(ctx, tx); err != nil {
		return fmt.Errorf("retirements: %w", err)
	}
	if snap.FlagGuards, err = loadGuards(ctx, tx); err != nil {
		return fmt.Errorf("guarded flag rollouts: %w", err)
	}
	return nil
}

func exportChanges(ctx context.Context, tx *sql.Tx) ([]store.Change, error) {
	rows, err := tx.QueryContext(ctx, `SELECT app, version, commits, files, lines, prs, updated_at FROM release_changes ORDER BY app, version`)
	if err != nil {
		return nil, err
	}
	defer func() { _ = rows.Close() }()
	var out []store.Change
	for rows.Next() {
		var (
			c                 store.Change
			commits, updated  string
			files, lines, prs sql.NullInt64
		)
		if err := rows.Scan(&c.App, &c.Version, &commits, &files, &lines, &prs, &updated); err != nil {
			return nil, err
		}
		if err := json.Unmarshal([]byte(commits), &c.Commits); err != nil {
			return nil, fmt.Errorf("decode commits of %s %s: %w", c.App, c.Version, err)
		}
		if files.Valid {
			c.Size = &dora.Size{Files: int(files.Int64), Lines: int(lines.Int64), PRs: int(prs.Int64)}
		}
		if c.UpdatedAt, err = parseTime(updated); err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

func exportTestRuns(ctx context.Context, tx *sql.Tx) ([]testsignal.Run, error) {
	rows, err := tx.QueryContext(ctx, `SELECT id, app, version, commit_sha, at, ci_duration_ms, infra FROM test_runs ORDER BY id`)
	if err != nil {
		return nil, err
	}
	var runs []testsignal.Run
	index := map[int64]int{}
	for rows.Next() {
		var (
			r  testsignal.Run
			at string
			ms int64
		)
		if err := rows.Scan(&r.ID, &r.App, &r.Version, &r.Commit, &at, &ms, &r.Infra); err != nil {
			_ = rows.Close()
			return nil, err
		}
		if r.At, err = parseTime(at); err != nil {
			_ = rows.Close()
			return nil, err
		}
		r.CIDuration = time.Duration(ms) * time.Millisecond
		index[r.ID] = len(runs)
		runs = append(runs, r)
	}
	_ = rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	crows, err := tx.QueryContext(ctx, `SELECT run_id, test_id, file, level, attempts, duration_ms, message FROM test_results ORDER BY run_id, rowid`)
	if err != nil {
		return nil, err
	}
	defer func() { _ = crows.Close() }()
	for crows.Next() {
		var (
			id, ms   int64
			c        testsignal.Case
			attempts string
		)
		if err := crows.Scan(&id, &c.ID, &c.File, &c.Level, &attempts, &ms, &c.Message); err != nil {
			return nil, err
		}
		i, ok := index[id]
		if !ok {
			return nil, fmt.Errorf("test result %q of unknown run %d", c.ID, id)
		}
		c.Attempts = splitAttempts(attempts)
		c.Duration = time.Duration(ms) * time.Millisecond
		runs[i].Cases = append(runs[i].Cases, c)
	}
	return runs, crows.Err()
}

func exportRoutes(ctx context.Context, tx *sql.Tx) ([]store.RouteDay, []store.RouteTracking, error) {
	rows, err := tx.QueryContext(ctx, `SELECT env, prefix, day, count, last_at FROM route_usage ORDER BY env, prefix, day`)
	if err != nil {
		return nil, nil, err
	}
	var days []store.RouteDay
	for rows.Next() {
		var (
			d    store.RouteDay
			n    int64
			last string
		)
		if err := rows.Scan(&d.Env, &d.Prefix, &d.Day, &n, &last); err != nil {
			_ = rows.Close()
			return nil, nil, err
		}
		d.Count = nonNegative(n)
		if d.Last, err = parseTime(last); err != nil {
			_ = rows.Close()
			return nil, nil, err
		}
		days = append(days, d)
	}
	_ = rows.Close()
	if err := rows.Err(); err != nil {
		return nil, nil, err
	}
	trows, err := tx.QueryContext(ctx, `SELECT env, since FROM route_tracking ORDER BY env`)
	if err != nil {
		return nil, nil, err
	}
	defer func() { _ = trows.Close() }()
	var tracking []store.RouteTracking
	for trows.Next() {
		var (
			tr    store.RouteTracking
			since string
		)
		if err := trows.Scan(&tr.Env, &since); err != nil {
			return nil, nil, err
		}
		if tr.Since, err = parseTime(since); err != nil {
			return nil, nil, err
		}
		tracking = append(tracking, tr)
	}
	return days, tracking, trows.Err()
}

func exportRetirements(ctx context.Context, tx *sql.Tx) ([]store.Retirement, error) {
	rows, err := tx.QueryContext(ctx, `SELECT id, updated_at, doc FROM retirements ORDER BY id`)
	if err != nil {
		return nil, err
	}
	defer func() { _ = rows.Close() }()
	var out []store.Retirement
	for rows.Next() {
		var (
			r            store.Retirement
			id           int64
			updated, doc string
		)
		if err := rows.Scan(&id, &updated, &doc); err != nil {
			return nil, err
		}
		if err := json.Unmarshal([]byte(doc), &r.Retirement); err != nil {
			return nil, fmt.Errorf("decode retirement %d: %w", id, err)
		}
		r.ID = id
		if r.UpdatedAt, err = parseTime(updated); err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

func importHistory(ctx context.Context, tx *sql.Tx, snap *store.Snapshot) error {
	for _, c := range snap.Changes {
		commits, err := json.Marshal(c.Commits)
		if err != nil {
			return fmt.Errorf("encode commits of %s %s: %w", c.App, c.Version, err)
		}
		if c.Commits == nil {
			commits = []byte("[]")
		}
		var files, lines, prs sql.NullInt64
		if c.Size != nil {
			files = sql.NullInt64{Int64: int64(c.Size.Files), Valid: true}
			lines = sql.NullInt64{Int64: int64(c.Size.Lines), Valid: true}
			prs = sql.NullInt64{Int64: int64(c.Size.PRs), Valid: true}
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO release_changes (app, version, commits, files, lines, prs, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)`,
			c.App, c.Version, string(commits), files, lines, prs, formatTime(c.UpdatedAt)); err != nil {
			return fmt.Errorf("import the change of %s %s: %w", c.App, c.Version, err)
		}
	}
	for _, in := range snap.Incidents {
		if _, err := tx.ExecContext(ctx, `INSERT INTO incidents (id, app, env, deploy_id, fix_deploy_id, title, opened_at, resolved_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
			in.ID, in.App, in.Env, in.DeployID, in.FixDeployID, in.Title, formatTime(in.OpenedAt), formatOptionalTime(in.ResolvedAt)); err != nil {
			return fmt.Errorf("import incident %d: %w", in.ID, err)
		}
	}
	if snap.NotifyCursor != nil {
		if _, err := tx.ExecContext(ctx, `INSERT INTO notification_cursor (id, seq) VALUES (1, ?)`, *snap.NotifyCursor); err != nil {
			return fmt.Errorf("import the notification cursor: %w", err)
		}
	}
	for _, d := range snap.Outbox {
		if _, err := tx.ExecContext(ctx, `
INSERT INTO notification_outbox (id, event_id, event_type, webhook, payload, state, attempts, next_attempt_at, last_error, last_status, created_at, sent_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			d.ID, d.EventID, d.EventType, d.Webhook, d.Payload, d.State, d.Attempts, formatTime(d.NextAt), d.LastError, d.LastStatus,
			formatTime(d.CreatedAt), formatOptionalTime(d.SentAt)); err != nil {
			return fmt.Errorf("import notification %d: %w", d.ID, err)
		}
	}
	for _, r := range snap.TestRuns {
		counts, err := json.Marshal(r.Counts())
		if err != nil {
			return fmt.Errorf("import test run %d: %w", r.ID, err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO test_runs (id, app, version, commit_sha, at, ci_duration_ms, infra, counts) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
			r.ID, r.App, r.Version, r.Commit, formatTime(r.At), r.CIDuration.Milliseconds(), r.Infra, string(counts)); err != nil {
			return fmt.Errorf("import test run %d: %w", r.ID, err)
		}
		for _, c := range r.Cases {
			if _, err := tx.ExecContext(ctx, `INSERT INTO test_results (run_id, test_id, file, level, attempts, duration_ms, message) VALUES (?, ?, ?, ?, ?, ?, ?)`,
				r.ID, c.ID, c.File, c.Level, joinAttempts(c.Attempts), c.Duration.Milliseconds(), c.Message); err != nil {
				return fmt.Errorf("import test %q of run %d: %w", c.ID, r.ID, err)
			}
		}
	}
	for _, d := range snap.RouteUsage {
		if _, err := tx.ExecContext(ctx, `INSERT INTO route_usage (env, prefix, day, count, last_at) VALUES (?, ?, ?, ?, ?)`,
			d.Env, d.Prefix, d.Day, int64(d.Count), formatTime(d.Last)); err != nil { //nolint:gosec // stored counts are below 2^63
			return fmt.Errorf("import route usage of %s %s %s: %w", d.Env, d.Prefix, d.Day, err)
		}
	}
	for _, tr := range snap.RouteTracking {
		if _, err := tx.ExecContext(ctx, `INSERT INTO route_tracking (env, since) VALUES (?, ?)`, tr.Env, formatTime(tr.Since)); err != nil {
			return fmt.Errorf("import route tracking of %s: %w", tr.Env, err)
		}
	}
	for _, r := range snap.Retirements {
		doc, err := json.Marshal(r.Retirement)
		if err != nil {
			return fmt.Errorf("encode retirement %d: %w", r.ID, err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO retirements (id, stage, updated_at, doc) VALUES (?, ?, ?, ?)`,
			r.ID, string(r.Stage), formatTime(r.UpdatedAt), string(doc)); err != nil {
			return fmt.Errorf("import retirement %d: %w", r.ID, err)
		}
	}
	for _, g := range snap.FlagGuards {
		doc, err := json.Marshal(g)
		if err != nil {
			return fmt.Errorf("encode guarded rollout of flag %q: %w", g.Key, err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO flag_guards (key, phase, doc, updated_at) VALUES (?, ?, ?, ?)`,
			g.Key, g.Status.Phase, string(doc), formatTime(time.Now())); err != nil {
			return fmt.Errorf("import guarded rollout of flag %q: %w", g.Key, err)
		}
	}
	return nil
}
