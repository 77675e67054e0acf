package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"

	"github.com/shipgate/shipgate/internal/flags"
)

// The store is the flags service's store too.
var _ flags.Store = (*Store)(nil)

// LoadFlags returns every flag and shared rule (segment).
func (s *Store) LoadFlags(ctx context.Context) ([]*flags.Flag, []flags.Segment, error) {
	return loadFlags(ctx, s.read)
}

func loadFlags(ctx context.Context, q rowsQuerier) ([]*flags.Flag, []flags.Segment, error) {
	rows, err := q.QueryContext(ctx, `SELECT key, doc FROM flags ORDER BY key`)
	if err != nil {
		return nil, nil, fmt.Errorf("load flags: %w", err)
	}
	defer func() { _ = rows.Close() }()
	var list []*flags.Flag
	for rows.Next() {
		var key, doc string
		if err := rows.Scan(&key, &doc); err != nil {
			return nil, nil, fmt.Errorf("load flags: %w", err)
		}
		f := &flags.Flag{}
		if err := json.Unmarshal([]byte(doc), f); err != nil {
			return nil, nil, fmt.Errorf("load flag %q: decode: %w", key, err)
		}
		f.Key = key
		list = append(list, f)
	}
	if err := rows.Err(); err != nil {
		return nil, nil, fmt.Errorf("load flags: %w", err)
	}

	srows, err := q.QueryContext(ctx, `SELECT name, rule FROM flag_segments ORDER BY name`)
	if err != nil {
		return nil, nil, fmt.Errorf("load segments: %w", err)
	}
	defer func() { _ = srows.Close() }()
	var segs []flags.Segment
	for srows.Next() {
		var sg flags.Segment
		var rule string
		if err := srows.Scan(&sg.Name, &rule); err != nil {
			return nil, nil, fmt.Errorf("load segments: %w", err)
		}
		sg.Rule = json.RawMessage(rule)
		segs = append(segs, sg)
	}
	if err := srows.Err(); err != nil {
		return nil, nil, fmt.Errorf("load segments: %w", err)
	}
	return list, segs, nil
}

// CommitFlags writes a flag change and its audit events in one
// transaction: either all of it is stored, or none.
func (s *Store) CommitFlags(ctx context.Context, c flags.Change) error {
	now := formatTime(s.now())
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		for _, f := range c.Put {
			doc, err := json.Marshal(f)
			if err != nil {
				return fmt.Errorf("encode flag %q: %w", f.Key, err)
			}
			if _, err := tx.ExecContext(ctx, `
INSERT INTO flags (key, doc, updated_at) VALUES (?, ?, ?)
ON CONFLICT (key) DO UPDATE SET doc = excluded.doc, updated_at = excluded.updated_at`, f.Key, string(doc), now); err != nil {
				return fmt.Errorf("put flag %q: %w", f.Key, err)
			}
		}
		for _, key := range c.Delete {
			if _, err := tx.ExecContext(ctx, `DELETE FROM flags WHERE key = ?`, key); err != nil {
				return fmt.Errorf("delete flag %q: %w", key, err)
			}
			// A flag made again under the same key starts with no history.
			if _, err := tx.ExecContext(ctx, `DELETE FROM flag_usage WHERE key = ?`, key); err != nil {
				return fmt.Errorf("delete usage of flag %q: %w", key, err)
			}
		}
		for _, sg := range c.PutSegments {
			if _, err := tx.ExecContext(ctx, `
INSERT INTO flag_segments (name, rule, updated_at) VALUES (?, ?, ?)
ON CONFLICT (name) DO UPDATE SET rule = excluded.rule, updated_at = excluded.updated_at`, sg.Name, string(sg.Rule), now); err != nil {
				return fmt.Errorf("put segment %q: %w", sg.Name, err)
			}
		}
		for _, name := range c.DeleteSegments {
			if _, err := tx.ExecContext(ctx, `DELETE FROM flag_segments WHERE name = ?`, name); err != nil {
				return fmt.Errorf("delete segment %q: %w", name, err)
			}
		}
		for _, key := range c.Delete {
			if _, err := tx.ExecContext(ctx, `DELETE FROM flag_guards WHERE key = ?`, key); err != nil {
				return fmt.Errorf("delete guarded rollout of flag %q: %w", key, err)
			}
		}
		for _, g := range c.Guards {
			doc, err := json.Marshal(g)
			if err != nil {
				return fmt.Errorf("encode guarded rollout of flag %q: %w", g.Key, err)
			}
			if _, err := tx.ExecContext(ctx, `
INSERT INTO flag_guards (key, phase, doc, updated_at) VALUES (?, ?, ?, ?)
ON CONFLICT (key) DO UPDATE SET phase = excluded.phase, doc = excluded.doc, updated_at = excluded.updated_at`, g.Key, g.Status.Phase, string(doc), now); err != nil {
				return fmt.Errorf("put guarded rollout of flag %q: %w", g.Key, err)
			}
		}
		return s.appendAudit(ctx, tx, c.Audit)
	})
	if err != nil {
		return fmt.Errorf("commit flag change: %w", err)
	}
	return nil
}

// FlagUsage returns the stored evaluation counts, by flag key.
func (s *Store) FlagUsage(ctx context.Context) (map[string]flags.Usage, error) {
	return flagUsage(ctx, s.read)
}

func flagUsage(ctx context.Context, q rowsQuerier) (map[string]flags.Usage, error) {
	rows, err := q.QueryContext(ctx, `SELECT key, variant, count, last_at FROM flag_usage`)
	if err != nil {
		return nil, fmt.Errorf("read flag usage: %w", err)
	}
	defer func() { _ = rows.Close() }()
	out := map[string]flags.Usage{}
	for rows.Next() {
		var (
			key, variant, last string
			count              int64
		)
		if err := rows.Scan(&key, &variant, &count, &last); err != nil {
			return nil, fmt.Errorf("read flag usage: %w", err)
		}
		t, err := parseTime(last)
		if err != nil {
			return nil, fmt.Errorf("read flag usage of %q: %w", key, err)
		}
		u, ok := out[key]
		if !ok {
			u = flags.Usage{Variants: map[string]uint64{}}
		}
		// Counts only ever grow from non-negative ones, and SQLite turns
		// a sum past 2^63 into a REAL, which Scan refuses.
		u.Variants[variant] += uint64(count) //nolint:gosec // see above
		if t.After(u.Last) {
			u.Last = t
		}
		out[key] = u
	}
	return out, rows.Err()
}

// AddFlagUsage adds evaluation counts to the stored ones, in one
// transaction.
func (s *Store) AddFlagUsage(ctx context.Context, counts map[string]flags.Usage) error {
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		for key, u := range counts {
			last := formatTime(s.orNow(u.Last))
			for variant, n := range u.Variants {
				if _, err := tx.ExecContext(ctx, `
INSERT INTO flag_usage (key, variant, count, last_at) VALUES (?, ?, ?, ?)
ON CONFLICT (key, variant) DO UPDATE SET count = count + excluded.count, last_at = max(last_at, excluded.last_at)`,
					key, variant, int64(n), last); err != nil { //nolint:gosec // counts of one flush are far below 2^63
					return fmt.Errorf("add usage of %q: %w", key, err)
				}
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("add flag usage: %w", err)
	}
	return nil
}

// LoadGuards returns the latest guarded rollout of each flag that had
// one, by flag key.
func (s *Store) LoadGuards(ctx context.Context) ([]flags.GuardRecord, error) {
	return loadGuards(ctx, s.read)
}

func loadGuards(ctx context.Context, q rowsQuerier) ([]flags.GuardRecord, error) {
	rows, err := q.QueryContext(ctx, `SELECT key, doc FROM flag_guards ORDER BY key`)
	if err != nil {
		return nil, fmt.Errorf("load guarded rollouts: %w", err)
	}
	defer func() { _ = rows.Close() }()
	var out []flags.GuardRecord
	for rows.Next() {
		var key, doc string
		if err := rows.Scan(&key, &doc); err != nil {
			return nil, fmt.Errorf("load guarded rollouts: %w", err)
		}
		var g flags.GuardRecord
		if err := json.Unmarshal([]byte(doc), &g); err != nil {
			return nil, fmt.Errorf("load guarded rollout of flag %q: decode: %w", key, err)
		}
		g.Key = key
		out = append(out, g)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("load guarded rollouts: %w", err)
	}
	return out, nil
}
