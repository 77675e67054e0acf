package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// ErrSchemaTooNew means the database was migrated by a newer Shipgate than
// this one: its schema has steps this binary does not know.
var ErrSchemaTooNew = errors.New("database schema is newer than this shipgate knows")

// migrations are the schema steps, in order; step i brings the schema to
// version i+1. A released step is never edited: change the schema by
// appending a step.
var migrations = []string{
	// 1: the initial schema.
	`
CREATE TABLE releases (
	app        TEXT NOT NULL,
	version    TEXT NOT NULL,
	commit_sha TEXT NOT NULL,
	vars       TEXT NOT NULL CHECK (json_valid(vars)),
	created_at TEXT NOT NULL,
	PRIMARY KEY (app, version)
);

CREATE TABLE rollouts (
	id         INTEGER PRIMARY KEY AUTOINCREMENT,
	app        TEXT NOT NULL,
	env        TEXT NOT NULL,
	phase      TEXT NOT NULL,
	created_at TEXT NOT NULL,
	updated_at TEXT NOT NULL,
	doc        TEXT NOT NULL CHECK (json_valid(doc))
);
CREATE INDEX rollouts_app_env ON rollouts (app, env, id);
CREATE INDEX rollouts_phase ON rollouts (phase);

CREATE TABLE env_states (
	app        TEXT NOT NULL,
	env        TEXT NOT NULL,
	updated_at TEXT NOT NULL,
	doc        TEXT NOT NULL CHECK (json_valid(doc)),
	PRIMARY KEY (app, env)
);

CREATE TABLE audit_events (
	seq       INTEGER PRIMARY KEY CHECK (seq > 0),
	time      TEXT NOT NULL,
	actor     TEXT NOT NULL CHECK (actor <> ''),
	action    TEXT NOT NULL CHECK (action <> ''),
	subject   TEXT NOT NULL,
	reason    TEXT NOT NULL,
	outcome   TEXT NOT NULL,
	data      TEXT NOT NULL CHECK (json_valid(data)),
	prev_hash TEXT NOT NULL,
	hash      TEXT NOT NULL UNIQUE CHECK (length(hash) = 64)
);
CREATE INDEX audit_events_subject ON audit_events (subject);
CREATE INDEX audit_events_action ON audit_events (action);

-- The audit log is append-only in the database itself, whoever writes to it.
CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events
BEGIN
	SELECT RAISE(ABORT, 'audit_events is append-only: UPDATE is not allowed');
END;
CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events
BEGIN
	SELECT RAISE(ABORT, 'audit_events is append-only: DELETE is not allowed');
END;
-- A new event must continue the chain: the next seq, linked to the last hash.
CREATE TRIGGER audit_events_chain BEFORE INSERT ON audit_events
WHEN NEW.seq IS NOT COALESCE((SELECT max(seq) FROM audit_events), 0) + 1
  OR NEW.prev_hash IS NOT COALESCE((SELECT hash FROM audit_events ORDER BY seq DESC LIMIT 1), '')
BEGIN
	SELECT RAISE(ABORT, 'audit_events: seq and prev_hash must continue the chain');
END;

CREATE TABLE tokens (
	name        TEXT PRIMARY KEY,
	role        TEXT NOT NULL,
	secret_hash TEXT NOT NULL UNIQUE,
	created_at  TEXT NOT NULL
);
`,
	// 2: releases carry CI check results and their commit's time.
	`
ALTER TABLE releases ADD COLUMN commit_time TEXT NOT NULL DEFAULT '';
ALTER TABLE releases ADD COLUMN checks TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(checks));
`,
	// 3: feature flags (flagd definitions), shared rules and evaluation counts.
	`
CREATE TABLE flags (
	key        TEXT PRIMARY KEY,
	doc        TEXT NOT NULL CHECK (json_valid(doc)),
	updated_at TEXT NOT NULL
);
CREATE TABLE flag_segments (
	name       TEXT PRIMARY KEY,
	rule       TEXT NOT NULL CHECK (json_valid(rule)),
	updated_at TEXT NOT NULL
);
CREATE TABLE flag_usage (
	key     TEXT NOT NULL,
	variant TEXT NOT NULL,
	count   INTEGER NOT NULL CHECK (count >= 0),
	last_at TEXT NOT NULL,
	PRIMARY KEY (key, variant)
);
`,
	// 4: DORA: the commits and size of each release's change, and incidents
	// linked to the deploy that caused them and the one that fixed them.
	`
CREATE TABLE release_changes (
	app        TEXT NOT NULL,
	version    TEXT NOT NULL,
	commits    TEXT NOT NULL CHECK (json_valid(commits)),
	files      INTEGER,
	lines      INTEGER,
	prs        INTEGER,
	updated_at TEXT NOT NULL,
	PRIMARY KEY (app, version)
);
CREATE TABLE incidents (
	id            INTEGER PRIMARY KEY AUTOINCREMENT,
	app           TEXT NOT NULL,
	env           TEXT NOT NULL,
	deploy_id     INTEGER NOT NULL DEFAULT 0,
	fix_deploy_id INTEGER NOT NULL DEFAULT 0,
	title         TEXT NOT NULL,
	opened_at     TEXT NOT NULL,
	resolved_at   TEXT NOT NULL DEFAULT ''
);
CREATE INDEX incidents_app_env ON incidents (app, env, id);
`,
	// 5: the notification outbox: one row per event and webhook, so an event
	// is queued once; the cursor is the last audit event the notifier read.
	`
CREATE TABLE notification_cursor (
	id  INTEGER PRIMARY KEY CHECK (id = 1),
	seq INTEGER NOT NULL
);
CREATE TABLE notification_outbox (
	id              INTEGER PRIMARY KEY AUTOINCREMENT,
	event_id        TEXT NOT NULL,
	event_type      TEXT NOT NULL,
	webhook         TEXT NOT NULL,
	payload         BLOB NOT NULL,
	state           TEXT NOT NULL DEFAULT 'pending',
	attempts        INTEGER NOT NULL DEFAULT 0,
	next_attempt_at TEXT NOT NULL,
	last_error      TEXT NOT NULL DEFAULT '',
	last_status     INTEGER NOT NULL DEFAULT 0,
	created_at      TEXT NOT NULL,
	sent_at         TEXT NOT NULL DEFAULT '',
	UNIQUE (event_id, webhook)
);
CREATE INDEX notification_outbox_due ON notification_outbox (state, next_attempt_at);
`,
	// 6: test runs of releases (JUnit uploads) and each test's attempts in them.
	`
CREATE TABLE test_runs (
	id             INTEGER PRIMARY KEY AUTOINCREMENT,
	app            TEXT NOT NULL,
	version        TEXT NOT NULL,
	commit_sha     TEXT NOT NULL,
	at             TEXT NOT NULL,
	ci_duration_ms INTEGER NOT NULL CHECK (ci_duration_ms >= 0),
	infra          INTEGER NOT NULL,
	counts         TEXT NOT NULL CHECK (json_valid(counts))
);
CREATE INDEX test_runs_app ON test_runs (app, at);
CREATE INDEX test_runs_version ON test_runs (app, version);
CREATE TABLE test_results (
	run_id      INTEGER NOT NULL REFERENCES test_runs (id),
	test_id     TEXT NOT NULL,
	file        TEXT NOT NULL,
	level       TEXT NOT NULL,
	attempts    TEXT NOT NULL,
	duration_ms INTEGER NOT NULL,
	message     TEXT NOT NULL,
	PRIMARY KEY (run_id, test_id)
);
CREATE INDEX test_results_test ON test_results (test_id);
`,
	// 7: route traffic per path prefix and day, and retirements.
	`
CREATE TABLE route_usage (
	env     TEXT NOT NULL,
	prefix  TEXT NOT NULL,
	day     TEXT NOT NULL,
	count   INTEGER NOT NULL CHECK (count >= 0),
	last_at TEXT NOT NULL,
	PRIMARY KEY (env, prefix, day)
);
CREATE TABLE route_tracking (
	env   TEXT PRIMARY KEY,
	since TEXT NOT NULL
);
CREATE TABLE retirements (
	id         INTEGER PRIMARY KEY AUTOINCREMENT,
	stage      TEXT NOT NULL,
	updated_at TEXT NOT NULL,
	doc        TEXT NOT NULL CHECK (json_valid(doc))
);
`,
	// 8: the server's own secrets (the key of the release digests).
	`
CREATE TABLE server_secrets (
	name       TEXT PRIMARY KEY,
	value      BLOB NOT NULL CHECK (length(value) >= 32),
	created_at TEXT NOT NULL
);
`,
	// 9: guarded flag rollouts, the latest of each flag, so that a
	// restarted server or a new leader resumes them at their step.
	`
CREATE TABLE flag_guards (
	key        TEXT PRIMARY KEY,
	phase      TEXT NOT NULL,
	doc        TEXT NOT NULL CHECK (json_valid(doc)),
	updated_at TEXT NOT NULL
);
`,
	// 10: a release's own container image (deploy --image); '' for none.
	`
ALTER TABLE releases ADD COLUMN image TEXT NOT NULL DEFAULT '';
`,
}

// migrate brings the schema of db up to date, one transaction per step. It
// is safe to run concurrently from several processes: each step re-reads
// the version under the write lock and skips itself if another process
// applied it first.
func migrate(ctx context.Context, db *sql.DB) error {
	if _, err := db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
	version    INTEGER PRIMARY KEY,
	applied_at TEXT NOT NULL
)`); err != nil {
		return fmt.Errorf("create schema_migrations: %w", err)
	}
	current, err := schemaVersion(ctx, db)
	if err != nil {
		return err
	}
	if current > len(migrations) {
		return tooNew(current)
	}
	for version := current + 1; version <= len(migrations); version++ {
		if err := migrateStep(ctx, db, version, migrations[version-1]); err != nil {
			return err
		}
	}
	return nil
}

func migrateStep(ctx context.Context, db *sql.DB, version int, step string) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("migrate to schema version %d: begin: %w", version, err)
	}
	defer func() { _ = tx.Rollback() }()

	current, err := schemaVersion(ctx, tx)
	if err != nil {
		return err
	}
	if current > len(migrations) {
		return tooNew(current)
	}
	if current >= version {
		return nil
	}
	if current != version-1 {
		return fmt.Errorf("migrate to schema version %d: database is at version %d", version, current)
	}
	if _, err := tx.ExecContext(ctx, step); err != nil {
		return fmt.Errorf("migrate to schema version %d: %w", version, err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)`,
		version, formatTime(time.Now())); err != nil {
		return fmt.Errorf("migrate to schema version %d: record version: %w", version, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("migrate to schema version %d: commit: %w", version, err)
	}
	return nil
}

func tooNew(current int) error {
	return fmt.Errorf("%w: schema version %d, this shipgate knows up to %d; run a shipgate at least as new as the one that last opened it",
		ErrSchemaTooNew, current, len(migrations))
}

type querier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

func schemaVersion(ctx context.Context, q querier) (int, error) {
	var v int
	if err := q.QueryRowContext(ctx, `SELECT COALESCE(max(version), 0) FROM schema_migrations`).Scan(&v); err != nil {
		return 0, fmt.Errorf("read schema version: %w", err)
	}
	return v, nil
}
