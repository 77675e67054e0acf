package postgres

import (
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/shipgate/shipgate/internal/pgtest"
	"github.com/shipgate/shipgate/internal/rollout"
)

// TestCommands_OnceAcrossLeaders: a follower submits a command (twice,
// with the same idempotency key: one command); it cannot claim it; the
// leader claims it and dies before finishing; the next leader claims it
// again (attempt 2), the stale leader's late outcome is refused, and the
// new leader's is recorded once.
func TestCommands_OnceAcrossLeaders(t *testing.T) {
	ctx := t.Context()
	dsn := pgtest.Shared(t).NewDatabase(t)
	a, b, follower := openStore(t, dsn, nil), openStore(t, dsn, nil), openStore(t, dsn, nil)
	const ttl = 300 * time.Millisecond

	payload := json.RawMessage(`{"app":"shop","env":"production","version":"v2"}`)
	c1, created, err := follower.SubmitCommand(ctx, Command{Key: "k-1", Kind: "deploy", Actor: "user:alice", Payload: payload, SubmittedBy: "s3"})
	if err != nil || !created || c1.State != CommandPending {
		t.Fatalf("SubmitCommand = %+v, %v, %v; want a new pending command", c1, created, err)
	}
	c2, created, err := follower.SubmitCommand(ctx, Command{Key: "k-1", Kind: "deploy", Actor: "user:alice", Payload: json.RawMessage(`{"version":"v2","env":"production","app":"shop"}`), SubmittedBy: "s2"})
	if err != nil || created || c2.ID != c1.ID {
		t.Fatalf("SubmitCommand again with the same key = %+v, %v, %v; want command %d back", c2, created, err, c1.ID)
	}
	if _, _, err := follower.SubmitCommand(ctx, Command{Key: "k-1", Kind: "abort", SubmittedBy: "s3"}); !errors.Is(err, rollout.ErrConflict) {
		t.Errorf("key reused for another command = %v, want ErrConflict", err)
	}
	if _, _, err := follower.ClaimCommand(ctx); !errors.Is(err, ErrNotLeader) {
		t.Errorf("a follower claims = %v, want ErrNotLeader", err)
	}

	if _, err := a.Campaign(ctx, "a", ttl); err != nil {
		t.Fatal(err)
	}
	got, found, err := a.ClaimCommand(ctx)
	if err != nil || !found || got.ID != c1.ID || got.Attempts != 1 {
		t.Fatalf("leader A claims = %+v, %v, %v; want command %d, attempt 1", got, found, err, c1.ID)
	}
	if _, found, err := a.ClaimCommand(ctx); err != nil || found {
		t.Errorf("A claims again = %v, %v; want nothing (the command is A's)", found, err)
	}

	// A stops (killed, paused) past its lease; B takes over and claims
	// the unfinished command again.
	var lb Lease
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if lb, err = b.Campaign(ctx, "b", time.Minute); err == nil {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("B never took over: %v", err)
		}
	}
	again, found, err := b.ClaimCommand(ctx)
	if err != nil || !found || again.ID != c1.ID || again.Attempts != 2 || again.Term != lb.Term {
		t.Fatalf("leader B claims = %+v, %v, %v; want command %d, attempt 2, term %d", again, found, err, c1.ID, lb.Term)
	}
	if err := a.FinishCommand(ctx, c1.ID, false, json.RawMessage(`{"by":"a"}`)); !errors.Is(err, ErrStaleTerm) {
		t.Errorf("stale leader finishes = %v, want ErrStaleTerm", err)
	}
	if err := b.FinishCommand(ctx, c1.ID, false, json.RawMessage(`{"by":"b"}`)); err != nil {
		t.Fatalf("leader B finishes: %v", err)
	}
	if err := b.FinishCommand(ctx, c1.ID, true, json.RawMessage(`{"by":"b"}`)); !errors.Is(err, rollout.ErrConflict) {
		t.Errorf("finishing twice = %v, want ErrConflict", err)
	}
	done, err := follower.GetCommand(ctx, c1.ID)
	if err != nil || done.State != CommandDone || string(done.Result) != `{"by": "b"}` && string(done.Result) != `{"by":"b"}` || !done.Finished() {
		t.Errorf("the command as the follower reads it = %+v, %v; want done with B's result", done, err)
	}
	if _, found, err := b.ClaimCommand(ctx); err != nil || found {
		t.Errorf("B claims after finishing = %v, %v; want nothing", found, err)
	}
}

// TestListen_FeedSeesCommandsAndWrites: a listener on one handle hears
// another handle's command and its writes, and is told to re-read when it
// connects.
func TestListen_FeedSeesCommandsAndWrites(t *testing.T) {
	ctx := t.Context()
	dsn := pgtest.Shared(t).NewDatabase(t)
	a, b := openStore(t, dsn, nil), openStore(t, dsn, nil)
	type note struct{ ch, payload string }
	notes := make(chan note, 16)
	go func() {
		_ = a.Listen(ctx, func(ch, payload string) { notes <- note{ch, payload} }, CommandsChannel, ChangesChannel)
	}()
	want := func(w note) {
		t.Helper()
		timeout := time.After(15 * time.Second) // a connection to PostgreSQL, on a busy machine
		for {
			select {
			case n := <-notes:
				if n == w {
					return
				}
			case <-timeout:
				t.Fatalf("no notification %+v within 15s", w)
			}
		}
	}
	want(note{CommandsChannel, ""}) // connected: read again
	want(note{ChangesChannel, ""})
	c, _, err := b.SubmitCommand(ctx, Command{Key: "k", Kind: "approve", SubmittedBy: "b"})
	if err != nil {
		t.Fatal(err)
	}
	want(note{CommandsChannel, jsonID(c.ID)})
	if err := b.PutRelease(ctx, rollout.Release{App: "shop", Version: "v1", Commit: "abc"}); err != nil {
		t.Fatal(err)
	}
	want(note{ChangesChannel, ""})
}

func jsonID(id int64) string { b, _ := json.Marshal(id); return string(b) }
