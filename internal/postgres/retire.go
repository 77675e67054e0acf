package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/shipgate/shipgate/internal/audit"
	"github.com/shipgate/shipgate/internal/retire"
	"github.com/shipgate/shipgate/internal/rollout"
)

// The store is the retirements' journal.
var _ retire.Journal = (*Store)(nil)

// TrackRoutes records that the traffic of env is counted from now on,
// unless it already was.
func (s *Store) TrackRoutes(ctx context.Context, env string, now time.Time) error {
	return s.inTx(ctx, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO route_tracking (env, since) VALUES ($1, $2) ON CONFLICT (env) DO NOTHING`, env, formatTime(now))
		return err
	})
}

// TrackedSince returns when the first environment's traffic began to be
// counted, zero before any.
func (s *Store) TrackedSince(ctx context.Context) (time.Time, error) {
	var since *string
	if err := s.pool.QueryRow(ctx, `SELECT min(since) FROM route_tracking`).Scan(&since); err != nil {
		return time.Time{}, fmt.Errorf("read route tracking: %w", err)
	}
	if since == nil {
		return time.Time{}, nil
	}
	return parseTime(*since)
}

// AddRouteUsage adds request counts per path prefix of env to the day of
// their last request. Servers adding to one day at once add up: the
// upsert takes the row's lock.
func (s *Store) AddRouteUsage(ctx context.Context, env string, deltas map[string]retire.RouteCount) error {
	if len(deltas) == 0 {
		return nil
	}
	// In one order, so that two servers adding the same prefixes do not
	// deadlock.
	prefixes := make([]string, 0, len(deltas))
	for p := range deltas {
		prefixes = append(prefixes, p)
	}
	slices.Sort(prefixes)
	return s.inTx(ctx, func(tx pgx.Tx) error {
		for _, prefix := range prefixes {
			d := deltas[prefix]
			last := d.Last.UTC()
			if _, err := tx.Exec(ctx, `
INSERT INTO route_usage (env, prefix, day, count, last_at) VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (env, prefix, day) DO UPDATE SET count = route_usage.count + excluded.count,
	last_at = GREATEST(route_usage.last_at, excluded.last_at)`,
				env, prefix, last.Format(time.DateOnly), int64(d.Count), formatTime(last)); err != nil { //nolint:gosec // counts are below 2^63
				return fmt.Errorf("add route usage of %s %s: %w", env, prefix, err)
			}
		}
		return nil
	})
}

// MoveRouteCounters moves the counts and the tracking of from to to,
// unless to is counted already.
func (s *Store) MoveRouteCounters(ctx context.Context, from, to string) error {
	return s.inTx(ctx, func(tx pgx.Tx) error {
		var n int
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM route_tracking WHERE env = $1`, to).Scan(&n); err != nil || n > 0 {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE route_tracking SET env = $1 WHERE env = $2`, to, from); err != nil {
			return fmt.Errorf("move route tracking of %s to %s: %w", from, to, err)
		}
		if _, err := tx.Exec(ctx, `UPDATE route_usage SET env = $1 WHERE env = $2`, to, from); err != nil {
			return fmt.Errorf("move route usage of %s to %s: %w", from, to, err)
		}
		return nil
	})
}

// RouteUsage returns the traffic of a path prefix of env: every request
// counted, those of the days whose last request came after since (a day
// counts whole: the answer errs on the side of "used"), the last one, and
// since when env is counted.
func (s *Store) RouteUsage(ctx context.Context, env, prefix string, since time.Time) (retire.Usage, error) {
	var (
		u             retire.Usage
		last, tracked *string
		total, recent *int64
	)
	err := s.pool.QueryRow(ctx, `
SELECT sum(count)::BIGINT, sum(CASE WHEN last_at > $1 THEN count ELSE 0 END)::BIGINT, max(last_at) FROM route_usage WHERE env = $2 AND prefix = $3`,
		formatTime(since), env, prefix).Scan(&total, &recent, &last)
	if err != nil {
		return u, fmt.Errorf("read route usage: %w", err)
	}
	if total != nil {
		u.Total = nonNegative(*total)
	}
	if recent != nil {
		u.Since = nonNegative(*recent)
	}
	if last != nil {
		if u.Last, err = parseTime(*last); err != nil {
			return u, err
		}
	}
	err = s.pool.QueryRow(ctx, `SELECT since FROM route_tracking WHERE env = $1`, env).Scan(&tracked)
	switch {
	case isNoRows(err):
	case err != nil:
		return u, fmt.Errorf("read route tracking: %w", err)
	default:
		if u.TrackedSince, err = parseTime(*tracked); err != nil {
			return u, err
		}
	}
	return u, nil
}

// Save stores a retirement (setting its ID the first time) with the audit
// event of its stage, in one transaction.
func (s *Store) Save(ctx context.Context, r *retire.Retirement, actor, action, detail string) error {
	rec := *r
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		now := formatTime(s.now())
		if rec.ID == 0 {
			if err := tx.QueryRow(ctx, `INSERT INTO retirements (stage, updated_at, doc) VALUES ($1, $2, '{}') RETURNING id`,
				string(rec.Stage), now).Scan(&rec.ID); err != nil {
				return err
			}
		}
		doc, err := json.Marshal(rec)
		if err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, `UPDATE retirements SET stage = $1, updated_at = $2, doc = $3 WHERE id = $4`, string(rec.Stage), now, string(doc), rec.ID)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return fmt.Errorf("retirement %d: %w", rec.ID, rollout.ErrNotFound)
		}
		ev := audit.Event{Time: s.now().UTC(), Actor: actor, Action: action, Subject: "retire/" + string(rec.Kind) + "/" + strings.TrimPrefix(rec.Subject, "/"),
			Reason: detail, Outcome: "ok", Data: map[string]string{"retirement": fmt.Sprint(rec.ID), "stage": string(rec.Stage), "env": rec.Env}}
		if rec.Stage == retire.StageFailed || rec.Stage == retire.StageRefused {
			ev.Outcome = "failed"
		}
		return s.appendAudit(ctx, tx, []audit.Event{ev})
	})
	if err != nil {
		return fmt.Errorf("save retirement: %w", err)
	}
	*r = rec
	return nil
}

// GetRetirement returns a retirement, or an error wrapping
// rollout.ErrNotFound.
func (s *Store) GetRetirement(ctx context.Context, id int64) (retire.Retirement, error) {
	var doc string
	err := s.pool.QueryRow(ctx, `SELECT doc FROM retirements WHERE id = $1`, id).Scan(&doc)
	if isNoRows(err) {
		return retire.Retirement{}, fmt.Errorf("retirement %d: %w", id, rollout.ErrNotFound)
	}
	if err != nil {
		return retire.Retirement{}, fmt.Errorf("get retirement %d: %w", id, err)
	}
	var r retire.Retirement
	if err := json.Unmarshal([]byte(doc), &r); err != nil {
		return retire.Retirement{}, fmt.Errorf("decode retirement %d: %w", id, err)
	}
	return r, nil
}

// ListRetirements returns the retirements in one of stages (all when
// none is given), oldest first.
func (s *Store) ListRetirements(ctx context.Context, stages ...retire.Stage) ([]retire.Retirement, error) {
	rows, err := s.pool.Query(ctx, `SELECT doc FROM retirements ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("list retirements: %w", err)
	}
	defer rows.Close()
	var out []retire.Retirement
	for rows.Next() {
		var doc string
		if err := rows.Scan(&doc); err != nil {
			return nil, fmt.Errorf("list retirements: %w", err)
		}
		var r retire.Retirement
		if err := json.Unmarshal([]byte(doc), &r); err != nil {
			return nil, fmt.Errorf("decode retirement: %w", err)
		}
		if len(stages) == 0 || slices.Contains(stages, r.Stage) {
			out = append(out, r)
		}
	}
	return out, rows.Err()
}

// nonNegative converts a count the schema keeps at 0 or more.
func nonNegative(n int64) uint64 {
	if n < 0 {
		return 0
	}
	return uint64(n)
}
