package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

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
	err = s.inTx(ctx, func(tx pgx.Tx) error {
		if err := tx.QueryRow(ctx, `
INSERT INTO test_runs (app, version, commit_sha, at, ci_duration_ms, infra, counts) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id`,
			r.App, r.Version, r.Commit, formatTime(r.At), r.CIDuration.Milliseconds(), r.Infra, string(counts)).Scan(&r.ID); err != nil {
			return err
		}
		if err := insertCases(ctx, tx, r); err != nil {
			return err
		}
		data := make(map[string]string, len(ev.Data)+1)
		for k, v := range ev.Data {
			data[k] = v
		}
		data["run"] = fmt.Sprint(r.ID)
		e := ev
		e.Data = data
		return s.appendAudit(ctx, tx, []audit.Event{e})
	})
	if err != nil {
		return testsignal.Run{}, fmt.Errorf("add test run of %s/%s: %w", r.App, r.Version, err)
	}
	return r, nil
}

// insertCases writes the cases of r, keeping their order in pos.
func insertCases(ctx context.Context, tx pgx.Tx, r testsignal.Run) error {
	var batch pgx.Batch
	for i, c := range r.Cases {
		batch.Queue(`
INSERT INTO test_results (run_id, pos, test_id, file, level, attempts, duration_ms, message) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
			r.ID, i, c.ID, c.File, c.Level, joinAttempts(c.Attempts), c.Duration.Milliseconds(), c.Message)
	}
	if batch.Len() == 0 {
		return nil
	}
	return tx.SendBatch(ctx, &batch).Close()
}

// TestRuns returns an app's latest test runs (of one version, unless
// version is ""), at most limit, oldest first, with their cases.
func (s *Store) TestRuns(ctx context.Context, app, version string, limit int) ([]testsignal.Run, error) {
	runs, err := queryTestRuns(ctx, s.pool, `
SELECT id, app, version, commit_sha, at, ci_duration_ms, infra FROM test_runs
WHERE app = $1 AND ($2 = '' OR version = $2) ORDER BY at DESC, id DESC LIMIT $3`, app, version, limit)
	if err != nil {
		return nil, fmt.Errorf("list test runs: %w", err)
	}
	// Oldest first.
	for i, j := 0, len(runs)-1; i < j; i, j = i+1, j-1 {
		runs[i], runs[j] = runs[j], runs[i]
	}
	if err := loadCases(ctx, s.pool, runs); err != nil {
		return nil, fmt.Errorf("list test results: %w", err)
	}
	return runs, nil
}

func queryTestRuns(ctx context.Context, q querier, query string, args ...any) ([]testsignal.Run, error) {
	rows, err := q.Query(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var runs []testsignal.Run
	for rows.Next() {
		var (
			r  testsignal.Run
			at string
			ms int64
		)
		if err := rows.Scan(&r.ID, &r.App, &r.Version, &r.Commit, &at, &ms, &r.Infra); err != nil {
			return nil, err
		}
		if r.At, err = parseTime(at); err != nil {
			return nil, err
		}
		r.CIDuration = time.Duration(ms) * time.Millisecond
		runs = append(runs, r)
	}
	return runs, rows.Err()
}

// loadCases reads the cases of runs, each run's in the order recorded.
func loadCases(ctx context.Context, q querier, runs []testsignal.Run) error {
	if len(runs) == 0 {
		return nil
	}
	index := make(map[int64]int, len(runs))
	ids := make([]int64, len(runs))
	for i, r := range runs {
		index[r.ID], ids[i] = i, r.ID
	}
	rows, err := q.Query(ctx, `
SELECT run_id, test_id, file, level, attempts, duration_ms, message FROM test_results
WHERE run_id = ANY($1) ORDER BY run_id, pos`, ids)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var (
			id, ms   int64
			c        testsignal.Case
			attempts string
		)
		if err := rows.Scan(&id, &c.ID, &c.File, &c.Level, &attempts, &ms, &c.Message); err != nil {
			return err
		}
		i, ok := index[id]
		if !ok {
			continue
		}
		c.Attempts = splitAttempts(attempts)
		c.Duration = time.Duration(ms) * time.Millisecond
		runs[i].Cases = append(runs[i].Cases, c)
	}
	return rows.Err()
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
