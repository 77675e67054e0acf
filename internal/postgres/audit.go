package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/shipgate/shipgate/internal/audit"
)

// defaultAuditLimit is the page size of ListAudit when the filter gives none.
const defaultAuditLimit = 100

// appendAudit links events to the end of the chain and inserts them. It
// sets each event's Seq, PrevHash, Hash and, when zero, Time.
//
// The head row is locked first (FOR UPDATE): a writer on another
// connection or server waits here until this transaction ends, then reads
// the head this one left, so the chain never forks.
func (s *Store) appendAudit(ctx context.Context, tx pgx.Tx, events []audit.Event) error {
	if len(events) == 0 {
		return nil
	}
	var (
		lastSeq  int64
		lastHash string
	)
	if err := tx.QueryRow(ctx, `SELECT seq, hash FROM audit_head WHERE id = 1 FOR UPDATE`).Scan(&lastSeq, &lastHash); err != nil {
		return fmt.Errorf("lock end of audit chain: %w", err)
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
// continues the chain, and moves the head.
func insertAudit(ctx context.Context, tx pgx.Tx, e audit.Event) error {
	data := "{}"
	if len(e.Data) > 0 {
		b, err := json.Marshal(e.Data)
		if err != nil {
			return fmt.Errorf("encode audit event %d data: %w", e.Seq, err)
		}
		data = string(b)
	}
	if _, err := tx.Exec(ctx, `
INSERT INTO audit_events (seq, time, actor, action, subject, reason, outcome, data, prev_hash, hash)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
		e.Seq, formatTime(e.Time), e.Actor, e.Action, e.Subject, e.Reason, e.Outcome, data, e.PrevHash, e.Hash); err != nil {
		return fmt.Errorf("append audit event %d: %w", e.Seq, err)
	}
	return nil
}

// ListAudit returns the audit events matching f, newest first. f.Subject
// matches every subject that starts with it (exactly: no wildcards, case
// counts); a Limit of 0 or less means 100.
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
		args = append(args, f.Subject)
		where = append(where, "starts_with(subject, $"+strconv.Itoa(len(args))+")")
	}
	if f.Action != "" {
		args = append(args, f.Action)
		where = append(where, "action = $"+strconv.Itoa(len(args)))
	}
	query := `SELECT ` + auditColumns + ` FROM audit_events`
	if len(where) > 0 {
		query += ` WHERE ` + strings.Join(where, " AND ")
	}
	args = append(args, limit)
	query += ` ORDER BY seq DESC LIMIT $` + strconv.Itoa(len(args))
	events, err := queryAudit(ctx, s.pool, query, args...)
	if err != nil {
		return nil, fmt.Errorf("list audit events: %w", err)
	}
	return events, nil
}

// AuditChain returns every audit event from seq fromSeq on, in ascending
// order, for audit.Verify.
func (s *Store) AuditChain(ctx context.Context, fromSeq int64) ([]audit.Event, error) {
	events, err := queryAudit(ctx, s.pool, `SELECT `+auditColumns+` FROM audit_events WHERE seq >= $1 ORDER BY seq`, fromSeq)
	if err != nil {
		return nil, fmt.Errorf("read audit chain from seq %d: %w", fromSeq, err)
	}
	return events, nil
}

const auditColumns = `seq, time, actor, action, subject, reason, outcome, data, prev_hash, hash`

func queryAudit(ctx context.Context, q querier, query string, args ...any) ([]audit.Event, error) {
	rows, err := q.Query(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
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
