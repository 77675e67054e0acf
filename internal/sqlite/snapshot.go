package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"sort"

	"github.com/shipgate/shipgate/internal/audit"
	"github.com/shipgate/shipgate/internal/auth"
	"github.com/shipgate/shipgate/internal/rollout"
	"github.com/shipgate/shipgate/internal/store"
)

var _ store.Store = (*Store)(nil)

// snapshotTables are every table Export reads and Import writes.
var snapshotTables = []string{"releases", "rollouts", "env_states", "audit_events", "tokens", "flags", "flag_segments", "flag_usage",
	"release_changes", "incidents", "notification_cursor", "notification_outbox", "test_runs", "test_results",
	"route_usage", "route_tracking", "retirements", "flag_guards"}

// Export reads the whole store in one read transaction, so that what it
// returns is one moment's state even while the server writes.
func (s *Store) Export(ctx context.Context) (*store.Snapshot, error) {
	tx, err := s.read.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, fmt.Errorf("export: begin: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	snap := &store.Snapshot{}

	rows, err := tx.QueryContext(ctx, `SELECT app, version FROM releases ORDER BY created_at, app, version`)
	if err != nil {
		return nil, fmt.Errorf("export releases: %w", err)
	}
	var keys [][2]string
	for rows.Next() {
		var k [2]string
		if err := rows.Scan(&k[0], &k[1]); err != nil {
			_ = rows.Close()
			return nil, fmt.Errorf("export releases: %w", err)
		}
		keys = append(keys, k)
	}
	_ = rows.Close()
	for _, k := range keys {
		r, err := getRelease(ctx, tx, k[0], k[1])
		if err != nil {
			return nil, fmt.Errorf("export release %s %s: %w", k[0], k[1], err)
		}
		snap.Releases = append(snap.Releases, r)
	}
	if snap.Rollouts, err = queryRollouts(ctx, tx, `SELECT id, doc FROM rollouts ORDER BY id`); err != nil {
		return nil, fmt.Errorf("export rollouts: %w", err)
	}
	envRows, err := tx.QueryContext(ctx, `SELECT doc FROM env_states ORDER BY app, env`)
	if err != nil {
		return nil, fmt.Errorf("export env states: %w", err)
	}
	for envRows.Next() {
		var doc string
		var e rollout.EnvState
		if err := envRows.Scan(&doc); err != nil {
			_ = envRows.Close()
			return nil, fmt.Errorf("export env states: %w", err)
		}
		if err := json.Unmarshal([]byte(doc), &e); err != nil {
			_ = envRows.Close()
			return nil, fmt.Errorf("export env states: decode: %w", err)
		}
		snap.Envs = append(snap.Envs, e)
	}
	_ = envRows.Close()
	if snap.Audit, err = queryAudit(ctx, tx, `SELECT `+auditColumns+` FROM audit_events ORDER BY seq`); err != nil {
		return nil, fmt.Errorf("export audit: %w", err)
	}
	tokRows, err := tx.QueryContext(ctx, `SELECT name, role, created_at, secret_hash FROM tokens ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("export tokens: %w", err)
	}
	for tokRows.Next() {
		var (
			t             store.Token
			role, created string
		)
		if err := tokRows.Scan(&t.Name, &role, &created, &t.SecretHash); err != nil {
			_ = tokRows.Close()
			return nil, fmt.Errorf("export tokens: %w", err)
		}
		t.Role = auth.Role(role)
		if t.CreatedAt, err = parseTime(created); err != nil {
			_ = tokRows.Close()
			return nil, fmt.Errorf("export tokens: %w", err)
		}
		snap.Tokens = append(snap.Tokens, t)
	}
	_ = tokRows.Close()
	if snap.Flags, snap.Segments, err = loadFlags(ctx, tx); err != nil {
		return nil, fmt.Errorf("export: %w", err)
	}
	if snap.Usage, err = flagUsage(ctx, tx); err != nil {
		return nil, fmt.Errorf("export: %w", err)
	}
	if err := exportHistory(ctx, tx, snap); err != nil {
		return nil, fmt.Errorf("export: %w", err)
	}
	if snap.Secrets, err = exportSecrets(ctx, tx); err != nil {
		return nil, fmt.Errorf("export: %w", err)
	}
	return snap, nil
}

// Import writes snap into this store, which must be empty, in one
// transaction: rollouts keep their IDs, audit events their sequence
// numbers and hashes (the chain trigger checks each link as it goes in).
func (s *Store) Import(ctx context.Context, snap *store.Snapshot) error {
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		for _, table := range snapshotTables {
			var n int
			if err := tx.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM `+table+`)`).Scan(&n); err != nil {
				return fmt.Errorf("check %s is empty: %w", table, err)
			}
			if n != 0 {
				return fmt.Errorf("%w: table %s has rows; import into a new database (%w)", store.ErrNotEmpty, table, rollout.ErrConflict)
			}
		}
		for _, r := range snap.Releases {
			vars, err := marshalVars(r.Vars)
			if err != nil {
				return err
			}
			checks, err := marshalChecks(r.Checks)
			if err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO releases (app, version, commit_sha, vars, created_at, commit_time, checks, image) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
				r.App, r.Version, r.Commit, vars, formatTime(r.CreatedAt), formatOptionalTime(r.CommitTime), checks, r.Image); err != nil {
				return fmt.Errorf("import release %s %s: %w", r.App, r.Version, err)
			}
		}
		for _, r := range snap.Rollouts {
			doc, err := json.Marshal(r)
			if err != nil {
				return fmt.Errorf("encode rollout %d: %w", r.ID, err)
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO rollouts (id, app, env, phase, created_at, updated_at, doc) VALUES (?, ?, ?, ?, ?, ?, ?)`,
				r.ID, r.App, r.Env, string(r.Phase), formatTime(r.CreatedAt), formatTime(r.UpdatedAt), string(doc)); err != nil {
				return fmt.Errorf("import rollout %d: %w", r.ID, err)
			}
		}
		for _, e := range snap.Envs {
			if err := putEnvState(ctx, tx, e); err != nil {
				return err
			}
		}
		events := append([]audit.Event(nil), snap.Audit...)
		sort.Slice(events, func(i, j int) bool { return events[i].Seq < events[j].Seq })
		for _, e := range events {
			if err := insertAudit(ctx, tx, e); err != nil {
				return err
			}
		}
		for _, t := range snap.Tokens {
			if _, err := tx.ExecContext(ctx, `INSERT INTO tokens (name, role, secret_hash, created_at) VALUES (?, ?, ?, ?)`,
				t.Name, string(t.Role), t.SecretHash, formatTime(t.CreatedAt)); err != nil {
				return fmt.Errorf("import token %q: %w", t.Name, err)
			}
		}
		now := formatTime(s.now())
		for _, f := range snap.Flags {
			doc, err := json.Marshal(f)
			if err != nil {
				return fmt.Errorf("encode flag %q: %w", f.Key, err)
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO flags (key, doc, updated_at) VALUES (?, ?, ?)`, f.Key, string(doc), now); err != nil {
				return fmt.Errorf("import flag %q: %w", f.Key, err)
			}
		}
		for _, sg := range snap.Segments {
			if _, err := tx.ExecContext(ctx, `INSERT INTO flag_segments (name, rule, updated_at) VALUES (?, ?, ?)`, sg.Name, string(sg.Rule), now); err != nil {
				return fmt.Errorf("import segment %q: %w", sg.Name, err)
			}
		}
		for key, u := range snap.Usage {
			for variant, n := range u.Variants {
				if _, err := tx.ExecContext(ctx, `INSERT INTO flag_usage (key, variant, count, last_at) VALUES (?, ?, ?, ?)`,
					key, variant, int64(n), formatTime(s.orNow(u.Last))); err != nil { //nolint:gosec // stored counts are below 2^63
					return fmt.Errorf("import usage of %q: %w", key, err)
				}
			}
		}
		if err := importHistory(ctx, tx, snap); err != nil {
			return err
		}
		return importSecrets(ctx, tx, snap.Secrets)
	})
	if err != nil {
		return fmt.Errorf("import: %w", err)
	}
	return nil
}
