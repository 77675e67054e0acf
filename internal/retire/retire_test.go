package retire

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

var t0 = time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)

// route is a subject whose counters the test drives.
type route struct {
	mu       sync.Mutex
	clock    *fakeClock
	hits     []time.Time
	tracked  time.Time
	disabled bool
	deleted  bool
	calls    []string
}

func (r *route) hit(at time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.hits = append(r.hits, at)
}

func (r *route) Usage(_ context.Context, since time.Time) (Usage, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	u := Usage{Total: uint64(len(r.hits)), TrackedSince: r.tracked}
	for _, h := range r.hits {
		if h.After(since) {
			u.Since++
		}
		if h.After(u.Last) {
			u.Last = h
		}
	}
	return u, nil
}

func (r *route) record(call string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.calls) == 0 || r.calls[len(r.calls)-1] != call {
		r.calls = append(r.calls, call)
	}
}

func (r *route) Disable(context.Context) error { r.record("disable"); r.disabled = true; return nil }
func (r *route) Enable(context.Context) error  { r.record("enable"); r.disabled = false; return nil }
func (r *route) Delete(context.Context) error  { r.record("delete"); r.deleted = true; return nil }
func (r *route) Terms() []string               { return []string{"/api/v1/legacy"} }

// journal keeps the saved states and events in memory.
type journal struct {
	mu     sync.Mutex
	events []string
	last   Retirement
}

func (j *journal) Save(_ context.Context, r *Retirement, actor, action, detail string) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if r.ID == 0 {
		r.ID = 1
	}
	j.last = *r
	j.events = append(j.events, action+" by "+actor)
	return nil
}

func (j *journal) actions() []string {
	j.mu.Lock()
	defer j.mu.Unlock()
	var out []string
	for _, e := range j.events {
		out = append(out, strings.SplitN(e, " ", 2)[0])
	}
	return out
}

type backup struct{ err error }

func (b backup) Run(_ context.Context, r Retirement) (string, error) {
	return "/backups/retire-" + fmt.Sprint(r.ID), b.err
}

type refs []string

func (f refs) Find(context.Context, []string) ([]string, error) { return f, nil }

type alerts struct {
	mu   sync.Mutex
	msgs []string
}

func (a *alerts) Alert(_ context.Context, _ Retirement, m string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.msgs = append(a.msgs, m)
	return nil
}

func setup(b Backup) (*Retirer, *route, *journal, *alerts, *fakeClock) {
	clock := newFakeClock(t0)
	j, al := &journal{}, &alerts{}
	rt := &Retirer{Journal: j, Backup: b, References: refs{"web/app.js:12: fetch('/api/v1/legacy/orders')"}, Alerter: al, Clock: clock, Poll: time.Hour}
	return rt, &route{clock: clock, tracked: t0.Add(-30 * 24 * time.Hour)}, j, al, clock
}

func newRetirement() Retirement {
	return Retirement{Kind: KindRoute, Env: "production", Subject: "/api/v1/legacy", Actor: "user:ana", Reason: "v1 API replaced by v2"}
}

// watch runs Watch in the background and steps the clock until it ends.
func watch(t *testing.T, rt *Retirer, r Retirement, s *route, clock *fakeClock, during func(time.Time)) Retirement {
	t.Helper()
	done := make(chan Retirement, 1)
	go func() {
		got, err := rt.Watch(t.Context(), r, s)
		if err != nil {
			t.Error(err)
		}
		done <- got
	}()
	for {
		select {
		case got := <-done:
			return got
		case <-time.After(100 * time.Microsecond):
		}
		if clock.Waiters() > 0 {
			clock.Step(time.Hour)
			if during != nil {
				during(clock.Now())
			}
		}
	}
}

func TestRetirer_RouteWithTrafficRefuses(t *testing.T) {
	rt, s, j, _, _ := setup(backup{})
	s.hit(t0.Add(-3 * 24 * time.Hour))
	r, err := rt.Start(t.Context(), newRetirement(), s)
	if err != nil {
		t.Fatal(err)
	}
	if r.Stage != StageRefused || !strings.Contains(r.Detail, "1 requests in the last 168h0m0s, the last at 2026-11-28T09:00:00Z") {
		t.Fatalf("retirement = %s: %s", r.Stage, r.Detail)
	}
	if len(s.calls) != 0 {
		t.Fatalf("a refused retirement acted on the route: %v", s.calls)
	}
	if got, want := j.actions(), []string{ActionStart, ActionRefuse}; !slices.Equal(got, want) {
		t.Fatalf("audit = %v, want %v", got, want)
	}
}

func TestRetirer_TooLittleEvidenceRefuses(t *testing.T) {
	rt, s, _, _, _ := setup(backup{})
	s.tracked = t0.Add(-2 * 24 * time.Hour)
	r, _ := rt.Start(t.Context(), newRetirement(), s)
	if r.Stage != StageRefused || !strings.Contains(r.Detail, "counted only since 2026-11-29T09:00:00Z") {
		t.Fatalf("retirement = %s: %s", r.Stage, r.Detail)
	}
}

func TestRetirer_BackupFailureStops(t *testing.T) {
	rt, s, j, _, _ := setup(backup{err: errors.New("pg_dump exited 1: connection refused")})
	r, err := rt.Start(t.Context(), newRetirement(), s)
	if err != nil {
		t.Fatal(err)
	}
	if r.Stage != StageFailed || r.Detail != "backup failed, nothing was disabled: pg_dump exited 1: connection refused" {
		t.Fatalf("retirement = %s: %s", r.Stage, r.Detail)
	}
	if len(s.calls) != 0 {
		t.Fatalf("the route was touched after a failed backup: %v", s.calls)
	}
	if got, want := j.actions(), []string{ActionStart, ActionFail}; !slices.Equal(got, want) {
		t.Fatalf("audit = %v, want %v", got, want)
	}
}

func TestRetirer_RequestInWatchReenablesAndAlerts(t *testing.T) {
	rt, s, j, al, clock := setup(backup{})
	r, err := rt.Start(t.Context(), newRetirement(), s)
	if err != nil || r.Stage != StageWatch || !s.disabled || r.WatchUntil != t0.Add(DefaultWatch) {
		t.Fatalf("start: %+v, %v", r, err)
	}
	hitAt := t0.Add(5 * time.Hour)
	r = watch(t, rt, r, s, clock, func(now time.Time) {
		if now.Equal(hitAt) {
			s.hit(now)
		}
	})
	if r.Stage != StageReenabled || s.disabled || s.deleted {
		t.Fatalf("after a request in the window: %s, disabled %v, deleted %v", r.Stage, s.disabled, s.deleted)
	}
	if !r.FinishedAt.Equal(hitAt) || len(al.msgs) != 1 || !strings.Contains(al.msgs[0], "was used 1 times while retired (last at 2026-12-01T14:00:00Z)") {
		t.Fatalf("finished %s, alerts %q", r.FinishedAt, al.msgs)
	}
	if got, want := j.actions(), []string{ActionStart, ActionBackup, ActionDisable, ActionReenable}; !slices.Equal(got, want) {
		t.Fatalf("audit = %v, want %v", got, want)
	}
}

func TestRetirer_QuietWindowDeletesAndListsReferences(t *testing.T) {
	rt, s, j, al, clock := setup(backup{})
	r, err := rt.Start(t.Context(), newRetirement(), s)
	if err != nil {
		t.Fatal(err)
	}
	r = watch(t, rt, r, s, clock, nil)
	if r.Stage != StageDeleted || !s.deleted || !r.FinishedAt.Equal(t0.Add(DefaultWatch)) {
		t.Fatalf("after a quiet window: %s at %s, deleted %v", r.Stage, r.FinishedAt, s.deleted)
	}
	if len(r.References) != 1 || len(al.msgs) != 0 || r.Backup != "/backups/retire-1" {
		t.Fatalf("references %v, alerts %v, backup %q", r.References, al.msgs, r.Backup)
	}
	if got, want := s.calls, []string{"disable", "delete"}; !slices.Equal(got, want) {
		t.Fatalf("calls = %v, want %v", got, want)
	}
	if got, want := j.actions(), []string{ActionStart, ActionBackup, ActionDisable, ActionDelete, ActionReference}; !slices.Equal(got, want) {
		t.Fatalf("audit = %v, want %v", got, want)
	}
	if j.events[3] != ActionDelete+" by "+ActorRetire {
		t.Fatalf("delete event %q, want it by %s", j.events[3], ActorRetire)
	}
	if _, err := rt.Undo(t.Context(), r, s, "user:ana", "oops"); !errors.Is(err, ErrFinal) {
		t.Fatalf("undo after the deletion: %v, want ErrFinal", err)
	}
}

func TestRetirer_UndoWhileWatching(t *testing.T) {
	rt, s, j, _, _ := setup(backup{})
	r, _ := rt.Start(t.Context(), newRetirement(), s)
	r, err := rt.Undo(t.Context(), r, s, "user:bob", "the mobile app still calls it")
	if err != nil || r.Stage != StageCancelled || s.disabled {
		t.Fatalf("undo: %+v, %v", r, err)
	}
	if got := j.events[len(j.events)-1]; got != ActionUndo+" by user:bob" {
		t.Fatalf("last event %q", got)
	}
}
