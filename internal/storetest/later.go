package storetest

import (
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/shipgate/shipgate/internal/audit"
	"github.com/shipgate/shipgate/internal/dora"
	"github.com/shipgate/shipgate/internal/notify"
	"github.com/shipgate/shipgate/internal/retire"
	"github.com/shipgate/shipgate/internal/rollout"
	"github.com/shipgate/shipgate/internal/store"
	"github.com/shipgate/shipgate/internal/testsignal"
)

// This file is the contract of what later features keep in the store:
// DORA's release changes and incidents, the notification outbox, test
// runs, route usage and retirements.

// laterTests are the tests of this file, for RunWith.
var laterTests = []struct {
	name string
	fn   func(*testing.T, Backend)
}{
	{"DORA_Changes", testChanges},
	{"DORA_Incidents", testIncidents},
	{"Outbox", testOutbox},
	{"Outbox_ConcurrentHandles", testOutboxConcurrentHandles},
	{"TestRuns", testTestRuns},
	{"RouteUsage", testRouteUsage},
	{"RouteUsage_ConcurrentHandles", testRouteUsageConcurrentHandles},
	{"RouteUsage_Move", testRouteUsageMove},
	{"Retirements", testRetirements},
}

func putRelease(t *testing.T, s store.Store, app, version string) {
	t.Helper()
	rel := rollout.Release{App: app, Version: version, Commit: "sha-" + version, CommitTime: t0.Add(-time.Hour), CreatedAt: t0}
	if err := s.PutRelease(t.Context(), rel); err != nil {
		t.Fatal(err)
	}
}

func testChanges(t *testing.T, b Backend) {
	ctx := t.Context()
	s := b.Open(t, b.Fresh(t), func() time.Time { return t0 })
	putRelease(t, s, "shop", "v1")
	putRelease(t, s, "shop", "v2")

	err := s.PutChangeAudited(ctx, dora.Change{App: "shop", Version: "v9"}, Event("dora.change", "release/shop/v9"))
	if !errors.Is(err, rollout.ErrNotFound) {
		t.Fatalf("change of an unknown release = %v, want ErrNotFound", err)
	}
	if got := countAudit(t, s); got != 0 {
		t.Errorf("a refused change wrote %d audit events", got)
	}
	c := dora.Change{App: "shop", Version: "v2", Commits: []dora.Commit{{SHA: "c1", Time: t0.Add(-3 * time.Hour)}, {SHA: "c2", Time: t0.Add(-2 * time.Hour)}},
		Size: &dora.Size{Files: 3, Lines: 120, PRs: 1}}
	if err := s.PutChangeAudited(ctx, c, Event("dora.change", "release/shop/v2")); err != nil {
		t.Fatal(err)
	}
	// Replacing keeps one change per release; no size is no size.
	c.Commits, c.Size = c.Commits[:1], nil
	if err := s.PutChangeAudited(ctx, c, Event("dora.change", "release/shop/v2")); err != nil {
		t.Fatal(err)
	}
	got, err := s.ListChanges(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := []dora.Change{
		{App: "shop", Version: "v1", Commits: []dora.Commit{{SHA: "sha-v1", Time: t0.Add(-time.Hour)}}},
		{App: "shop", Version: "v2", Commits: []dora.Commit{{SHA: "c1", Time: t0.Add(-3 * time.Hour)}, {SHA: "sha-v2", Time: t0.Add(-time.Hour)}}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("ListChanges = %+v\nwant %+v", got, want)
	}
	if got := countAudit(t, s); got != 2 {
		t.Errorf("%d audit events, want 2 (one per change)", got)
	}
}

func testIncidents(t *testing.T, b Backend) {
	ctx := t.Context()
	s := b.Open(t, b.Fresh(t), func() time.Time { return t0 })
	event := func(action string) func(dora.Incident) audit.Event {
		return func(in dora.Incident) audit.Event {
			return Event(action, "incident/"+strconv.FormatInt(in.ID, 10))
		}
	}
	a := dora.Incident{App: "shop", Env: "production", DeployID: 7, Title: "checkout 500s"}
	if err := s.OpenIncidentAudited(ctx, &a, event("incident.open")); err != nil {
		t.Fatal(err)
	}
	bIn := dora.Incident{App: "shop", Env: "staging", Title: "slow", OpenedAt: t0.Add(time.Minute)}
	if err := s.OpenIncidentAudited(ctx, &bIn, event("incident.open")); err != nil {
		t.Fatal(err)
	}
	if a.ID == 0 || bIn.ID != a.ID+1 || !a.OpenedAt.Equal(t0) {
		t.Fatalf("opened incidents %+v and %+v: want IDs in order and the store's time", a, bIn)
	}
	resolved, err := s.ResolveIncidentAudited(ctx, a.ID, time.Time{}, 8, event("incident.resolve"))
	if err != nil {
		t.Fatal(err)
	}
	if resolved.FixDeployID != 8 || !resolved.ResolvedAt.Equal(t0) || resolved.DeployID != 7 {
		t.Errorf("resolved = %+v", resolved)
	}
	if _, err := s.ResolveIncidentAudited(ctx, a.ID, t0, 0, event("incident.resolve")); !errors.Is(err, rollout.ErrConflict) {
		t.Errorf("resolving twice = %v, want ErrConflict", err)
	}
	if _, err := s.ResolveIncidentAudited(ctx, 999, t0, 0, event("incident.resolve")); !errors.Is(err, rollout.ErrNotFound) {
		t.Errorf("resolving an unknown incident = %v, want ErrNotFound", err)
	}
	all, err := s.ListIncidents(ctx, "", "")
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 2 || !reflect.DeepEqual(all[0], resolved) || !reflect.DeepEqual(all[1], bIn) {
		t.Errorf("ListIncidents = %+v", all)
	}
	if got, _ := s.ListIncidents(ctx, "shop", "staging"); len(got) != 1 || got[0].ID != bIn.ID {
		t.Errorf("ListIncidents(shop, staging) = %+v", got)
	}
	if got, _ := s.ListIncidents(ctx, "api", ""); len(got) != 0 {
		t.Errorf("ListIncidents(api) = %+v", got)
	}
	events, err := s.ListAudit(ctx, audit.Filter{Subject: "incident/"})
	if err != nil || len(events) != 3 {
		t.Errorf("incident audit events = %d, %v; want 3 (two opened, one resolved)", len(events), err)
	}
}

func delivery(event, webhook string) notify.Delivery {
	return notify.Delivery{EventID: event, EventType: "rollout.succeeded", Webhook: webhook, Payload: []byte(`{"event":"` + event + `"}`)}
}

func testOutbox(t *testing.T, b Backend) {
	ctx := t.Context()
	s := b.Open(t, b.Fresh(t), func() time.Time { return t0 })
	if _, ok, err := s.NotifyCursor(ctx); ok || err != nil {
		t.Fatalf("cursor of a new store: ok %v, %v", ok, err)
	}
	for i := range 3 {
		r := NewRollout("shop", "production", "v"+strconv.Itoa(i))
		if err := s.Commit(ctx, rollout.Change{Rollout: &r, Audit: []audit.Event{Event(audit.ActionDeploy, "shop/production")}}); err != nil {
			t.Fatal(err)
		}
	}
	if last, err := s.LastAuditSeq(ctx); err != nil || last != 3 {
		t.Fatalf("LastAuditSeq = %d, %v; want 3", last, err)
	}
	if after, err := s.AuditAfter(ctx, 1, 1); err != nil || len(after) != 1 || after[0].Seq != 2 {
		t.Fatalf("AuditAfter(1, 1) = %+v, %v", after, err)
	}
	later := delivery("e3", "slack")
	later.NextAt = t0.Add(time.Hour)
	n, err := s.EnqueueNotifications(ctx, 2, []notify.Delivery{delivery("e1", "slack"), delivery("e1", "pager"), delivery("e2", "slack"), later})
	if err != nil || n != 4 {
		t.Fatalf("enqueue = %d, %v; want 4", n, err)
	}
	// Queued again (a notifier that crashed before moving its cursor):
	// nothing new, and a cursor of -1 stays where it is.
	if n, err := s.EnqueueNotifications(ctx, -1, []notify.Delivery{delivery("e1", "slack"), delivery("e4", "slack")}); err != nil || n != 1 {
		t.Fatalf("enqueue again = %d, %v; want 1", n, err)
	}
	if seq, ok, err := s.NotifyCursor(ctx); err != nil || !ok || seq != 2 {
		t.Fatalf("cursor = %d, %v, %v; want 2", seq, ok, err)
	}
	due, err := s.DueNotifications(ctx, "slack", t0, 10)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, d := range due {
		ids = append(ids, d.EventID)
	}
	if !reflect.DeepEqual(ids, []string{"e1", "e2", "e4"}) {
		t.Fatalf("due to slack at t0 = %v, want e1 e2 e4 (e3 is later)", ids)
	}
	if string(due[0].Payload) != `{"event":"e1"}` || due[0].State != notify.StatePending || !due[0].CreatedAt.Equal(t0) || !due[0].NextAt.Equal(t0) {
		t.Errorf("due[0] = %+v", due[0])
	}
	sent := due[0]
	sent.State, sent.Attempts, sent.LastStatus, sent.SentAt = notify.StateSent, 1, 200, t0.Add(time.Second)
	if err := s.UpdateNotification(ctx, sent); err != nil {
		t.Fatal(err)
	}
	retry := due[1]
	retry.Attempts, retry.LastError, retry.LastStatus, retry.NextAt = 1, "503 Service Unavailable", 503, t0.Add(time.Minute)
	if err := s.UpdateNotification(ctx, retry); err != nil {
		t.Fatal(err)
	}
	if due, _ := s.DueNotifications(ctx, "slack", t0, 10); len(due) != 1 || due[0].EventID != "e4" {
		t.Errorf("due after one sent and one retried later = %+v, want e4", due)
	}
	list, err := s.ListNotifications(ctx, notify.StateSent, 0)
	if err != nil || len(list) != 1 || !reflect.DeepEqual(list[0], sent) {
		t.Errorf("sent = %+v, %v; want %+v", list, err, sent)
	}
	all, err := s.ListNotifications(ctx, "", 2)
	if err != nil || len(all) != 2 || all[0].ID <= all[1].ID || all[0].EventID != "e4" {
		t.Errorf("ListNotifications(all, 2) = %+v, %v; want the newest two, newest first", all, err)
	}
}

// testOutboxConcurrentHandles: two servers queueing the same events at once
// queue each once.
func testOutboxConcurrentHandles(t *testing.T, b Backend) {
	ctx := t.Context()
	where := b.Fresh(t)
	handles := []store.Store{b.Open(t, where, nil), b.Open(t, where, nil)}
	var ds []notify.Delivery
	for i := range 20 {
		ds = append(ds, delivery("e"+strconv.Itoa(i), "slack"))
	}
	added := make([]int, 4)
	errs := make([]error, 4)
	var wg sync.WaitGroup
	for w := range added {
		wg.Go(func() { added[w], errs[w] = handles[w%2].EnqueueNotifications(ctx, int64(w), ds) })
	}
	wg.Wait()
	total := 0
	for w, err := range errs {
		if err != nil {
			t.Fatalf("writer %d: %v", w, err)
		}
		total += added[w]
	}
	list, err := handles[0].ListNotifications(ctx, "", 100)
	if err != nil {
		t.Fatal(err)
	}
	if total != 20 || len(list) != 20 {
		t.Errorf("four writers queueing 20 events: %d new, %d queued; want 20 and 20", total, len(list))
	}
}

func testTestRuns(t *testing.T, b Backend) {
	ctx := t.Context()
	s := b.Open(t, b.Fresh(t), func() time.Time { return t0 })
	cases := []testsignal.Case{
		{ID: "b.second", File: "b_test.go", Level: "unit", Attempts: []testsignal.Outcome{testsignal.Failed, testsignal.Passed}, Duration: 2 * time.Second},
		{ID: "a.first", Level: "e2e", Attempts: []testsignal.Outcome{testsignal.Failed}, Duration: time.Second, Message: "boom"},
	}
	var stored []testsignal.Run
	for i, v := range []string{"1.0", "1.1", "1.1"} {
		run := testsignal.Run{App: "shop", Version: v, Commit: "c" + strconv.Itoa(i), CIDuration: 9 * time.Minute, Infra: i == 2, Cases: cases}
		if i > 0 {
			run.At = t0.Add(time.Duration(i) * time.Hour)
		}
		got, err := s.AddTestRun(ctx, run, audit.Event{Actor: "user:ci", Action: testsignal.ActionTestRun, Subject: "tests/shop/" + v, Data: map[string]string{}})
		if err != nil {
			t.Fatal(err)
		}
		stored = append(stored, got)
	}
	if other, err := s.AddTestRun(ctx, testsignal.Run{App: "api", Version: "9", At: t0}, audit.Event{Actor: "user:ci", Action: testsignal.ActionTestRun, Data: map[string]string{}}); err != nil || other.ID != stored[2].ID+1 {
		t.Fatalf("a run of another app = %+v, %v", other, err)
	}
	if !stored[0].At.Equal(t0) || stored[1].ID != stored[0].ID+1 {
		t.Fatalf("stored runs = %+v", stored)
	}
	runs, err := s.TestRuns(ctx, "shop", "", 2)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(runs, stored[1:]) {
		t.Errorf("the latest two runs = %+v\nwant %+v", runs, stored[1:])
	}
	if runs, _ := s.TestRuns(ctx, "shop", "1.0", 10); len(runs) != 1 || runs[0].ID != stored[0].ID || len(runs[0].Cases) != 2 || runs[0].Cases[0].ID != "b.second" {
		t.Errorf("runs of 1.0 = %+v, want one with its cases in their order", runs)
	}
	events, err := s.ListAudit(ctx, audit.Filter{Action: testsignal.ActionTestRun})
	if err != nil || len(events) != 4 || events[1].Data["run"] != strconv.FormatInt(stored[2].ID, 10) {
		t.Errorf("test run events = %+v, %v; want four, each naming its run", events, err)
	}
}

func testRouteUsage(t *testing.T, b Backend) {
	ctx := t.Context()
	s := newStore(t, b)
	day1 := time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)
	if since, err := s.TrackedSince(ctx); err != nil || !since.IsZero() {
		t.Fatalf("TrackedSince of a new store = %v, %v", since, err)
	}
	for _, at := range []time.Time{day1, day1.Add(time.Hour)} {
		if err := s.TrackRoutes(ctx, "production", at); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.TrackRoutes(ctx, "staging", day1.Add(5*time.Hour)); err != nil {
		t.Fatal(err)
	}
	for _, d := range []struct {
		at time.Time
		n  uint64
	}{{day1, 5}, {day1.Add(2 * time.Hour), 3}, {day1.Add(48 * time.Hour), 2}} {
		if err := s.AddRouteUsage(ctx, "production", map[string]retire.RouteCount{"/api/v1": {Count: d.n, Last: d.at}, "/api": {Count: d.n, Last: d.at}}); err != nil {
			t.Fatal(err)
		}
	}
	u, err := s.RouteUsage(ctx, "production", "/api/v1", day1.Add(24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if want := (retire.Usage{Total: 10, Since: 2, Last: day1.Add(48 * time.Hour), TrackedSince: day1}); u != want {
		t.Fatalf("usage = %+v, want %+v", u, want)
	}
	// The first day's last request was at 12:00: since 11:00 it counts whole.
	if u, _ := s.RouteUsage(ctx, "production", "/api/v1", day1.Add(time.Hour)); u.Since != 10 {
		t.Errorf("since 11:00: %d, want the whole first day and the third", u.Since)
	}
	if u, _ := s.RouteUsage(ctx, "qa", "/api/v1", day1); u != (retire.Usage{}) {
		t.Errorf("an environment never counted: %+v", u)
	}
	if since, err := s.TrackedSince(ctx); err != nil || !since.Equal(day1) {
		t.Errorf("TrackedSince = %v, %v; want the first environment's", since, err)
	}
}

// testRouteUsageMove: the counters of an environment move under another
// name, once: a name counted already keeps its own.
func testRouteUsageMove(t *testing.T, b Backend) {
	ctx := t.Context()
	s := newStore(t, b)
	day1 := time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)
	if err := s.TrackRoutes(ctx, "production", day1); err != nil {
		t.Fatal(err)
	}
	if err := s.AddRouteUsage(ctx, "production", map[string]retire.RouteCount{"/api": {Count: 7, Last: day1}}); err != nil {
		t.Fatal(err)
	}
	if err := s.MoveRouteCounters(ctx, "production", "shop/production"); err != nil {
		t.Fatal(err)
	}
	if u, err := s.RouteUsage(ctx, "shop/production", "/api", day1.Add(-time.Hour)); err != nil || u != (retire.Usage{Total: 7, Since: 7, Last: day1, TrackedSince: day1}) {
		t.Fatalf("moved usage = %+v, %v; want the 7 requests tracked since day 1", u, err)
	}
	if u, _ := s.RouteUsage(ctx, "production", "/api", day1.Add(-time.Hour)); u != (retire.Usage{}) {
		t.Fatalf("usage left under the old name: %+v", u)
	}
	// Counted again under the old name, then moved again: the new name
	// is counted already and keeps its own.
	if err := s.TrackRoutes(ctx, "production", day1.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := s.AddRouteUsage(ctx, "production", map[string]retire.RouteCount{"/api": {Count: 1, Last: day1.Add(time.Hour)}}); err != nil {
		t.Fatal(err)
	}
	if err := s.MoveRouteCounters(ctx, "production", "shop/production"); err != nil {
		t.Fatal(err)
	}
	if u, _ := s.RouteUsage(ctx, "shop/production", "/api", day1.Add(-time.Hour)); u.Total != 7 {
		t.Fatalf("a second move changed the counted name: %+v", u)
	}
	if err := s.MoveRouteCounters(ctx, "qa", "shop/qa"); err != nil {
		t.Fatalf("moving a name never counted: %v", err)
	}
	if u, _ := s.RouteUsage(ctx, "shop/qa", "/api", day1); u != (retire.Usage{}) {
		t.Fatalf("a name never counted has counts after a move: %+v", u)
	}
}

// testRouteUsageConcurrentHandles: two servers adding counts to the same
// day at once lose none.
func testRouteUsageConcurrentHandles(t *testing.T, b Backend) {
	ctx := t.Context()
	where := b.Fresh(t)
	handles := []store.Store{b.Open(t, where, nil), b.Open(t, where, nil)}
	at := time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)
	const workers, adds = 4, 20
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range adds {
				d := map[string]retire.RouteCount{"/a": {Count: 1, Last: at.Add(time.Duration(i) * time.Second)}, "/b": {Count: 2, Last: at}}
				if err := handles[w%2].AddRouteUsage(ctx, "production", d); err != nil {
					errs[w] = err
					return
				}
			}
		})
	}
	wg.Wait()
	for w, err := range errs {
		if err != nil {
			t.Fatalf("writer %d: %v", w, err)
		}
	}
	for prefix, want := range map[string]uint64{"/a": workers * adds, "/b": 2 * workers * adds} {
		u, err := handles[1].RouteUsage(ctx, "production", prefix, time.Time{})
		if err != nil || u.Total != want {
			t.Errorf("%s: %+v, %v; want %d requests", prefix, u, err, want)
		}
	}
}

func testRetirements(t *testing.T, b Backend) {
	ctx := t.Context()
	s := b.Open(t, b.Fresh(t), func() time.Time { return t0 })
	r := retire.Retirement{Kind: retire.KindRoute, Env: "production", Subject: "/api/v1/legacy", Actor: "user:ana", Stage: retire.StageCheck, StartedAt: t0}
	if err := s.Save(ctx, &r, "user:ana", retire.ActionStart, "retire"); err != nil {
		t.Fatal(err)
	}
	if r.ID == 0 {
		t.Fatal("Save did not set the ID")
	}
	r.Stage, r.Baseline = retire.StageWatch, 42
	if err := s.Save(ctx, &r, "user:ana", retire.ActionDisable, "disabled"); err != nil {
		t.Fatal(err)
	}
	other := retire.Retirement{Kind: retire.KindFlag, Subject: "old-flag", Actor: "user:bo", Stage: retire.StageFailed}
	if err := s.Save(ctx, &other, "user:bo", retire.ActionFail, "backup failed"); err != nil {
		t.Fatal(err)
	}
	got, err := s.GetRetirement(ctx, r.ID)
	if err != nil || !reflect.DeepEqual(got, r) {
		t.Fatalf("GetRetirement = %+v, %v; want %+v", got, err, r)
	}
	if _, err := s.GetRetirement(ctx, 999); !errors.Is(err, rollout.ErrNotFound) {
		t.Errorf("GetRetirement(999) = %v, want ErrNotFound", err)
	}
	unknown := retire.Retirement{ID: 999, Kind: retire.KindFlag, Subject: "x", Stage: retire.StageWatch}
	if err := s.Save(ctx, &unknown, "user:bo", retire.ActionDisable, "x"); !errors.Is(err, rollout.ErrNotFound) {
		t.Errorf("Save of an unknown retirement = %v, want ErrNotFound", err)
	}
	if list, _ := s.ListRetirements(ctx, retire.StageWatch); len(list) != 1 || list[0].ID != r.ID {
		t.Errorf("watching = %+v", list)
	}
	if list, _ := s.ListRetirements(ctx); len(list) != 2 || list[1].ID != other.ID {
		t.Errorf("all = %+v", list)
	}
	if list, _ := s.ListRetirements(ctx, retire.StageDeleted); len(list) != 0 {
		t.Errorf("deleted = %+v", list)
	}
	events, err := s.ListAudit(ctx, audit.Filter{Subject: "retire/"})
	if err != nil || len(events) != 3 {
		t.Fatalf("audit = %+v, %v", events, err)
	}
	if e := events[1]; e.Action != retire.ActionDisable || e.Subject != "retire/route/api/v1/legacy" || e.Data["retirement"] != fmt.Sprint(r.ID) || e.Outcome != "ok" {
		t.Errorf("disable event = %+v", e)
	}
	if events[0].Outcome != "failed" {
		t.Errorf("a failed retirement's event has outcome %q, want failed", events[0].Outcome)
	}
}
