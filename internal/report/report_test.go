package report

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/shipgate/shipgate/internal/audit"
	"github.com/shipgate/shipgate/internal/dora"
	"github.com/shipgate/shipgate/internal/flags"
	"github.com/shipgate/shipgate/internal/rollout"
	"github.com/shipgate/shipgate/internal/sqlite"
	"github.com/shipgate/shipgate/internal/testsignal"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// monday is the start of ISO week 2026-W48 in UTC; the report's clock is
// the Tuesday after it, so "last week" is 2026-W48.
var (
	monday = time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC)
	now    = time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
)

// seedSpec is one production deploy of the seeded history.
type seedSpec struct {
	app, version string
	start        time.Time
	outcome      string // live, canary-fail, gate-stop
	hotfix       bool
	lead         time.Duration // first commit before start; 0: unknown
	lines, prs   int
}

// seededStore returns a real store holding five weeks of two apps'
// production deploys: quiet weeks, a canary convicted by its error rate,
// a rollout stopped before users, an incident fixed by a hotfix, a
// migration revert, change sizes and commit times.
func seededStore(t *testing.T) (*sqlite.Store, *flags.Service) {
	t.Helper()
	ctx := t.Context()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "shipgate.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })

	d := func(week, day int, h time.Duration) time.Time { return monday.AddDate(0, 0, 7*week+day).Add(h) }
	specs := []seedSpec{
		// Four weeks before: shop deploys steadily; api once, convicted.
		{"shop", "1.0.0", d(-4, 0, 10*time.Hour), "live", false, 20 * time.Hour, 80, 1},
		{"shop", "1.1.0", d(-4, 2, 10*time.Hour), "live", false, 30 * time.Hour, 300, 2},
		{"shop", "1.2.0", d(-3, 1, 11*time.Hour), "live", false, 50 * time.Hour, 120, 1},
		{"api", "7.0.0", d(-3, 3, 15*time.Hour), "canary-fail", false, 9 * 24 * time.Hour, 2600, 16},
		{"shop", "1.3.0", d(-1, 0, 9*time.Hour), "live", false, 26 * time.Hour, 40, 1},
		// 2026-W48.
		{"shop", "1.4.0", d(0, 0, 10*time.Hour), "live", false, 4 * time.Hour, 60, 1},
		{"shop", "1.5.0", d(0, 1, 14*time.Hour), "canary-fail", false, 3 * 24 * time.Hour, 2200, 15},
		{"shop", "1.5.1", d(0, 2, 9*time.Hour), "live", false, 27 * time.Hour, 90, 1},
		{"shop", "1.5.2", d(0, 2, 16*time.Hour), "gate-stop", false, 5 * time.Hour, 30, 1},
		{"shop", "1.6.0", d(0, 3, 10*time.Hour), "live", false, 6 * 24 * time.Hour, 700, 4},
		{"shop", "1.6.1", d(0, 3, 18*time.Hour), "live", true, 2 * time.Hour, 12, 1},
		{"api", "7.1.0", d(0, 4, 11*time.Hour), "live", false, 40 * time.Hour, 150, 2},
	}
	for i, s := range specs {
		id := int64(i + 1)
		rel := rollout.Release{App: s.app, Version: s.version, Commit: "sha" + s.version, CreatedAt: s.start.Add(-time.Hour)}
		if err := st.PutRelease(ctx, rel); err != nil {
			t.Fatal(err)
		}
		if s.lead > 0 {
			c := dora.Change{App: s.app, Version: s.version, Size: &dora.Size{Files: 1 + s.lines/50, Lines: s.lines, PRs: s.prs},
				Commits: []dora.Commit{{SHA: "a" + s.version, Time: s.start.Add(-s.lead)}, {SHA: "b" + s.version, Time: s.start.Add(-time.Hour)}}}
			if err := st.PutChangeAudited(ctx, c, audit.Event{Actor: "user:ci", Action: audit.ActionReleaseChange, Subject: s.app + "/" + s.version, Time: s.start}); err != nil {
				t.Fatal(err)
			}
		}
		r := rollout.Rollout{App: s.app, Env: "production", Kind: rollout.KindDeploy, Version: s.version, Hotfix: s.hotfix,
			Actor: "user:ci", CreatedAt: s.start, UpdatedAt: s.start}
		var events []audit.Event
		switch s.outcome {
		case "live":
			r.Phase, r.FirstTrafficAt, r.PromotedAt = rollout.PhaseSucceeded, s.start.Add(2*time.Minute), s.start.Add(45*time.Minute)
		case "canary-fail":
			r.Phase, r.FirstTrafficAt = rollout.PhaseRolledBack, s.start.Add(2*time.Minute)
			r.RollbackStartedAt, r.TrafficRestoredAt = s.start.Add(9*time.Minute), s.start.Add(9*time.Minute+1500*time.Millisecond)
			r.Reason = "error_rate 0.12 > 0.01 at 10%"
			events = append(events,
				audit.Event{Time: r.RollbackStartedAt, Actor: "shipgate", Action: audit.ActionRollbackAuto, Subject: s.app + "/production/" + s.version,
					Reason: r.Reason, Outcome: "ok", Data: map[string]string{"rollout": strconv.FormatInt(id, 10), "gate": "error_rate", "value": "0.12", "threshold": "0.01"}},
				audit.Event{Time: r.TrafficRestoredAt.Add(time.Second), Actor: "shipgate", Action: audit.ActionMigrateDown, Subject: s.app + "/production/" + s.version,
					Reason: "reverted 1 migration(s) applied by this rollout", Outcome: "ok", Data: map[string]string{"rollout": strconv.FormatInt(id, 10), "versions": "20261124"}})
		case "gate-stop":
			r.Phase, r.RollbackStartedAt, r.TrafficRestoredAt = rollout.PhaseRolledBack, s.start.Add(time.Minute), s.start.Add(time.Minute)
			r.Reason = "smoke check GET /healthz: status 500, want 200"
		}
		if err := st.Commit(ctx, rollout.Change{Rollout: &r}); err != nil {
			t.Fatal(err)
		}
		if r.ID != id {
			t.Fatalf("rollout id = %d, want %d", r.ID, id)
		}
		if err := st.Commit(ctx, rollout.Change{Audit: events}); err != nil {
			t.Fatal(err)
		}
	}
	// 1.4.0 broke the invoice page; the hotfix 1.6.1 fixed it.
	in := dora.Incident{App: "shop", Env: "production", DeployID: 6, Title: "invoices render blank", OpenedAt: d(0, 3, 15*time.Hour)}
	ev := func(dora.Incident) audit.Event {
		return audit.Event{Actor: "user:ana", Action: audit.ActionIncidentOpen, Subject: "incident"}
	}
	if err := st.OpenIncidentAudited(ctx, &in, ev); err != nil {
		t.Fatal(err)
	}
	if _, err := st.ResolveIncidentAudited(ctx, in.ID, d(0, 4, 8*time.Hour), 11, ev); err != nil {
		t.Fatal(err)
	}

	// CI runs of shop: 9 to 11 minutes the week before, 14 to 16 in
	// 2026-W48; checkout_test failed, then passed on a retry in 1.5.0's
	// run; a run after the week is not in its report.
	runs := []struct {
		version string
		at      time.Time
		ci      time.Duration
		flaky   bool
	}{
		{"1.3.0", d(-1, 0, 8*time.Hour), 9 * time.Minute, false},
		{"1.3.1", d(-1, 2, 8*time.Hour), 11 * time.Minute, false},
		{"1.4.0", d(0, 0, 9*time.Hour), 14 * time.Minute, false},
		{"1.5.0", d(0, 1, 13*time.Hour), 16 * time.Minute, true},
		{"1.5.1", d(0, 2, 8*time.Hour), 15 * time.Minute, false},
		{"1.7.0", d(1, 0, 8*time.Hour), 40 * time.Minute, false},
	}
	for _, r := range runs {
		attempts := []testsignal.Outcome{testsignal.Passed}
		if r.flaky {
			attempts = []testsignal.Outcome{testsignal.Failed, testsignal.Passed}
		}
		run := testsignal.Run{App: "shop", Version: r.version, Commit: "sha" + r.version, At: r.at, CIDuration: r.ci, Cases: []testsignal.Case{
			{ID: "shop.checkout_test", File: "checkout_test.go", Attempts: attempts},
			{ID: "shop.cart_test", Attempts: []testsignal.Outcome{testsignal.Passed}}}}
		if _, err := st.AddTestRun(ctx, run, audit.Event{Time: r.at, Actor: "user:ci", Action: testsignal.ActionTestRun, Subject: "shop/" + r.version, Data: map[string]string{}}); err != nil {
			t.Fatal(err)
		}
	}

	fs, err := flags.NewService(ctx, flags.Options{Store: st, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(fs.Close)
	file := []byte(`{"flags": {
  "new-checkout": {"state": "ENABLED", "variants": {"on": true, "off": false}, "defaultVariant": "on",
    "metadata": {"owner": "ana", "expires": "2026-11-25T00:00:00Z", "created": "2026-10-01T00:00:00Z"}},
  "dark-mode": {"state": "ENABLED", "variants": {"on": true, "off": false}, "defaultVariant": "off",
    "metadata": {"owner": "bo", "expires": "2027-03-01T00:00:00Z", "created": "2026-11-20T00:00:00Z"}}}}`)
	if _, err := fs.Import(ctx, file, flags.Who{Actor: "user:ana"}); err != nil {
		t.Fatal(err)
	}
	return st, fs
}

func seededReport(t *testing.T) Report {
	t.Helper()
	st, fs := seededStore(t)
	svc := &Service{Store: st, Calendar: dora.DefaultCalendar(time.UTC), Now: func() time.Time { return now }, Flags: fs, Tests: st}
	r, err := svc.Report(t.Context(), WeekQuery{Week: "last"})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestReport_Seeded(t *testing.T) {
	r := seededReport(t)
	if r.Week != "2026-W48" || r.Env != "production" || len(r.Apps) != 2 {
		t.Fatalf("report of %s/%s with %d apps, want 2026-W48 production with 2", r.Week, r.Env, len(r.Apps))
	}
	// shop: 5 deploys reached users (1.5.2 was stopped by its smoke
	// check), 1.5.0 rolled back and 1.4.0 had an incident; api: 1 of 1.
	if got, want := r.Headline.String(), "66.7% (4 of 6 deploys)"; got != want {
		t.Fatalf("headline = %q, want %q", got, want)
	}
	shop := r.Apps[1]
	if shop.App != "shop" || shop.SuccessRate.String() != "60.0% (3 of 5 deploys)" || shop.Keys.NotReachedUsers != 1 {
		t.Fatalf("shop = %s %s, not reached %d", shop.App, shop.SuccessRate, shop.Keys.NotReachedUsers)
	}
	// CI time per week, ending with the report's week; the flaky test as
	// it was at the end of the week.
	if len(shop.CI) != 5 {
		t.Fatalf("shop's CI weeks = %+v, want 5", shop.CI)
	}
	if w := shop.CI[4]; w.Runs != 3 || w.MedianCI != 15*time.Minute || w.MaxCI != 16*time.Minute || !w.Start.Equal(monday) {
		t.Fatalf("shop's CI in 2026-W48 = %+v, want 3 runs, median 15m, slowest 16m", w)
	}
	if w := shop.CI[3]; w.Runs != 2 || w.MedianCI != 10*time.Minute {
		t.Fatalf("shop's CI the week before = %+v, want 2 runs, median 10m", w)
	}
	if len(shop.Flaky) != 1 || shop.Flaky[0].ID != "shop.checkout_test" || !strings.Contains(shop.Flaky[0].Reason, "retry") {
		t.Fatalf("shop's flaky tests = %+v, want checkout_test, flaky on a retry", shop.Flaky)
	}
	if api := r.Apps[0]; api.CI != nil || api.Flaky != nil {
		t.Fatalf("api has no CI runs, but its report has %+v %+v", api.CI, api.Flaky)
	}
	if len(r.ExpiredFlags) != 1 || r.ExpiredFlags[0].Key != "new-checkout" {
		t.Fatalf("expired flags = %+v, want new-checkout only", r.ExpiredFlags)
	}
	if len(r.RevertedMigrations) != 1 || r.RevertedMigrations[0].Versions != "20261124" {
		t.Fatalf("reverted migrations = %+v, want 1.5.0's only (api's was weeks before)", r.RevertedMigrations)
	}
}

func TestRender_Golden(t *testing.T) {
	r := seededReport(t)
	for _, format := range []string{FormatMarkdown, FormatHTML, FormatJSON} {
		t.Run(format, func(t *testing.T) {
			var buf bytes.Buffer
			if err := Render(&buf, r, format); err != nil {
				t.Fatal(err)
			}
			golden := filepath.Join("testdata", "report."+format)
			if *update {
				if err := os.WriteFile(golden, buf.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test ./internal/report -run TestRender_Golden -update to create it)", err)
			}
			if !bytes.Equal(buf.Bytes(), want) {
				got := filepath.Join(t.TempDir(), "report."+format)
				_ = os.WriteFile(got, buf.Bytes(), 0o644)
				t.Fatalf("report.%s differs from %s (got in %s; diff them, and refresh with -update if the change is meant)", format, golden, got)
			}
		})
	}
}
