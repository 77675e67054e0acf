package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/shipgate/shipgate/internal/config"
	"github.com/shipgate/shipgate/internal/rollout"
)

// ConfigChannel is the PostgreSQL notification channel told of each new
// config revision (its ID as payload).
const ConfigChannel = "shipgate_config"

// ConfigRevision is one version of the apps' config that every server on
// the database runs: the app files as `shipgate apply -f` sent them or as
// a server read them from its -f path (at its first start on the
// database, or on SIGHUP).
type ConfigRevision struct {
	// ID numbers the revisions from 1, without gaps.
	ID    int64
	Files []config.File
	// Source names the files (the path, or the files applied); Actor and
	// Reason are who applied them and why; Server is the server that
	// recorded the revision.
	Source, Actor, Reason, Server string
	CreatedAt                     time.Time
}

// AddConfigRevision records rev as the revision after prev, the one the
// caller applied its change to. If another revision was recorded since
// (two applies at once), it records nothing and returns an error wrapping
// rollout.ErrConflict that names the revision in the store: each apply is
// made on the config every server runs, never on one another replaced.
// Any server may add a revision, leader or not: the write is not fenced.
func (s *Store) AddConfigRevision(ctx context.Context, prev int64, rev ConfigRevision) (ConfigRevision, error) {
	files, err := json.Marshal(rev.Files)
	if err != nil {
		return ConfigRevision{}, fmt.Errorf("record config revision: %w", err)
	}
	rev.ID = prev + 1
	rev.CreatedAt = s.orNow(rev.CreatedAt)
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return ConfigRevision{}, fmt.Errorf("record config revision: %w", err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	var latest int64
	if err := tx.QueryRow(ctx, `SELECT COALESCE(max(id), 0) FROM config_revisions`).Scan(&latest); err != nil {
		return ConfigRevision{}, fmt.Errorf("record config revision: %w", err)
	}
	if latest != prev {
		return ConfigRevision{}, fmt.Errorf("the config changed meanwhile: the store holds revision %d, this change was made on revision %d; apply again: %w", latest, prev, rollout.ErrConflict)
	}
	_, err = tx.Exec(ctx, `INSERT INTO config_revisions (id, files, source, actor, reason, server, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)`,
		rev.ID, string(files), rev.Source, rev.Actor, rev.Reason, rev.Server, formatTime(rev.CreatedAt))
	if isUniqueViolation(err) {
		return ConfigRevision{}, fmt.Errorf("the config changed meanwhile: another server recorded revision %d first; apply again: %w", rev.ID, rollout.ErrConflict)
	}
	if err != nil {
		return ConfigRevision{}, fmt.Errorf("record config revision %d: %w", rev.ID, err)
	}
	if _, err := tx.Exec(ctx, `SELECT pg_notify($1, $2)`, ConfigChannel, fmt.Sprint(rev.ID)); err != nil {
		return ConfigRevision{}, fmt.Errorf("record config revision %d: %w", rev.ID, err)
	}
	if err := tx.Commit(ctx); err != nil {
		return ConfigRevision{}, fmt.Errorf("record config revision %d: commit: %w", rev.ID, err)
	}
	return rev, nil
}

// LatestConfigRevision returns the newest config revision; found is false
// when none was recorded yet.
func (s *Store) LatestConfigRevision(ctx context.Context) (rev ConfigRevision, found bool, err error) {
	var files, created string
	err = s.pool.QueryRow(ctx, `SELECT id, files, source, actor, reason, server, created_at FROM config_revisions ORDER BY id DESC LIMIT 1`).
		Scan(&rev.ID, &files, &rev.Source, &rev.Actor, &rev.Reason, &rev.Server, &created)
	if isNoRows(err) {
		return ConfigRevision{}, false, nil
	}
	if err != nil {
		return ConfigRevision{}, false, fmt.Errorf("read the latest config revision: %w", err)
	}
	if err := json.Unmarshal([]byte(files), &rev.Files); err != nil {
		return ConfigRevision{}, false, fmt.Errorf("read config revision %d: %w", rev.ID, err)
	}
	if rev.CreatedAt, err = parseTime(created); err != nil {
		return ConfigRevision{}, false, fmt.Errorf("read config revision %d: %w", rev.ID, err)
	}
	return rev, true, nil
}
