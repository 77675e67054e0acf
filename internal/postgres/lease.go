package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/shipgate/shipgate/internal/rollout"
)

// ErrNotLeader means a store handle does not hold the lease: Campaign
// lost to a live leader, or Renew found that another took over. It is
// rollout.ErrNotLeader.
var ErrNotLeader = rollout.ErrNotLeader

// ErrStaleTerm means a write was refused because the handle's leader term
// is no longer the store's: another server leads now. It wraps
// rollout.ErrNotLeader, on which the engine stops driving, and
// rollout.ErrConflict.
var ErrStaleTerm = fmt.Errorf("stale leader term: another server leads now (%w, %w)", rollout.ErrNotLeader, rollout.ErrConflict)

// Lease is a won leadership: its term and when it ends unless renewed.
type Lease struct {
	Term    int64
	Holder  string
	Expires time.Time
}

// Campaign tries to take the leader lease for holder for ttl. It wins when
// the lease is free or expired (by the database's clock, so servers' clocks
// need not agree), or when holder holds it already (then it renews). On a
// win the store handle fences itself with the new term: from then on each
// of its writes checks, in its own transaction, that the term is still
// its own, and is refused with ErrStaleTerm otherwise. Losing returns
// ErrNotLeader and the live leader's lease.
func (s *Store) Campaign(ctx context.Context, holder string, ttl time.Duration) (Lease, error) {
	var l Lease
	err := s.pool.QueryRow(ctx, `
UPDATE leader_lease SET
	term = CASE WHEN holder = $1 AND term = $3 AND expires_at > now() THEN term ELSE term + 1 END,
	holder = $1,
	expires_at = now() + make_interval(secs => $2)
WHERE id = 1 AND (expires_at <= now() OR (holder = $1 AND term = $3))
RETURNING term, holder, expires_at`, holder, ttl.Seconds(), s.term.Load()).Scan(&l.Term, &l.Holder, &l.Expires)
	if isNoRows(err) {
		cur, err := s.Leader(ctx)
		if err != nil {
			return Lease{}, err
		}
		return cur, fmt.Errorf("campaign as %s: %w: %s leads in term %d until %s", holder, ErrNotLeader, cur.Holder, cur.Term, cur.Expires.Format(time.RFC3339))
	}
	if err != nil {
		return Lease{}, fmt.Errorf("campaign as %s: %w", holder, err)
	}
	s.term.Store(l.Term)
	return l, nil
}

// Renew extends the handle's lease by ttl, or returns ErrNotLeader when
// its term is over: the handle stays fenced with its old term, so that
// none of its writes lands until it wins a new one.
func (s *Store) Renew(ctx context.Context, ttl time.Duration) (Lease, error) {
	term := s.term.Load()
	var l Lease
	err := s.pool.QueryRow(ctx, `
UPDATE leader_lease SET expires_at = now() + make_interval(secs => $2)
WHERE id = 1 AND term = $1 AND expires_at > now()
RETURNING term, holder, expires_at`, term, ttl.Seconds()).Scan(&l.Term, &l.Holder, &l.Expires)
	if isNoRows(err) {
		return Lease{}, fmt.Errorf("renew term %d: %w", term, ErrNotLeader)
	}
	if err != nil {
		return Lease{}, fmt.Errorf("renew term %d: %w", term, err)
	}
	return l, nil
}

// Resign ends the handle's lease at once, if it still holds it, so that
// another server need not wait for it to expire. The handle stays fenced.
func (s *Store) Resign(ctx context.Context) error {
	if _, err := s.pool.Exec(ctx, `UPDATE leader_lease SET expires_at = '-infinity' WHERE id = 1 AND term = $1`, s.term.Load()); err != nil {
		return fmt.Errorf("resign term %d: %w", s.term.Load(), err)
	}
	return nil
}

// Leader returns the lease as it stands: who leads, in which term, until
// when (a past time when nobody does).
func (s *Store) Leader(ctx context.Context) (Lease, error) {
	var l Lease
	if err := s.pool.QueryRow(ctx, `SELECT term, holder, expires_at FROM leader_lease WHERE id = 1`).Scan(&l.Term, &l.Holder, &l.Expires); err != nil {
		return Lease{}, fmt.Errorf("read leader lease: %w", err)
	}
	return l, nil
}

// checkTerm is the fence: in a handle that campaigned, every write
// transaction first share-locks the lease row and compares terms. The
// share lock makes a new leader's Campaign wait for writes in flight of
// the old term, and the old term's writes after it are refused, so no
// write of a stale leader lands after a new leader's first.
func (s *Store) checkTerm(ctx context.Context, tx pgx.Tx) error {
	mine := s.term.Load()
	if mine == 0 {
		return nil // never campaigned: a single server, unfenced
	}
	var term int64
	if err := tx.QueryRow(ctx, `SELECT term FROM leader_lease WHERE id = 1 FOR SHARE`).Scan(&term); err != nil {
		return fmt.Errorf("check leader term: %w", err)
	}
	if term != mine {
		err := fmt.Errorf("write of term %d refused, the store is at term %d: %w", mine, term, ErrStaleTerm)
		if fn := s.onStale.Load(); fn != nil {
			(*fn)(err)
		}
		return err
	}
	return nil
}

// OnStaleTerm makes the handle call fn (from the writing goroutine, so fn
// must not block) each time the fence refuses one of its writes: the
// server learns at its first refused write that it no longer leads,
// without waiting for its next renewal.
func (s *Store) OnStaleTerm(fn func(error)) { s.onStale.Store(&fn) }

// EndTerm unfences the handle once its leader work has stopped: its
// writes (a person's flag change through this server's API) are no longer
// checked against a term it lost. Campaign starts a new term.
func (s *Store) EndTerm() { s.term.Store(0) }

// Term returns the leader term the handle won last, 0 if it never
// campaigned.
func (s *Store) Term() int64 { return s.term.Load() }
