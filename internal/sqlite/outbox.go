package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/shipgate/shipgate/internal/audit"
	"github.com/shipgate/shipgate/internal/notify"
)

// This file is the notification outbox (package notify): the notifier's
// cursor in the audit log and the deliveries it queued.

// NotifyCursor returns the seq of the last audit event the notifier read;
// ok is false before its first run.
func (s *Store) NotifyCursor(ctx context.Context) (seq int64, ok bool, err error) {
	err = s.read.QueryRowContext(ctx, `SELECT seq FROM notification_cursor WHERE id = 1`).Scan(&seq)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("read notification cursor: %w", err)
	}
	return seq, true, nil
}

// LastAuditSeq returns the seq of the newest audit event, 0 when none.
func (s *Store) LastAuditSeq(ctx context.Context) (int64, error) {
	var seq int64
	if err := s.read.QueryRowContext(ctx, `SELECT COALESCE(max(seq), 0) FROM audit_events`).Scan(&seq); err != nil {
		return 0, fmt.Errorf("read last audit seq: %w", err)
	}
	return seq, nil
}

// AuditAfter returns up to limit audit events after seq, oldest first.
func (s *Store) AuditAfter(ctx context.Context, seq int64, limit int) ([]audit.Event, error) {
	events, err := s.queryAudit(ctx, `SELECT `+auditColumns+` FROM audit_events WHERE seq > ? ORDER BY seq LIMIT ?`, seq, limit)
	if err != nil {
		return nil, fmt.Errorf("read audit events after %d: %w", seq, err)
	}
	return events, nil
}

// EnqueueNotifications queues ds, skipping any whose event id and webhook
// are queued already, and, when cursor is 0 or more, moves the cursor to
// it, all in one transaction. It returns how many were new.
func (s *Store) EnqueueNotifications(ctx context.Context, cursor int64, ds []notify.Delivery) (int, error) {
	n := 0
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		now := formatTime(s.now())
		for _, d := range ds {
			next := now
			if !d.NextAt.IsZero() {
				next = formatTime(d.NextAt)
			}
			res, err := tx.ExecContext(ctx, `
INSERT INTO notification_outbox (event_id, event_type, webhook, payload, next_attempt_at, created_at) VALUES (?, ?, ?, ?, ?, ?)
ON CONFLICT (event_id, webhook) DO NOTHING`, d.EventID, d.EventType, d.Webhook, d.Payload, next, now)
			if err != nil {
				return err
			}
			added, err := res.RowsAffected()
			if err != nil {
				return err
			}
			n += int(added)
		}
		if cursor < 0 {
			return nil
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO notification_cursor (id, seq) VALUES (1, ?) ON CONFLICT (id) DO UPDATE SET seq = excluded.seq`, cursor)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("enqueue notifications: %w", err)
	}
	return n, nil
}

const outboxColumns = `id, event_id, event_type, webhook, payload, state, attempts, next_attempt_at, last_error, last_status, created_at, sent_at`

// DueNotifications returns up to limit pending deliveries to webhook
// whose next attempt is at or before now, oldest first.
func (s *Store) DueNotifications(ctx context.Context, webhook string, now time.Time, limit int) ([]notify.Delivery, error) {
	ds, err := s.queryOutbox(ctx, `SELECT `+outboxColumns+` FROM notification_outbox WHERE state = ? AND webhook = ? AND next_attempt_at <= ? ORDER BY id LIMIT ?`,
		notify.StatePending, webhook, formatTime(now), limit)
	if err != nil {
		return nil, fmt.Errorf("due notifications: %w", err)
	}
	return ds, nil
}

// UpdateNotification records the outcome of an attempt: d's state,
// attempts, next attempt, last error and status, and sent time.
func (s *Store) UpdateNotification(ctx context.Context, d notify.Delivery) error {
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `
UPDATE notification_outbox SET state = ?, attempts = ?, next_attempt_at = ?, last_error = ?, last_status = ?, sent_at = ? WHERE id = ?`,
			d.State, d.Attempts, formatTime(d.NextAt), d.LastError, d.LastStatus, formatOptionalTime(d.SentAt), d.ID)
		return err
	})
	if err != nil {
		return fmt.Errorf("update notification %d: %w", d.ID, err)
	}
	return nil
}

// ListNotifications returns up to limit deliveries in state ("" for all),
// newest first.
func (s *Store) ListNotifications(ctx context.Context, state string, limit int) ([]notify.Delivery, error) {
	if limit <= 0 {
		limit = 100
	}
	query, args := `SELECT `+outboxColumns+` FROM notification_outbox`, []any{}
	if state != "" {
		query, args = query+` WHERE state = ?`, append(args, state)
	}
	ds, err := s.queryOutbox(ctx, query+` ORDER BY id DESC LIMIT ?`, append(args, limit)...)
	if err != nil {
		return nil, fmt.Errorf("list notifications: %w", err)
	}
	return ds, nil
}

func (s *Store) queryOutbox(ctx context.Context, query string, args ...any) ([]notify.Delivery, error) {
	return queryOutbox(ctx, s.read, query, args...)
}

func queryOutbox(ctx context.Context, q rowsQuerier, query string, args ...any) ([]notify.Delivery, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer func() { _ = rows.Close() }()
	var out []notify.Delivery
	for rows.Next() {
		var (
			d                   notify.Delivery
			next, created, sent string
		)
		if err := rows.Scan(&d.ID, &d.EventID, &d.EventType, &d.Webhook, &d.Payload, &d.State, &d.Attempts, &next,
			&d.LastError, &d.LastStatus, &created, &sent); err != nil {
			return nil, err
		}
		if d.NextAt, err = parseTime(next); err != nil {
			return nil, err
		}
		if d.CreatedAt, err = parseTime(created); err != nil {
			return nil, err
		}
		if sent != "" {
			if d.SentAt, err = parseTime(sent); err != nil {
				return nil, err
			}
		}
		out = append(out, d)
	}
	return out, rows.Err()
}
