package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/shipgate/shipgate/internal/audit"
	"github.com/shipgate/shipgate/internal/notify"
)

// This file is the notification outbox (package notify): the notifier's
// cursor in the audit log and the deliveries it queued.

// NotifyCursor returns the seq of the last audit event the notifier read;
// ok is false before its first run.
func (s *Store) NotifyCursor(ctx context.Context) (seq int64, ok bool, err error) {
	err = s.pool.QueryRow(ctx, `SELECT seq FROM notification_cursor WHERE id = 1`).Scan(&seq)
	if isNoRows(err) {
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
	if err := s.pool.QueryRow(ctx, `SELECT seq FROM audit_head WHERE id = 1`).Scan(&seq); err != nil {
		return 0, fmt.Errorf("read last audit seq: %w", err)
	}
	return seq, nil
}

// AuditAfter returns up to limit audit events after seq, oldest first.
func (s *Store) AuditAfter(ctx context.Context, seq int64, limit int) ([]audit.Event, error) {
	events, err := queryAudit(ctx, s.pool, `SELECT `+auditColumns+` FROM audit_events WHERE seq > $1 ORDER BY seq LIMIT $2`, seq, limit)
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
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		n = 0 // a retried transaction counts again
		now := formatTime(s.now())
		for _, d := range ds {
			next := now
			if !d.NextAt.IsZero() {
				next = formatTime(d.NextAt)
			}
			payload := d.Payload
			if payload == nil {
				payload = []byte{}
			}
			tag, err := tx.Exec(ctx, `
INSERT INTO notification_outbox (event_id, event_type, webhook, payload, next_attempt_at, created_at) VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (event_id, webhook) DO NOTHING`, d.EventID, d.EventType, d.Webhook, payload, next, now)
			if err != nil {
				return err
			}
			n += int(tag.RowsAffected())
		}
		if cursor < 0 {
			return nil
		}
		_, err := tx.Exec(ctx, `INSERT INTO notification_cursor (id, seq) VALUES (1, $1) ON CONFLICT (id) DO UPDATE SET seq = excluded.seq`, cursor)
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
	ds, err := queryOutbox(ctx, s.pool, `SELECT `+outboxColumns+` FROM notification_outbox WHERE state = $1 AND webhook = $2 AND next_attempt_at <= $3 ORDER BY id LIMIT $4`,
		notify.StatePending, webhook, formatTime(now), limit)
	if err != nil {
		return nil, fmt.Errorf("due notifications: %w", err)
	}
	return ds, nil
}

// UpdateNotification records the outcome of an attempt: d's state,
// attempts, next attempt, last error and status, and sent time.
func (s *Store) UpdateNotification(ctx context.Context, d notify.Delivery) error {
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `
UPDATE notification_outbox SET state = $1, attempts = $2, next_attempt_at = $3, last_error = $4, last_status = $5, sent_at = $6 WHERE id = $7`,
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
		query, args = query+` WHERE state = $1`, append(args, state)
	}
	args = append(args, limit)
	ds, err := queryOutbox(ctx, s.pool, query+fmt.Sprintf(` ORDER BY id DESC LIMIT $%d`, len(args)), args...)
	if err != nil {
		return nil, fmt.Errorf("list notifications: %w", err)
	}
	return ds, nil
}

func queryOutbox(ctx context.Context, q querier, query string, args ...any) ([]notify.Delivery, error) {
	rows, err := q.Query(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
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
