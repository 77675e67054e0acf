package sqlite

import (
	"testing"
	"time"

	"github.com/shipgate/shipgate/internal/audit"
	"github.com/shipgate/shipgate/internal/retire"
)

// TestStore_RouteUsage: counts add up per prefix and day, a day counts
// whole when its last request is recent, and tracking starts once.
func TestStore_RouteUsage(t *testing.T) {
	s, _ := openStore(t)
	ctx := t.Context()
	day1 := time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)
	if err := s.TrackRoutes(ctx, "production", day1); err != nil {
		t.Fatal(err)
	}
	if err := s.TrackRoutes(ctx, "production", day1.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	for _, d := range []struct {
		at time.Time
		n  uint64
	}{{day1, 5}, {day1.Add(2 * time.Hour), 3}, {day1.Add(48 * time.Hour), 2}} {
		if err := s.AddRouteUsage(ctx, "production", map[string]RouteCount{"/api/v1": {Count: d.n, Last: d.at}, "/api": {Count: d.n, Last: d.at}}); err != nil {
			t.Fatal(err)
		}
	}
	u, err := s.RouteUsage(ctx, "production", "/api/v1", day1.Add(24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if u.Total != 10 || u.Since != 2 || !u.Last.Equal(day1.Add(48*time.Hour)) || !u.TrackedSince.Equal(day1) {
		t.Fatalf("usage = %+v", u)
	}
	// The day of the first requests ended at 12:00: since 11:00 it counts whole.
	if u, _ := s.RouteUsage(ctx, "production", "/api/v1", day1.Add(time.Hour)); u.Since != 10 {
		t.Fatalf("since 11:00: %d, want the whole first day and the third", u.Since)
	}
	if u, _ := s.RouteUsage(ctx, "staging", "/api/v1", day1); u.Total != 0 || !u.TrackedSince.IsZero() {
		t.Fatalf("an environment never counted: %+v", u)
	}
}

// TestStore_Retirements: a retirement is saved with the audit event of
// each stage, in one chain, and listed by stage.
func TestStore_Retirements(t *testing.T) {
	s, _ := openStore(t)
	ctx := t.Context()
	r := retire.Retirement{Kind: retire.KindRoute, Env: "production", Subject: "/api/v1/legacy", Actor: "user:ana", Stage: retire.StageCheck}
	if err := s.Save(ctx, &r, "user:ana", retire.ActionStart, "retire"); err != nil {
		t.Fatal(err)
	}
	r.Stage = retire.StageWatch
	if err := s.Save(ctx, &r, "user:ana", retire.ActionDisable, "disabled"); err != nil {
		t.Fatal(err)
	}
	got, err := s.GetRetirement(ctx, r.ID)
	if err != nil || got.Stage != retire.StageWatch || got.Subject != "/api/v1/legacy" {
		t.Fatalf("get = %+v, %v", got, err)
	}
	if list, _ := s.ListRetirements(ctx, retire.StageWatch); len(list) != 1 {
		t.Fatalf("watching: %+v", list)
	}
	if list, _ := s.ListRetirements(ctx, retire.StageDeleted); len(list) != 0 {
		t.Fatalf("deleted: %+v", list)
	}
	events, err := s.ListAudit(ctx, audit.Filter{Subject: "retire/route/api/v1/legacy"})
	if err != nil || len(events) != 2 || events[0].Action != retire.ActionDisable || events[0].Data["retirement"] != "1" {
		t.Fatalf("audit = %+v, %v", events, err)
	}
	if err := audit.Verify(reverse(events)); err != nil {
		t.Fatalf("chain: %v", err)
	}
}

func reverse(es []audit.Event) []audit.Event {
	out := make([]audit.Event, len(es))
	for i, e := range es {
		out[len(es)-1-i] = e
	}
	return out
}
