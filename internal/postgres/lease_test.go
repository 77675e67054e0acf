package postgres

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/shipgate/shipgate/internal/audit"
	"github.com/shipgate/shipgate/internal/pgtest"
	"github.com/shipgate/shipgate/internal/rollout"
)

// TestLease_StaleLeaderIsFenced is two servers on one store, as two store
// handles: A leads, pauses past its lease, B takes over with a higher
// term; A's writes are then refused and its renewal fails, B's go on, and
// the audit chain holds no event of A after B's term began.
func TestLease_StaleLeaderIsFenced(t *testing.T) {
	ctx := t.Context()
	dsn := pgtest.Shared(t).NewDatabase(t)
	a, b := openStore(t, dsn, nil), openStore(t, dsn, nil)
	// Long enough that A surely still leads for its first writes on a
	// busy machine (PostgreSQL, too, waits for a core), short enough to
	// wait out.
	const ttl = 2 * time.Second

	la, err := a.Campaign(ctx, "a", ttl)
	if err != nil {
		t.Fatalf("A campaigns on a free lease: %v", err)
	}
	if _, err := b.Campaign(ctx, "b", ttl); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("B campaigns while A leads = %v, want ErrNotLeader", err)
	}
	if again, err := a.Campaign(ctx, "a", ttl); err != nil || again.Term != la.Term {
		t.Fatalf("A campaigns again while leading = %+v, %v; want the same term %d", again, err, la.Term)
	}
	r := rollout.Rollout{App: "shop", Env: "production", Version: "v2", Phase: rollout.PhaseRunning}
	if err := a.Commit(ctx, rollout.Change{Rollout: &r, Audit: []audit.Event{{Actor: "shipgate", Action: audit.ActionStep, Subject: "rollout/1", Reason: "a, term 1"}}}); err != nil {
		t.Fatalf("the leader commits: %v", err)
	}

	// A pauses (SIGSTOP, a long GC): it renews nothing. B takes over once
	// the lease has expired by the database's clock.
	var lb Lease
	deadline := time.Now().Add(10 * time.Second)
	for {
		lb, err = b.Campaign(ctx, "b", time.Minute)
		if err == nil {
			break
		}
		if !errors.Is(err, ErrNotLeader) || time.Now().After(deadline) {
			t.Fatalf("B never took over: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if lb.Term <= la.Term {
		t.Fatalf("B's term %d is not above A's %d", lb.Term, la.Term)
	}

	// A wakes up and acts on its stale view: every write is refused.
	r.Phase = rollout.PhaseSucceeded
	err = a.Commit(ctx, rollout.Change{Rollout: &r, Audit: []audit.Event{{Actor: "shipgate", Action: audit.ActionSucceed, Subject: "rollout/1", Reason: "a, stale"}}})
	if !errors.Is(err, ErrStaleTerm) || !errors.Is(err, rollout.ErrConflict) {
		t.Fatalf("stale leader's Commit = %v, want ErrStaleTerm", err)
	}
	if err := a.PutRelease(ctx, rollout.Release{App: "shop", Version: "v3", Commit: "abc"}); !errors.Is(err, ErrStaleTerm) {
		t.Errorf("stale leader's PutRelease = %v, want ErrStaleTerm", err)
	}
	if _, err := a.Renew(ctx, ttl); !errors.Is(err, ErrNotLeader) {
		t.Errorf("stale leader's Renew = %v, want ErrNotLeader (it steps down)", err)
	}
	got, err := b.GetRollout(ctx, r.ID)
	if err != nil || got.Phase != rollout.PhaseRunning {
		t.Fatalf("rollout after the refused write = %s, %v; want still running", got.Phase, err)
	}

	// The new leader writes; the chain stays linear with no stale event.
	got.Phase = rollout.PhaseRolledBack
	if err := b.Commit(ctx, rollout.Change{Rollout: &got, Audit: []audit.Event{{Actor: "shipgate", Action: audit.ActionStep, Subject: "rollout/1", Reason: "b, term 2"}}}); err != nil {
		t.Fatalf("new leader's Commit: %v", err)
	}
	chain, err := b.AuditChain(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := audit.Verify(chain); err != nil {
		t.Fatal(err)
	}
	var reasons []string
	for _, e := range chain {
		reasons = append(reasons, e.Reason)
	}
	if len(reasons) != 2 || reasons[0] != "a, term 1" || reasons[1] != "b, term 2" {
		t.Errorf("audit chain reasons = %q, want A's term-1 event then B's term-2 event", reasons)
	}
	if cur, err := a.Leader(ctx); err != nil || cur.Holder != "b" || cur.Term != lb.Term {
		t.Errorf("Leader = %+v, %v; want b in term %d", cur, err, lb.Term)
	}
	// Resigning hands over at once.
	if err := b.Resign(ctx); err != nil {
		t.Fatal(err)
	}
	if l, err := a.Campaign(ctx, "a", ttl); err != nil || l.Term != lb.Term+1 {
		t.Errorf("A campaigns after B resigned = %+v, %v; want term %d", l, err, lb.Term+1)
	}
}

// TestLease_UnfencedWithoutCampaign: a handle that never campaigned (one
// server, no election) writes whatever the lease says.
func TestLease_UnfencedWithoutCampaign(t *testing.T) {
	ctx := t.Context()
	dsn := pgtest.Shared(t).NewDatabase(t)
	a, b := openStore(t, dsn, nil), openStore(t, dsn, nil)
	if _, err := a.Campaign(ctx, "a", time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := b.PutRelease(ctx, rollout.Release{App: "shop", Version: "v1", Commit: "abc"}); err != nil {
		t.Errorf("unfenced handle's write: %v", err)
	}
}

// TestLease_LeaderPausedMidWriteDoesNotBlockTakeover: a leader paused
// (SIGSTOP) inside a write transaction holds the share lock on the lease
// row that every fenced write takes. The next leader's campaign must not
// wait for it forever: PostgreSQL ends the paused transaction after
// IdleInTransactionTimeout, and the campaign goes through. (A fresh-clone
// CI run caught a three-process election hanging this way.)
func TestLease_LeaderPausedMidWriteDoesNotBlockTakeover(t *testing.T) {
	ctx := t.Context()
	dsn := pgtest.Shared(t).NewDatabase(t)
	a, b := openStore(t, dsn, nil), openStore(t, dsn, nil)
	const ttl = 2 * time.Second // A's write must begin within its lease, even on a busy machine
	if _, err := a.Campaign(ctx, "a", ttl); err != nil {
		t.Fatal(err)
	}
	// A is inside a write, past its fence, and then says nothing.
	tx, err := a.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	if err := a.checkTerm(ctx, tx); err != nil {
		t.Fatal(err)
	}
	time.Sleep(ttl)
	start := time.Now()
	campaign, cancel := context.WithTimeout(ctx, IdleInTransactionTimeout+10*time.Second)
	defer cancel()
	lb, err := b.Campaign(campaign, "b", ttl)
	if err != nil {
		t.Fatalf("B's campaign while A sleeps inside a write: %v (after %s)", err, time.Since(start).Round(time.Millisecond))
	}
	t.Logf("B leads in term %d %s after A's lease ended (A paused inside a write)", lb.Term, time.Since(start).Round(time.Millisecond))
}
