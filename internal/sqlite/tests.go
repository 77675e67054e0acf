package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"maps"
	"strings"
	"time"

	"github.com/shipgate/shipgate/internal/audit"
	"github.com/shipgate/shipgate/internal/testsignal"
)

// The store keeps the test runs of the test signals.
var _ testsignal.Store = (*Store)(nil)

// AddTestRun records a test run, its cases and its audit event in one
// transaction.
func (s *Store) AddTestRun(ctx context.Context, r testsignal.Run, ev audit.Event) (testsignal.Run, error) {
	counts, err := json.Marshal(r.Counts())
	if err != nil {
		return testsignal.Run{}, fmt.Errorf("add test run: %w", err)
	}
	r.At = s.orNow(r.At)
	err = s.inTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `
INSERT INTO test_runs (app, version, commit_sha, at, ci_duration_ms, infra, counts) VALUES (?, ?, ?, ?, ?, ?, ?)`,
			r.App, r.Version, r.Commit, formatTime(r.At), r.CIDuration.Milliseconds(), r.Infra, string(counts))
		if err != nil {
			return err
		}
		if r.ID, err = res.LastInsertId(); err != nil {
			return err
		}
		stmt, err := tx.PrepareContext(ctx, `
INSERT INTO test_results (run_id, test_id, file, level, attempts, duration_ms, message) VALUES (?, ?, ?, ?, ?, ?, ?)`)
		if err != nil {
			return err
		}
		defer func() { _ = stmt.Close() }()
		for _, c := range r.Cases {
			if _, err := stmt.ExecContext(ctx, r.ID, c.ID, c.File, c.Level, joinAttempts(c.Attempts), c.Duration.Milliseconds(), c.Message); err != nil {
				return err
			}
		}
		// A copy: the caller's map is not written to (and may be nil), as
		// in the PostgreSQL store.
		e := ev
		e.Data = make(map[string]string, len(ev.Data)+1)
		maps.Copy(e.Data, ev.Data)
		e.Data["run"] = fmt.Sprint(r.ID)
		return s.appendAudit(ctx, tx, []audit.Event{e})
	})
	if err != nil {
		return testsignal.Run{}, fmt.Errorf("add test run of %s/%s: %w", r.App, r.Version, err)
	}
	return r, nil
}

// TestRuns returns an app's latest test runs (of one version, unless
// version is ""), at most limit, oldest first, with their cases.
func (s *Store) TestRuns(ctx context.Context, app, version string, limit int) ([]testsignal.Run, error) {
	rows, err := s.read.QueryContext(ctx, `
SELECT id, version, commit_sha, at, ci_duration_ms, infra FROM test_runs
WHERE app = ? AND (? = '' OR version = ?) ORDER BY at DESC, id DESC LIMIT ?`, app, version, version, limit)
	if err != nil {
		return nil, fmt.Errorf("list test runs: %w", err)
	}
	var runs []testsignal.Run
	index := map[int64]int{}
	for rows.Next() {
		r := testsignal.Run{App: app}
		var at string
		var ms int64
		if err := rows.Scan(&r.ID, &r.Version, &r.Commit, &at, &ms, &r.Infra); err != nil {
			_ = rows.Close()
			return nil, fmt.Errorf("list test runs: %w", err)
		}
		if r.At, err = parseTime(at); err != nil {
			_ = rows.Close()
			return nil, err
		}
		r.CIDuration = time.Duration(ms) * time.Millisecond
		runs = append(runs, r)
	}
	_ = rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list test runs: %w", err)
	}
	// Oldest first.
	for i, j := 0, len(runs)-1; i < j; i, j = i+1, j-1 {
		runs[i], runs[j] = runs[j], runs[i]
	}
	if len(runs) == 0 {
		return runs, nil
	}
	for i, r := range runs {
		index[r.ID] = i
	}
	crows, err := s.read.QueryContext(ctx, `
SELECT run_id, test_id, file, level, attempts, duration_ms, message FROM test_results
WHERE run_id >= ? AND run_id IN (SELECT id FROM test_runs WHERE app = ?) ORDER BY run_id, rowid`, minID(runs), app)
	if err != nil {
		return nil, fmt.Errorf("list test results: %w", err)
	}
	defer func() { _ = crows.Close() }()
	for crows.Next() {
		var id, ms int64
		var c testsignal.Case
		var attempts string
		if err := crows.Scan(&id, &c.ID, &c.File, &c.Level, &attempts, &ms, &c.Message); err != nil {
			return nil, fmt.Errorf("list test results: %w", err)
		}
		i, ok := index[id]
		if !ok {
			continue
		}
		c.Attempts = splitAttempts(attempts)
		c.Duration = time.Duration(ms) * time.Millisecond
		runs[i].Cases = append(runs[i].Cases, c)
	}
	if err := crows.Err(); err != nil {
		return nil, fmt.Errorf("list test results: %w", err)
	}
	return runs, nil
}

func minID(runs []testsignal.Run) int64 {
	m := runs[0].ID
	for _, r := range runs {
		m = min(m, r.ID)
	}
	return m
}

func joinAttempts(as []testsignal.Outcome) string {
	parts := make([]string, len(as))
	for i, a := range as {
		parts[i] = string(a)
	}
	return strings.Join(parts, ",")
}

func splitAttempts(s string) []testsignal.Outcome {
	var out []testsignal.Outcome
	for _, p := range strings.Split(s, ",") {
		if p != "" {
			out = append(out, testsignal.Outcome(p))
		}
	}
	return out
}
