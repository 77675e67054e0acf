package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/shipgate/shipgate/internal/rollout"
)

// Command states.
const (
	CommandPending = "pending" // accepted, not yet claimed by a leader
	CommandRunning = "running" // claimed by the leader of Term
	CommandDone    = "done"    // carried out; Result holds the answer
	CommandFailed  = "failed"  // refused; Error holds why
)

// Channels of the change feed (NOTIFY): CommandsChannel carries a
// command's id when it is submitted or finished, ChangesChannel an empty
// payload after every other write. A notification is only a hint to read
// again: one missed while a listener reconnects is made up for by Listen
// calling its handler with an empty payload after each (re)connection.
const (
	CommandsChannel = "shipgate_commands"
	ChangesChannel  = "shipgate_changes"
)

// Command is a request that changes a rollout (deploy, approve, promote,
// ...), taken by any server and carried out once by the leader.
type Command struct {
	ID int64
	// Key is the idempotency key: submitting a command with a key already
	// used returns the first command instead of a second one.
	Key     string
	Kind    string
	Actor   string
	Payload json.RawMessage
	State   string
	// Term is the leader term that claimed the command last; Attempts how
	// many terms claimed it (more than one: a leader died while carrying
	// it out, and the next must check whether it was).
	Term     int64
	Attempts int
	// Result is the answer, for a done command; Error the refusal, for a
	// failed one (both JSON, as the API answers them).
	Result json.RawMessage
	Error  json.RawMessage
	// SubmittedBy is the server that took the command.
	SubmittedBy string
	CreatedAt   time.Time
	DoneAt      time.Time
}

// Finished reports whether the leader has carried the command out or
// refused it.
func (c Command) Finished() bool { return c.State == CommandDone || c.State == CommandFailed }

const commandColumns = `id, key, kind, actor, payload, state, term, attempts, result, error, submitted_by, created_at, done_at`

// SubmitCommand records a command for the leader, or returns the command
// already recorded under the same key (then with created false). A key
// reused for another kind or payload is an error wrapping
// rollout.ErrConflict. Any server may submit, leader or not: the write is
// not fenced.
func (s *Store) SubmitCommand(ctx context.Context, c Command) (_ Command, created bool, err error) {
	if c.Key == "" || c.Kind == "" {
		return Command{}, false, fmt.Errorf("submit command: a key and a kind are required: %w", rollout.ErrInvalid)
	}
	if len(c.Payload) == 0 {
		c.Payload = json.RawMessage("{}")
	}
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return Command{}, false, fmt.Errorf("submit command %s: %w", c.Kind, err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	var id int64
	err = tx.QueryRow(ctx, `
INSERT INTO commands (key, kind, actor, payload, submitted_by, created_at) VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (key) DO NOTHING RETURNING id`,
		c.Key, c.Kind, c.Actor, string(c.Payload), c.SubmittedBy, formatTime(s.orNow(c.CreatedAt))).Scan(&id)
	created = err == nil
	if err != nil && !isNoRows(err) {
		return Command{}, false, fmt.Errorf("submit command %s: %w", c.Kind, err)
	}
	got, err := getCommand(ctx, tx, "key = $1", c.Key)
	if err != nil {
		return Command{}, false, fmt.Errorf("submit command %s: %w", c.Kind, err)
	}
	if !created && (got.Kind != c.Kind || !sameJSON(got.Payload, c.Payload)) {
		return Command{}, false, fmt.Errorf("submit command %s: idempotency key %q was used for another command (%d, %s): %w",
			c.Kind, c.Key, got.ID, got.Kind, rollout.ErrConflict)
	}
	if created {
		if _, err := tx.Exec(ctx, `SELECT pg_notify($1, $2)`, CommandsChannel, fmt.Sprint(got.ID)); err != nil {
			return Command{}, false, fmt.Errorf("submit command %s: %w", c.Kind, err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return Command{}, false, fmt.Errorf("submit command %s: commit: %w", c.Kind, err)
	}
	return got, created, nil
}

// ClaimCommand takes the oldest command no live term is carrying out: a
// pending one, or one a leader of an older term claimed and never
// finished (it died, or was paused past its lease). Only a handle that
// won a term (Campaign) may claim, and the claim is fenced like every
// write: a stale leader claims nothing. found is false when there is
// nothing to do.
func (s *Store) ClaimCommand(ctx context.Context) (c Command, found bool, err error) {
	term := s.term.Load()
	if term == 0 {
		return Command{}, false, fmt.Errorf("claim command: %w: this server never won a term", ErrNotLeader)
	}
	err = s.inTx(ctx, func(tx pgx.Tx) error {
		var id int64
		err := tx.QueryRow(ctx, `
UPDATE commands SET state = 'running', term = $1, attempts = attempts + 1
WHERE id = (
	SELECT id FROM commands
	WHERE state = 'pending' OR (state = 'running' AND term < $1)
	ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED)
RETURNING id`, term).Scan(&id)
		if isNoRows(err) {
			return nil
		}
		if err != nil {
			return err
		}
		found = true
		c, err = getCommand(ctx, tx, "id = $1", id)
		return err
	})
	if err != nil {
		return Command{}, false, fmt.Errorf("claim command: %w", err)
	}
	return c, found, nil
}

// FinishCommand records what became of a command this handle's term
// claimed: its result, or (failed) its refusal. It is fenced: a stale
// leader's outcome is refused, and the new leader claims the command
// again.
func (s *Store) FinishCommand(ctx context.Context, id int64, failed bool, outcome json.RawMessage) error {
	state, result, refusal := CommandDone, string(outcome), ""
	if failed {
		state, result, refusal = CommandFailed, "", string(outcome)
	}
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `
UPDATE commands SET state = $1, result = $2, error = $3, done_at = $4
WHERE id = $5 AND state = 'running' AND term = $6`,
			state, result, refusal, formatTime(s.now()), id, s.term.Load())
		if err != nil {
			return err
		}
		if tag.RowsAffected() != 1 {
			return fmt.Errorf("command %d is not running in term %d: %w", id, s.term.Load(), rollout.ErrConflict)
		}
		_, err = tx.Exec(ctx, `SELECT pg_notify($1, $2)`, CommandsChannel, fmt.Sprint(id))
		return err
	})
	if err != nil {
		return fmt.Errorf("finish command %d: %w", id, err)
	}
	return nil
}

// GetCommand returns a command, or an error wrapping rollout.ErrNotFound.
func (s *Store) GetCommand(ctx context.Context, id int64) (Command, error) {
	c, err := getCommand(ctx, s.pool, "id = $1", id)
	if err != nil {
		return Command{}, fmt.Errorf("get command %d: %w", id, err)
	}
	return c, nil
}

// ListCommands returns the commands of the given kind (all kinds when
// empty), oldest first.
func (s *Store) ListCommands(ctx context.Context, kind string) ([]Command, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+commandColumns+` FROM commands WHERE $1 = '' OR kind = $1 ORDER BY id`, kind)
	if err != nil {
		return nil, fmt.Errorf("list commands: %w", err)
	}
	defer rows.Close()
	var out []Command
	for rows.Next() {
		c, err := scanCommand(rows)
		if err != nil {
			return nil, fmt.Errorf("list commands: %w", err)
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list commands: %w", err)
	}
	return out, nil
}

func getCommand(ctx context.Context, q querier, where string, arg any) (Command, error) {
	c, err := scanCommand(q.QueryRow(ctx, `SELECT `+commandColumns+` FROM commands WHERE `+where, arg))
	if isNoRows(err) {
		return Command{}, fmt.Errorf("command %v: %w", arg, rollout.ErrNotFound)
	}
	return c, err
}

func scanCommand(row pgx.Row) (Command, error) {
	var c Command
	var payload, result, refusal, created, done string
	if err := row.Scan(&c.ID, &c.Key, &c.Kind, &c.Actor, &payload, &c.State, &c.Term, &c.Attempts, &result, &refusal, &c.SubmittedBy, &created, &done); err != nil {
		return Command{}, err
	}
	c.Payload = json.RawMessage(payload)
	if result != "" {
		c.Result = json.RawMessage(result)
	}
	if refusal != "" {
		c.Error = json.RawMessage(refusal)
	}
	var err error
	if c.CreatedAt, err = parseTime(created); err != nil {
		return Command{}, err
	}
	if done != "" {
		if c.DoneAt, err = parseTime(done); err != nil {
			return Command{}, err
		}
	}
	return c, nil
}

// sameJSON reports whether two JSON documents hold the same value.
func sameJSON(a, b json.RawMessage) bool {
	var va, vb any
	if json.Unmarshal(a, &va) != nil || json.Unmarshal(b, &vb) != nil {
		return string(a) == string(b)
	}
	ja, _ := json.Marshal(va)
	jb, _ := json.Marshal(vb)
	return string(ja) == string(jb)
}

// Listen runs the change feed: it LISTENs on channels on a connection of
// its own and calls fn with each notification's channel and payload. After
// each (re)connection it calls fn once per channel with an empty payload,
// so that a listener re-reads what it may have missed while the
// connection was down (a PostgreSQL restart). It returns when ctx ends.
func (s *Store) Listen(ctx context.Context, fn func(channel, payload string), channels ...string) error {
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		err := s.listenOnce(ctx, fn, channels)
		if ctx.Err() != nil {
			break
		}
		if err != nil && !errors.Is(err, context.Canceled) {
			backoff = min(backoff*2, 2*time.Second)
		}
		select {
		case <-ctx.Done():
		case <-time.After(backoff):
		}
	}
	return nil
}

func (s *Store) listenOnce(ctx context.Context, fn func(channel, payload string), channels []string) error {
	pc, err := s.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	// The connection leaves the pool: LISTEN state must not be handed to
	// another user of the pool.
	conn := pc.Hijack()
	defer func() { _ = conn.Close(context.WithoutCancel(ctx)) }()
	for _, ch := range channels {
		if _, err := conn.Exec(ctx, `LISTEN `+pgx.Identifier{ch}.Sanitize()); err != nil {
			return err
		}
	}
	for _, ch := range channels {
		fn(ch, "")
	}
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return err
		}
		fn(n.Channel, n.Payload)
	}
}
