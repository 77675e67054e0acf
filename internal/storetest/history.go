package storetest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shipgate/shipgate/internal/audit"
	"github.com/shipgate/shipgate/internal/auth"
	"github.com/shipgate/shipgate/internal/dora"
	"github.com/shipgate/shipgate/internal/flags"
	"github.com/shipgate/shipgate/internal/notify"
	"github.com/shipgate/shipgate/internal/retire"
	"github.com/shipgate/shipgate/internal/rollout"
	"github.com/shipgate/shipgate/internal/store"
	"github.com/shipgate/shipgate/internal/testsignal"
)

// GenerateHistory writes a history into s through its ordinary methods, as
// a server would: releases with checks, n rollouts across two apps and
// two environments ending in every phase, environment states, tokens,
// flags, a segment, flag usage, DORA changes and incidents, notifications
// (sent and pending) and the notifier's cursor, test runs, route usage and
// retirements, the server secret of the release digests, and the audit
// events of all of it.
func GenerateHistory(t testing.TB, s store.Store, n int) {
	t.Helper()
	ctx := t.Context()
	phases := []rollout.Phase{rollout.PhaseSucceeded, rollout.PhaseRolledBack, rollout.PhaseFailed, rollout.PhaseSucceeded, rollout.PhaseRunning}
	for i := range n {
		app, env := "shop", "production"
		if i%2 == 1 {
			env = "staging"
		}
		if i%5 == 4 {
			app = "api"
		}
		version := "v" + strconv.Itoa(i+1)
		rel := rollout.Release{App: app, Version: version, Commit: fmt.Sprintf("%040x", i+1), Vars: map[string]string{"N": strconv.Itoa(i)},
			CommitTime: t0.Add(time.Duration(i) * time.Minute),
			Checks:     map[string]rollout.CheckState{"unit": rollout.CheckPassed}, CreatedAt: t0.Add(time.Duration(i) * time.Minute)}
		if i%2 == 0 {
			rel.Image = "registry.example/" + app + ":" + version // a copy keeps a release's image
		}
		r := NewRollout(app, env, version)
		r.Phase = rollout.PhaseRunning
		if err := s.Commit(ctx, rollout.Change{Release: &rel, Rollout: &r,
			Audit: []audit.Event{Event(audit.ActionDeploy, app+"/"+env+"/"+version)}}); err != nil {
			t.Fatalf("history: deploy %d: %v", i, err)
		}
		r.Phase = phases[i%len(phases)]
		r.StepIndex = len(r.Steps)
		st := rollout.EnvState{App: app, Env: env, Stable: version, UpdatedAt: t0.Add(time.Duration(i) * time.Minute)}
		if err := s.Commit(ctx, rollout.Change{Rollout: &r, Env: &st,
			Audit: []audit.Event{Event(audit.ActionStep, "rollout/"+strconv.FormatInt(r.ID, 10)), Event(audit.ActionSucceed, "rollout/"+strconv.FormatInt(r.ID, 10))}}); err != nil {
			t.Fatalf("history: finish %d: %v", i, err)
		}
	}
	for _, name := range []string{"admin", "ci", "dash"} {
		tok := auth.Token{Name: name, Role: auth.RoleDeployer, CreatedAt: t0}
		if err := s.CreateTokenAudited(ctx, tok, auth.Hash("sgt_"+name), audit.Event{Actor: "user:admin", Action: "token.create", Subject: "token/" + name}); err != nil {
			t.Fatalf("history: token %s: %v", name, err)
		}
	}
	if err := s.CommitFlags(ctx, flags.Change{
		Put:         []*flags.Flag{testFlag("new-checkout"), testFlag("dark-mode")},
		PutSegments: []flags.Segment{{Name: "internal", Rule: json.RawMessage(`{"ends_with":[{"var":"email"},"@acme.com"]}`)}},
		Audit:       []audit.Event{{Actor: "user:ana", Action: flags.ActionCreate, Subject: "flag/new-checkout"}},
	}); err != nil {
		t.Fatalf("history: flags: %v", err)
	}
	if err := s.AddFlagUsage(ctx, map[string]flags.Usage{"new-checkout": {Variants: map[string]uint64{"on": 30, "off": 12}, Last: t0.Add(time.Hour)}}); err != nil {
		t.Fatalf("history: flag usage: %v", err)
	}
	if n > 0 {
		GenerateLater(t, s, "shop", "v1")
	}
	// The key of the release digests, made as a server starting on the
	// store makes it.
	if _, err := s.Secret(ctx, "release_digest"); err != nil {
		t.Fatalf("history: server secret: %v", err)
	}
}

// GenerateLater writes what later features keep in s: the change of the
// recorded release app version, two incidents (one resolved),
// notifications (one sent, two pending) and the notifier's cursor, two
// test runs of that release, route usage of production on two days, and a
// retirement being watched, each with its audit events.
func GenerateLater(t testing.TB, s store.Store, app, version string) {
	t.Helper()
	ctx := t.Context()
	c := dora.Change{App: app, Version: version, Commits: []dora.Commit{{SHA: "c0ffee", Time: t0.Add(-time.Hour)}}, Size: &dora.Size{Files: 4, Lines: 80, PRs: 1}}
	if err := s.PutChangeAudited(ctx, c, Event("dora.change", "release/"+app+"/"+version)); err != nil {
		t.Fatalf("history: change: %v", err)
	}
	for i := range 2 {
		in := dora.Incident{App: app, Env: "production", DeployID: int64(i + 1), Title: "incident " + strconv.Itoa(i), OpenedAt: t0.Add(time.Duration(i) * time.Hour)}
		if err := s.OpenIncidentAudited(ctx, &in, func(in dora.Incident) audit.Event {
			return Event("incident.open", "incident/"+strconv.FormatInt(in.ID, 10))
		}); err != nil {
			t.Fatalf("history: incident: %v", err)
		}
		if i == 0 {
			if _, err := s.ResolveIncidentAudited(ctx, in.ID, t0.Add(30*time.Minute), 2, func(in dora.Incident) audit.Event {
				return Event("incident.resolve", "incident/"+strconv.FormatInt(in.ID, 10))
			}); err != nil {
				t.Fatalf("history: resolve incident: %v", err)
			}
		}
	}
	var ds []notify.Delivery
	for i := range 3 {
		ds = append(ds, notify.Delivery{EventID: "ev" + strconv.Itoa(i), EventType: "rollout.succeeded", Webhook: "slack", Payload: []byte(`{"n":` + strconv.Itoa(i) + `}`), NextAt: t0})
	}
	if _, err := s.EnqueueNotifications(ctx, 5, ds); err != nil {
		t.Fatalf("history: notifications: %v", err)
	}
	due, err := s.DueNotifications(ctx, "slack", t0, 1)
	if err != nil || len(due) != 1 {
		t.Fatalf("history: due notifications: %v, %v", due, err)
	}
	due[0].State, due[0].Attempts, due[0].LastStatus, due[0].SentAt = notify.StateSent, 1, 204, t0.Add(time.Second)
	if err := s.UpdateNotification(ctx, due[0]); err != nil {
		t.Fatalf("history: update notification: %v", err)
	}
	for i := range 2 {
		run := testsignal.Run{App: app, Version: version, Commit: "c0ffee", At: t0.Add(time.Duration(i) * time.Minute), CIDuration: 7 * time.Minute, Cases: []testsignal.Case{
			{ID: "cart.add", File: "cart_test.go", Level: "unit", Attempts: []testsignal.Outcome{testsignal.Failed, testsignal.Passed}, Duration: time.Second},
			{ID: "checkout.pay", Level: "e2e", Attempts: []testsignal.Outcome{testsignal.Passed}, Duration: 3 * time.Second},
		}}
		if _, err := s.AddTestRun(ctx, run, audit.Event{Actor: "user:ci", Action: testsignal.ActionTestRun, Subject: "tests/" + app + "/" + version, Data: map[string]string{}}); err != nil {
			t.Fatalf("history: test run: %v", err)
		}
	}
	if err := s.TrackRoutes(ctx, "production", t0); err != nil {
		t.Fatalf("history: track routes: %v", err)
	}
	for day := range 2 {
		at := t0.Add(time.Duration(day) * 24 * time.Hour)
		if err := s.AddRouteUsage(ctx, "production", map[string]retire.RouteCount{"/api/v1": {Count: 17, Last: at}, "/": {Count: 400, Last: at}}); err != nil {
			t.Fatalf("history: route usage: %v", err)
		}
	}
	// Watched for 50 years: a server that resumes it keeps watching.
	const watch = 50 * 365 * 24 * time.Hour
	r := retire.Retirement{Kind: retire.KindRoute, Env: "production", Subject: "/legacy/v0", Actor: "user:ana", Stage: retire.StageCheck, StartedAt: t0, Cycle: time.Hour, Watch: watch}
	if err := s.Save(ctx, &r, "user:ana", retire.ActionStart, "retire /legacy/v0"); err != nil {
		t.Fatalf("history: retirement: %v", err)
	}
	r.Stage, r.Baseline, r.DisabledAt, r.WatchUntil = retire.StageWatch, 34, t0.Add(time.Minute), t0.Add(time.Minute+watch)
	if err := s.Save(ctx, &r, "user:ana", retire.ActionDisable, "disabled"); err != nil {
		t.Fatalf("history: retirement: %v", err)
	}
}

func testExportImport(t *testing.T, b Backend) {
	ctx := t.Context()
	src := newStore(t, b)
	GenerateHistory(t, src, 25)
	snap, err := src.Export(ctx)
	if err != nil {
		t.Fatalf("Export: %v", err)
	}
	if got, want := len(snap.Rollouts), 25; got != want {
		t.Fatalf("exported %d rollouts, want %d", got, want)
	}
	c := snap.Counts()
	if c.Changes != 1 || c.Incidents != 2 || c.Outbox != 3 || c.TestRuns != 2 || c.RouteDays != 4 || c.Retirements != 1 || c.Secrets != 1 ||
		snap.NotifyCursor == nil || len(snap.RouteTracking) != 1 || len(snap.TestRuns[0].Cases) != 2 {
		t.Fatalf("exported %+v (cursor %v, tracking %v): the history of later features is missing", c, snap.NotifyCursor, snap.RouteTracking)
	}
	dst := newStore(t, b)
	counts, err := store.Copy(ctx, src, dst)
	if err != nil {
		t.Fatalf("Copy: %v", err)
	}
	if got, want := counts, snap.Counts(); got != want {
		t.Errorf("Copy counted %+v, want %+v", got, want)
	}
	again, err := dst.Export(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(again, snap) {
		t.Errorf("the copy differs from the source:\n%+v\nwant\n%+v", again, snap)
	}
	// The copy goes on where the source was: the next rollout's ID and
	// the next event's seq follow the copied ones.
	r := NewRollout("shop", "production", "v99")
	events := []audit.Event{Event(audit.ActionDeploy, "shop/production/v99")}
	if err := dst.Commit(ctx, rollout.Change{Rollout: &r, Audit: events}); err != nil {
		t.Fatalf("Commit after import: %v", err)
	}
	if got, want := r.ID, snap.Rollouts[len(snap.Rollouts)-1].ID+1; got != want {
		t.Errorf("next rollout ID after import = %d, want %d", got, want)
	}
	if got, want := events[0].Seq, int64(len(snap.Audit)+1); got != want {
		t.Errorf("next audit seq after import = %d, want %d", got, want)
	}
	chain, err := dst.AuditChain(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := audit.Verify(chain); err != nil {
		t.Errorf("chain after import and a new event: %v", err)
	}
	// The copy's other IDs follow the copied ones too.
	in := dora.Incident{App: "shop", Env: "production", Title: "after"}
	if err := dst.OpenIncidentAudited(ctx, &in, func(dora.Incident) audit.Event { return Event("incident.open", "incident/after") }); err != nil {
		t.Fatal(err)
	}
	if got, want := in.ID, snap.Incidents[len(snap.Incidents)-1].ID+1; got != want {
		t.Errorf("next incident ID after import = %d, want %d", got, want)
	}
	run, err := dst.AddTestRun(ctx, testsignal.Run{App: "shop", Version: "v2"}, audit.Event{Actor: "user:ci", Action: testsignal.ActionTestRun, Data: map[string]string{}})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := run.ID, snap.TestRuns[len(snap.TestRuns)-1].ID+1; got != want {
		t.Errorf("next test run ID after import = %d, want %d", got, want)
	}
	if n, err := dst.EnqueueNotifications(ctx, -1, []notify.Delivery{{EventID: "ev0", Webhook: "slack", EventType: "x", Payload: []byte("{}")}}); err != nil || n != 0 {
		t.Errorf("a copied notification queued again = %d, %v; want 0 (it is there)", n, err)
	}
	// Secrets keep working: a token authenticates by the same hash.
	if _, err := dst.TokenByHash(ctx, auth.Hash("sgt_ci")); err != nil {
		t.Errorf("copied token: %v", err)
	}
	// The key of the release digests is the source's: a server on the
	// copy computes the digests the audit log and approvals hold.
	want, err := src.Secret(ctx, "release_digest")
	if err != nil {
		t.Fatal(err)
	}
	if got, err := dst.Secret(ctx, "release_digest"); err != nil || !bytes.Equal(got, want) {
		t.Errorf("the copy's digest key differs from the source's (%v): the copied digests would not match", err)
	}
}

// testImportSecrets: a target that already holds the source's secrets
// (and nothing else) takes the copy; one that made its own refuses it,
// writing nothing, rather than keep a key the copied digests do not match
// or overwrite one its own digests were made with.
func testImportSecrets(t *testing.T, b Backend) {
	ctx := t.Context()
	src := newStore(t, b)
	GenerateHistory(t, src, 3)
	snap, err := src.Export(ctx)
	if err != nil {
		t.Fatal(err)
	}
	same := newStore(t, b)
	if err := same.Import(ctx, &store.Snapshot{Secrets: snap.Secrets}); err != nil {
		t.Fatalf("Import of the secrets alone: %v", err)
	}
	if err := same.Import(ctx, snap); err != nil {
		t.Errorf("Import into a store holding the same secret = %v, want it taken", err)
	}

	other := newStore(t, b)
	if _, err := other.Secret(ctx, "release_digest"); err != nil {
		t.Fatal(err)
	}
	err = other.Import(ctx, snap)
	if !errors.Is(err, store.ErrSecretMismatch) || !errors.Is(err, rollout.ErrConflict) {
		t.Fatalf("Import into a store with its own digest key = %v, want ErrSecretMismatch and ErrConflict", err)
	}
	if strings.Contains(err.Error(), fmt.Sprintf("%x", snap.Secrets[0].Value)) || strings.Contains(err.Error(), string(snap.Secrets[0].Value)) {
		t.Errorf("the refusal shows the secret: %v", err)
	}
	if got := countRollouts(t, other); got != 0 {
		t.Errorf("refused Import wrote %d rollouts", got)
	}
	if got := countAudit(t, other); got != 0 {
		t.Errorf("refused Import wrote %d audit events", got)
	}
}

func testImportRefusesNonEmpty(t *testing.T, b Backend) {
	ctx := t.Context()
	src := newStore(t, b)
	GenerateHistory(t, src, 3)
	snap, err := src.Export(ctx)
	if err != nil {
		t.Fatal(err)
	}
	dst := newStore(t, b)
	if err := dst.CreateToken(ctx, auth.Token{Name: "x", Role: auth.RoleViewer}, auth.Hash("x")); err != nil {
		t.Fatal(err)
	}
	err = dst.Import(ctx, snap)
	if !errors.Is(err, store.ErrNotEmpty) || !errors.Is(err, rollout.ErrConflict) {
		t.Fatalf("Import into a store with a token = %v, want ErrNotEmpty and ErrConflict", err)
	}
	if got := countRollouts(t, dst); got != 0 {
		t.Errorf("refused Import wrote %d rollouts", got)
	}
}

// testCommitConcurrentHandles is two servers on one store: writers on two
// handles at once must extend one linear audit chain and never share a
// rollout ID.
func testCommitConcurrentHandles(t *testing.T, b Backend) {
	ctx := t.Context()
	where := b.Fresh(t)
	handles := []store.Store{b.Open(t, where, nil), b.Open(t, where, nil)}
	const workers, commits = 6, 15
	ids := make([][]int64, workers)
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		s := handles[w%len(handles)]
		wg.Go(func() {
			for i := range commits {
				r := NewRollout("shop", "env"+strconv.Itoa(w), "v"+strconv.Itoa(i))
				events := []audit.Event{Event(audit.ActionDeploy, fmt.Sprintf("w%d/%d", w, i)), Event(audit.ActionStep, fmt.Sprintf("w%d/%d", w, i))}
				if err := s.Commit(ctx, rollout.Change{Rollout: &r, Audit: events}); err != nil {
					errs[w] = err
					return
				}
				if events[1].Seq != events[0].Seq+1 {
					errs[w] = fmt.Errorf("one Commit's events got seqs %d and %d, want adjacent", events[0].Seq, events[1].Seq)
					return
				}
				ids[w] = append(ids[w], r.ID)
			}
		})
	}
	wg.Wait()
	for w, err := range errs {
		if err != nil {
			t.Fatalf("worker %d: %v", w, err)
		}
	}
	seen := map[int64]bool{}
	for _, list := range ids {
		for _, id := range list {
			if seen[id] {
				t.Errorf("rollout ID %d given twice", id)
			}
			seen[id] = true
		}
	}
	chain, err := handles[0].AuditChain(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := len(chain), workers*commits*2; got != want {
		t.Fatalf("%d events, want %d", got, want)
	}
	if err := audit.Verify(chain); err != nil {
		t.Errorf("Verify: %v", err)
	}
}

// testCommitRelease: the release a deploy brings is written with its
// rollout, and a conflicting one refuses the whole Commit.
func testCommitRelease(t *testing.T, b Backend) {
	ctx := t.Context()
	s := newStore(t, b)
	rel := rollout.Release{App: "shop", Version: "v2", Commit: "abc", CreatedAt: t0}
	r := NewRollout("shop", "production", "v2")
	if err := s.Commit(ctx, rollout.Change{Release: &rel, Rollout: &r, Audit: []audit.Event{Event(audit.ActionDeploy, "shop/production/v2")}}); err != nil {
		t.Fatalf("Commit with a release: %v", err)
	}
	if got, err := s.GetRelease(ctx, "shop", "v2"); err != nil || !reflect.DeepEqual(got, rel) {
		t.Fatalf("GetRelease = %+v, %v; want %+v", got, err, rel)
	}
	other := rollout.Release{App: "shop", Version: "v2", Commit: "def"}
	r2 := NewRollout("shop", "staging", "v2")
	err := s.Commit(ctx, rollout.Change{Release: &other, Rollout: &r2, Audit: []audit.Event{Event(audit.ActionDeploy, "shop/staging/v2")}})
	if !errors.Is(err, rollout.ErrConflict) {
		t.Fatalf("Commit with a conflicting release = %v, want ErrConflict", err)
	}
	if r2.ID != 0 {
		t.Errorf("refused Commit set the rollout's ID to %d", r2.ID)
	}
	if got := countRollouts(t, s); got != 1 {
		t.Errorf("%d rollouts after a refused Commit, want 1", got)
	}
	if got := countAudit(t, s); got != 1 {
		t.Errorf("%d audit events after a refused Commit, want 1", got)
	}
}
