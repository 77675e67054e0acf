package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/shipgate/shipgate/internal/audit"
)

// defaultAuditLimit is the page size of ListAudit when the filter gives none.
const defaultAuditLimit = 100

// appendAudit links events to the end of the chain and inserts them. It
// sets each event's Seq, PrevHash, Hash and, when zero, Time.
func (s *Store) appendAudit(ctx context.Context, tx *sql.Tx, events []audit.Event) error {
	if len(events) == 0 {
		return nil
	}
	var (
		lastSeq  int64
		lastHash string
	)
	err := tx.QueryRowContext(ctx, `SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1`).Scan(&lastSeq, &lastHash)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("read end of audit chain: %w", err)
	}
	for i := range events {
		e := &events[i]
		if e.Actor == "" || e.Action == "" {
			return fmt.Errorf("audit event %d of %d (%q on %q): actor and action are required", i+1, len(events), e.Action, e.Subject)
		}
		e.Seq = lastSeq + 1
		e.PrevHash = lastHash
		e.Time = s.orNow(e.Time).UTC()
		e.Hash = e.ComputeHash()

		if err := insertAudit(ctx, tx, *e); err != nil {
			return err
		}
		lastSeq, lastHash = e.Seq, e.Hash
	}
	return nil
}

// insertAudit inserts e as it is; the chain trigger refuses it unless it
// continues the chain.
func insertAudit(ctx context.Context, tx *sql.Tx, e audit.Event) error {
	data := "{}"
	if len(e.Data) > 0 {
		b, err := json.Marshal(e.Data)
		if err != nil {
			return fmt.Errorf("encode audit event %d data: %w", e.Seq, err)
		}
		data = string(b)
	}
	if _, err := tx.ExecContext(ctx, `
INSERT INTO audit_events (seq, time, actor, action, subject, reason, outcome, data, prev_hash, hash)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		e.Seq, formatTime(e.Time), e.Actor, e.Action, e.Subject, e.Reason, e.Outcome, data, e.PrevHash, e.Hash); err != nil {
		return fmt.Errorf("append audit event %d: %w", e.Seq, err)
	}
	return nil
}

// ListAudit returns the audit events matching f, newest first. f.Subject
// matches every subject that starts with it; a Limit of 0 or less means 100.
func (s *Store) ListAudit(ctx context.Context, f audit.Filter) ([]audit.Event, error) {
	limit := f.Limit
	if limit <= 0 {
		limit = defaultAuditLimit
	}
	var (
		where []string
		args  []any
	)
	if f.Subject != "" {
		// A range rather than LIKE, which would treat '%' and '_' in the
		// prefix as wildcards and ignore case. No UTF-8 text holds the
		// byte 0xff, so every subject with the prefix sorts below it.
		where = append(where, "subject >= ? AND subject < ?")
		args = append(args, f.Subject, f.Subject+"\xff")
	}
	if f.Action != "" {
		where, args = append(where, "action = ?"), append(args, f.Action)
	}
	query := `SELECT ` + auditColumns + ` FROM audit_events`
	if len(where) > 0 {
		query += ` WHERE ` + strings.Join(where, " AND ")
	}
	query += ` ORDER BY seq DESC LIMIT ?`
	events, err := s.queryAudit(ctx, query, append(args, limit)...)
	if err != nil {
		return nil, fmt.Errorf("list audit events: %w", err)
	}
	return events, nil
}

// AuditChain returns every audit event from seq fromSeq on, in ascending
// order, for audit.Verify.
func (s *Store) AuditChain(ctx context.Context, fromSeq int64) ([]audit.Event, error) {
	events, err := s.queryAudit(ctx, `SELECT `+auditColumns+` FROM audit_events WHERE seq >= ? ORDER BY seq`, fromSeq)
	if err != nil {
		return nil, fmt.Errorf("read audit chain from seq %d: %w", fromSeq, err)
	}
	return events, nil
}

const auditColumns = `seq, time, actor, action, subject, reason, outcome, data, prev_hash, hash`

func (s *Store) queryAudit(ctx context.Context, query string, args ...any) ([]audit.Event, error) {
	return queryAudit(ctx, s.read, query, args...)
}

// rowsQuerier is a *sql.DB or a *sql.Tx.
type rowsQuerier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

func queryAudit(ctx context.Context, q rowsQuerier, query string, args ...any) ([]audit.Event, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer func() { _ = rows.Close() }()
	var events []audit.Event
	for rows.Next() {
		var (
			e          audit.Event
			when, data string
		)
		if err := rows.Scan(&e.Seq, &when, &e.Actor, &e.Action, &e.Subject, &e.Reason, &e.Outcome, &data, &e.PrevHash, &e.Hash); err != nil {
			return nil, err
		}
		if e.Time, err = parseTime(when); err != nil {
			return nil, fmt.Errorf("audit event %d: %w", e.Seq, err)
		}
		if err := json.Unmarshal([]byte(data), &e.Data); err != nil {
			return nil, fmt.Errorf("audit event %d: decode data: %w", e.Seq, err)
		}
		if len(e.Data) == 0 {
			e.Data = nil
		}
		events = append(events, e)
	}
	return events, rows.Err()
}
