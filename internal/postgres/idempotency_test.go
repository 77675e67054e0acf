package postgres

import (
	"bytes"
	"testing"
	"time"

	"github.com/shipgate/shipgate/internal/pgtest"
)

// TestIdempotencyKey_AcrossServers: two servers on one database. A key
// claimed by one is not claimed by the other, which sees it running, then
// done with its answer; the same key for another request shows the first
// one's fingerprint; a key whose server stops beating is taken over, and
// the dead server's late answer is not recorded; a forgotten key is
// claimed again.
func TestIdempotencyKey_AcrossServers(t *testing.T) {
	ctx := t.Context()
	dsn := pgtest.Shared(t).NewDatabase(t)
	a, b := openStore(t, dsn, nil), openStore(t, dsn, nil)
	fp, other := []byte("fingerprint-1"), []byte("fingerprint-2")
	const live = time.Hour

	if _, claimed, err := a.ClaimIdempotencyKey(ctx, "k1", fp, "a", live); err != nil || !claimed {
		t.Fatalf("first claim = %v, %v; want claimed", claimed, err)
	}
	k, claimed, err := b.ClaimIdempotencyKey(ctx, "k1", fp, "b", live)
	if err != nil || claimed || k.Done || k.Server != "a" {
		t.Fatalf("claim by another server = %+v, %v, %v; want a's, running", k, claimed, err)
	}
	if err := a.BeatIdempotencyKey(ctx, "k1", "a"); err != nil {
		t.Fatal(err)
	}
	if err := a.FinishIdempotencyKey(ctx, "k1", "a", 201, `{"Content-Type":["application/json"]}`, []byte(`{"id":7}`)); err != nil {
		t.Fatal(err)
	}
	k, claimed, err = b.ClaimIdempotencyKey(ctx, "k1", fp, "b", live)
	if err != nil || claimed || !k.Done || k.Status != 201 || !bytes.Equal(k.Body, []byte(`{"id":7}`)) || k.Header != `{"Content-Type":["application/json"]}` {
		t.Fatalf("claim of a done key = %+v, %v, %v; want a's answer", k, claimed, err)
	}
	if k, claimed, err = b.ClaimIdempotencyKey(ctx, "k1", other, "b", 0); err != nil || claimed || !bytes.Equal(k.Fingerprint, fp) {
		t.Fatalf("claim for another request = %+v, %v, %v; want the first request's record", k, claimed, err)
	}

	// a claims k2 and dies: b takes it over once a has not beaten for
	// the stale time, and a's late answer is not recorded.
	if _, claimed, err := a.ClaimIdempotencyKey(ctx, "k2", fp, "a", live); err != nil || !claimed {
		t.Fatalf("claim k2 = %v, %v", claimed, err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		k, claimed, err = b.ClaimIdempotencyKey(ctx, "k2", fp, "b", 200*time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		if claimed {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("k2 never taken over: %+v", k)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := a.FinishIdempotencyKey(ctx, "k2", "a", 200, "{}", []byte("late")); err != nil {
		t.Fatal(err)
	}
	if k, found, err := b.GetIdempotencyKey(ctx, "k2"); err != nil || !found || k.Done || k.Server != "b" {
		t.Fatalf("k2 after the dead server's late answer = %+v, %v, %v; want b's, running", k, found, err)
	}

	// A forgotten key (its answer not kept) is claimed again.
	if err := b.ForgetIdempotencyKey(ctx, "k2", "b"); err != nil {
		t.Fatal(err)
	}
	if _, claimed, err := a.ClaimIdempotencyKey(ctx, "k2", fp, "a", live); err != nil || !claimed {
		t.Fatalf("claim of a forgotten key = %v, %v; want claimed", claimed, err)
	}
}
