package postgres

import (
	"errors"
	"testing"
	"time"

	"github.com/shipgate/shipgate/internal/audit"
	"github.com/shipgate/shipgate/internal/dora"
	"github.com/shipgate/shipgate/internal/notify"
	"github.com/shipgate/shipgate/internal/pgtest"
	"github.com/shipgate/shipgate/internal/retire"
	"github.com/shipgate/shipgate/internal/store"
	"github.com/shipgate/shipgate/internal/testsignal"
)

// TestLease_StaleLeaderIsFencedEverywhere: the writes of the later tables
// (DORA, the outbox, test runs, route usage, retirements) are fenced like
// the rollouts': a leader whose term has passed writes none of them.
func TestLease_StaleLeaderIsFencedEverywhere(t *testing.T) {
	ctx := t.Context()
	dsn := pgtest.Shared(t).NewDatabase(t)
	a, b := openStore(t, dsn, nil), openStore(t, dsn, nil)
	if _, err := a.Campaign(ctx, "a", 100*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := b.Campaign(ctx, "b", time.Minute)
		if err == nil {
			break
		}
		if !errors.Is(err, ErrNotLeader) || time.Now().After(deadline) {
			t.Fatalf("B never took over: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	ev := func(dora.Incident) audit.Event { return audit.Event{Actor: "shipgate", Action: "incident.open"} }
	writes := map[string]func() error{
		"OpenIncidentAudited": func() error {
			return a.OpenIncidentAudited(ctx, &dora.Incident{App: "shop", Env: "production", Title: "x"}, ev)
		},
		"EnqueueNotifications": func() error {
			_, err := a.EnqueueNotifications(ctx, 1, []notify.Delivery{{EventID: "e", Webhook: "w", EventType: "x", Payload: []byte("{}")}})
			return err
		},
		"AddRouteUsage": func() error {
			return a.AddRouteUsage(ctx, "production", map[string]retire.RouteCount{"/": {Count: 1, Last: time.Now()}})
		},
		"TrackRoutes": func() error { return a.TrackRoutes(ctx, "production", time.Now()) },
		"AddTestRun": func() error {
			_, err := a.AddTestRun(ctx, testsignal.Run{App: "shop", Version: "v1"}, audit.Event{Actor: "user:ci", Action: testsignal.ActionTestRun})
			return err
		},
		"Save": func() error {
			return a.Save(ctx, &retire.Retirement{Kind: retire.KindFlag, Subject: "x", Stage: retire.StageCheck}, "user:ana", retire.ActionStart, "x")
		},
	}
	for name, write := range writes {
		if err := write(); !errors.Is(err, ErrStaleTerm) {
			t.Errorf("stale leader's %s = %v, want ErrStaleTerm", name, err)
		}
	}
	snap, err := b.Export(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if c := snap.Counts(); c != (store.Counts{}) || snap.NotifyCursor != nil || len(snap.RouteTracking) != 0 {
		t.Errorf("the stale leader's refused writes left %+v", c)
	}
}
