package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/shipgate/shipgate/internal/audit"
	"github.com/shipgate/shipgate/internal/retire"
	"github.com/shipgate/shipgate/internal/rollout"
)

// The store is the retirements' journal.
var _ retire.Journal = (*Store)(nil)

// RouteCount is the traffic of one path prefix (retire.RouteCount).
type RouteCount = retire.RouteCount

// TrackRoutes records that the traffic of env is counted from now on,
// unless it already was.
func (s *Store) TrackRoutes(ctx context.Context, env string, now time.Time) error {
	return s.inTx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO route_tracking (env, since) VALUES (?, ?) ON CONFLICT (env) DO NOTHING`, env, formatTime(now))
		return err
	})
}

// TrackedSince returns when the first environment's traffic began to be
// counted, zero before any.
func (s *Store) TrackedSince(ctx context.Context) (time.Time, error) {
	var since sql.NullString
	if err := s.read.QueryRowContext(ctx, `SELECT min(since) FROM route_tracking`).Scan(&since); err != nil {
		return time.Time{}, fmt.Errorf("read route tracking: %w", err)
	}
	if !since.Valid {
		return time.Time{}, nil
	}
	return parseTime(since.String)
}

// AddRouteUsage adds request counts per path prefix of env to the day of
// their last request.
func (s *Store) AddRouteUsage(ctx context.Context, env string, deltas map[string]RouteCount) error {
	if len(deltas) == 0 {
		return nil
	}
	return s.inTx(ctx, func(tx *sql.Tx) error {
		for prefix, d := range deltas {
			last := d.Last.UTC()
			if _, err := tx.ExecContext(ctx, `
INSERT INTO route_usage (env, prefix, day, count, last_at) VALUES (?, ?, ?, ?, ?)
ON CONFLICT (env, prefix, day) DO UPDATE SET count = count + excluded.count, last_at = max(last_at, excluded.last_at)`,
				env, prefix, last.Format(time.DateOnly), d.Count, formatTime(last)); err != nil {
				return fmt.Errorf("add route usage of %s %s: %w", env, prefix, err)
			}
		}
		return nil
	})
}

// RouteUsage returns the traffic of a path prefix of env: every request
// counted, those of the days whose last request came after since (a day
// counts whole: the answer errs on the side of "used"), the last one, and
// since when env is counted.
func (s *Store) RouteUsage(ctx context.Context, env, prefix string, since time.Time) (retire.Usage, error) {
	var u retire.Usage
	var last, tracked sql.NullString
	var total, recent sql.NullInt64
	err := s.read.QueryRowContext(ctx, `
SELECT sum(count), sum(CASE WHEN last_at > ? THEN count ELSE 0 END), max(last_at) FROM route_usage WHERE env = ? AND prefix = ?`,
		formatTime(since), env, prefix).Scan(&total, &recent, &last)
	if err != nil {
		return u, fmt.Errorf("read route usage: %w", err)
	}
	u.Total, u.Since = nonNegative(total.Int64), nonNegative(recent.Int64)
	if last.Valid {
		if u.Last, err = parseTime(last.String); err != nil {
			return u, err
		}
	}
	err = s.read.QueryRowContext(ctx, `SELECT since FROM route_tracking WHERE env = ?`, env).Scan(&tracked)
	switch {
	case errors.Is(err, sql.ErrNoRows):
	case err != nil:
		return u, fmt.Errorf("read route tracking: %w", err)
	default:
		if u.TrackedSince, err = parseTime(tracked.String); err != nil {
			return u, err
		}
	}
	return u, nil
}

// MoveRouteCounters moves the counts and the tracking of from to to,
// unless to is counted already.
func (s *Store) MoveRouteCounters(ctx context.Context, from, to string) error {
	return s.inTx(ctx, func(tx *sql.Tx) error {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM route_tracking WHERE env = ?`, to).Scan(&n); err != nil || n > 0 {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE route_tracking SET env = ? WHERE env = ?`, to, from); err != nil {
			return fmt.Errorf("move route tracking of %s to %s: %w", from, to, err)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE route_usage SET env = ? WHERE env = ?`, to, from); err != nil {
			return fmt.Errorf("move route usage of %s to %s: %w", from, to, err)
		}
		return nil
	})
}

// Save stores a retirement (setting its ID the first time) with the audit
// event of its stage, in one transaction.
func (s *Store) Save(ctx context.Context, r *retire.Retirement, actor, action, detail string) error {
	return s.inTx(ctx, func(tx *sql.Tx) error {
		now := formatTime(s.now())
		if r.ID == 0 {
			res, err := tx.ExecContext(ctx, `INSERT INTO retirements (stage, updated_at, doc) VALUES (?, ?, '{}')`, string(r.Stage), now)
			if err != nil {
				return err
			}
			if r.ID, err = res.LastInsertId(); err != nil {
				return err
			}
		}
		doc, err := json.Marshal(r)
		if err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, `UPDATE retirements SET stage = ?, updated_at = ?, doc = ? WHERE id = ?`, string(r.Stage), now, string(doc), r.ID)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return fmt.Errorf("retirement %d: %w", r.ID, rollout.ErrNotFound)
		}
		ev := audit.Event{Time: s.now().UTC(), Actor: actor, Action: action, Subject: "retire/" + string(r.Kind) + "/" + strings.TrimPrefix(r.Subject, "/"),
			Reason: detail, Outcome: "ok", Data: map[string]string{"retirement": fmt.Sprint(r.ID), "stage": string(r.Stage), "env": r.Env}}
		if r.Stage == retire.StageFailed || r.Stage == retire.StageRefused {
			ev.Outcome = "failed"
		}
		return s.appendAudit(ctx, tx, []audit.Event{ev})
	})
}

// GetRetirement returns a retirement, or an error wrapping
// rollout.ErrNotFound.
func (s *Store) GetRetirement(ctx context.Context, id int64) (retire.Retirement, error) {
	var doc string
	err := s.read.QueryRowContext(ctx, `SELECT doc FROM retirements WHERE id = ?`, id).Scan(&doc)
	if errors.Is(err, sql.ErrNoRows) {
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
	rows, err := s.read.QueryContext(ctx, `SELECT doc FROM retirements ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("list retirements: %w", err)
	}
	defer func() { _ = rows.Close() }()
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
		if len(stages) == 0 || containsStage(stages, r.Stage) {
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

func containsStage(list []retire.Stage, s retire.Stage) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
