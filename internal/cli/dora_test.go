package cli

// Tests of `shipgate dora`, `shipgate incident` and release create's
// change flags against the real API handler on a real SQLite store, whose
// rollouts are written as the engine writes them.

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shipgate/shipgate/internal/api"
	"github.com/shipgate/shipgate/internal/api/apitest"
	"github.com/shipgate/shipgate/internal/audit"
	"github.com/shipgate/shipgate/internal/auth"
	"github.com/shipgate/shipgate/internal/notify"
	"github.com/shipgate/shipgate/internal/report"
	"github.com/shipgate/shipgate/internal/rollout"
)

// w48 is Monday 2026-11-23 09:00 UTC, in ISO week 2026-W48.
var w48 = time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)

// seedRollouts stores four production deploys of shop in 2026-W48: v1 and
// v3 go live, v2 is convicted by its canary analysis, v4 is a hotfix.
func seedRollouts(t *testing.T, srv *apitest.Server) {
	t.Helper()
	ctx := t.Context()
	for i, v := range []string{"v1", "v2", "v3", "v4"} {
		if err := srv.Store.PutRelease(ctx, rollout.Release{App: "shop", Version: v, Commit: "c" + v,
			CommitTime: w48.Add(time.Duration(i)*24*time.Hour - 20*time.Hour), CreatedAt: w48}); err != nil {
			t.Fatal(err)
		}
	}
	day := func(n int, h time.Duration) time.Time { return w48.Add(time.Duration(n)*24*time.Hour + h) }
	rs := []rollout.Rollout{
		{Version: "v1", Phase: rollout.PhaseSucceeded, CreatedAt: day(0, 0), FirstTrafficAt: day(0, time.Minute), PromotedAt: day(0, time.Hour)},
		{Version: "v2", FromVersion: "v1", Phase: rollout.PhaseRolledBack, CreatedAt: day(1, 0), FirstTrafficAt: day(1, time.Minute),
			RollbackStartedAt: day(1, 10*time.Minute), TrafficRestoredAt: day(1, 10*time.Minute+2*time.Second), Reason: "error_rate 12% > 1%"},
		{Version: "v3", FromVersion: "v1", Phase: rollout.PhaseSucceeded, CreatedAt: day(2, 0), FirstTrafficAt: day(2, time.Minute), PromotedAt: day(2, time.Hour)},
		{Version: "v4", FromVersion: "v3", Phase: rollout.PhaseSucceeded, Hotfix: true, CreatedAt: day(3, 0), FirstTrafficAt: day(3, time.Minute), PromotedAt: day(3, 20*time.Minute)},
	}
	for i := range rs {
		r := &rs[i]
		r.App, r.Env, r.Kind, r.Actor, r.UpdatedAt = "shop", "production", rollout.KindDeploy, "user:ci", r.CreatedAt
		c := rollout.Change{Rollout: r}
		if r.Phase == rollout.PhaseRolledBack {
			// The engine writes the rollout first, then the event with its id.
			if err := srv.Store.Commit(ctx, c); err != nil {
				t.Fatal(err)
			}
			c = rollout.Change{Audit: []audit.Event{{Time: r.RollbackStartedAt, Actor: "shipgate", Action: audit.ActionRollbackAuto,
				Subject: "shop/production/" + r.Version, Reason: r.Reason, Outcome: "ok",
				Data: map[string]string{"rollout": "2", "gate": "error_rate", "value": "0.12", "threshold": "0.01"}}}}
		}
		if err := srv.Store.Commit(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
}

func startDORACLI(t *testing.T) (*env, *apitest.Server) {
	t.Helper()
	svc := newScriptedService()
	srv := apitest.Start(t, apitest.Options{Service: svc, App: "shop", DORA: true})
	tok := srv.Token(t, "ci", auth.RoleDeployer)
	seedRollouts(t, srv)
	return &env{svc: svc, url: srv.URL, token: tok, data: t.TempDir(), getenv: map[string]string{}}, srv
}

func TestDORACommand_FromStoreIncidentsAndChanges(t *testing.T) {
	e, srv := startDORACLI(t)

	// v3's change started 3 days before it went live.
	e.run(t, "release", "create", "shop", "v3", "--commit", "cv3",
		"--change-commit", "a1="+w48.Add(-time.Hour).Format(time.RFC3339),
		"--change-commit", "a2="+w48.Add(24*time.Hour).Format(time.RFC3339),
		"--files", "12", "--lines", "2400", "--prs", "15").wantCode(t, ExitOK)

	// v3 broke checkout; v4, a hotfix, fixed it.
	r := e.run(t, "incident", "open", "shop", "--deploy", "3", "--title", "checkout 500s", "--at", w48.Add(50*time.Hour).Format(time.RFC3339))
	r.wantCode(t, ExitOK)
	if want := "incident 1 opened on shop/production against deploy 3"; !strings.Contains(r.stdout, want) {
		t.Fatalf("stdout = %q, want %q", r.stdout, want)
	}
	e.run(t, "incident", "resolve", "1", "--fixed-by", "4", "--at", w48.Add(80*time.Hour).Format(time.RFC3339)).wantCode(t, ExitOK)
	r = e.run(t, "incident", "resolve", "1")
	r.wantCode(t, ExitFailure)
	if !strings.Contains(r.stderr, "was resolved at") {
		t.Fatalf("resolving twice: stderr = %q", r.stderr)
	}

	r = e.run(t, "dora", "--week", "2026-W48", "-o", "json")
	r.wantCode(t, ExitOK)
	var v report.View
	decodeOne(t, r.stdout, &v)
	if len(v.Summaries) != 1 || v.Week != "2026-W48" || v.Timezone != "UTC" || v.WeekStart != "monday" {
		t.Fatalf("view = %+v", v)
	}
	k := v.Summaries[0].Keys
	if got := k.ChangeFailRate.String(); got != "50.0% (2 of 4 deploys)" {
		t.Fatalf("change fail rate = %q, want 2 of 4: the convicted canary and the deploy the incident names", got)
	}
	if got := k.Rework.String(); got != "25.0% (1 of 4 deploys)" {
		t.Fatalf("rework = %q, want the hotfix", got)
	}
	// Recovery: v2's rollback restored traffic in 2 s; v3's incident ran
	// from its opening (+50 h) to the hotfix v4 live (+72h20m), before the
	// incident was resolved (+80 h): 22h20m. The median is their mean.
	if want := (2*time.Second + 22*time.Hour + 20*time.Minute) / 2; k.Recovery.N != 2 || time.Duration(*k.Recovery.Median) != want {
		t.Fatalf("recovery = %s, want median %v over 2", k.Recovery, want)
	}
	// Lead time of v3: from its oldest change commit (w48-1h) to live
	// (2 days + 1 h later) = 50 h; the others from their commit time.
	if k.LeadTime.N != 3 || k.LeadTime.P90 == nil || time.Duration(*k.LeadTime.P90) != 50*time.Hour {
		t.Fatalf("lead time = %s, want p90 50h over 3", k.LeadTime)
	}
	s := v.Summaries[0]
	if len(s.Failures) != 2 || s.Failures[0].Gate != "error_rate" || s.Failures[0].Value != "0.12" {
		t.Fatalf("failures = %+v, want v2 with its gate evidence first", s.Failures)
	}
	if b := s.ByLines[3]; b.Label != "2000+ lines" || b.Failed.String() != "100.0% (1 of 1 deploys)" {
		t.Fatalf("2000+ lines bucket = %+v", b)
	}

	r = e.run(t, "dora", "--week", "2026-W48", "-o", "md")
	r.wantCode(t, ExitOK)
	for _, want := range []string{"# DORA metrics, week 2026-W48 (2026-11-23 to 2026-11-29)", "| change fail rate | 50.0% (2 of 4 deploys) | low: more than 15% |", "## shop / production"} {
		if !strings.Contains(r.stdout, want) {
			t.Fatalf("markdown lacks %q:\n%s", want, r.stdout)
		}
	}
	r = e.run(t, "dora", "--week", "2026-W48")
	r.wantCode(t, ExitOK)
	if !strings.Contains(r.stdout, "50.0% (2 of 4 deploys)") || !strings.Contains(r.stdout, "shop/production") {
		t.Fatalf("text output:\n%s", r.stdout)
	}
	// A week without deploys says so.
	r = e.run(t, "dora", "--week", "2026-W50", "-o", "md")
	r.wantCode(t, ExitOK)
	if !strings.Contains(r.stdout, "| change fail rate | no deploys |") {
		t.Fatalf("empty week:\n%s", r.stdout)
	}

	// The Monday report, in every format.
	r = e.run(t, "report", "--week", "2026-W48")
	r.wantCode(t, ExitOK)
	if want := "**Deploy success rate: 50.0% (2 of 4 deploys)**"; !strings.Contains(r.stdout, want) {
		t.Fatalf("report lacks %q:\n%s", want, r.stdout)
	}
	r = e.run(t, "report", "--week", "2026-W48", "-o", "html")
	r.wantCode(t, ExitOK)
	if !strings.Contains(r.stdout, `<p id="headline">50.0%`) || strings.Count(r.stdout, `<svg class="spark"`) != 5 {
		t.Fatalf("html report:\n%s", r.stdout)
	}
	r = e.run(t, "report", "--week", "2026-W48", "-o", "json")
	r.wantCode(t, ExitOK)
	var rep report.Report
	decodeOne(t, r.stdout, &rep)
	if rep.Headline.Count != 2 || rep.Headline.Of != 4 || len(rep.Apps) != 1 || len(rep.Apps[0].Failures) != 2 {
		t.Fatalf("json report = %+v", rep)
	}

	// The incident changes and the release change are in the audit log.
	events, err := srv.Store.ListAudit(t.Context(), audit.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, ev := range events {
		seen[ev.Action] = true
		if ev.Action == audit.ActionIncidentResolve && (ev.Actor != "user:ci" || ev.Data["fix_deploy"] != "4") {
			t.Fatalf("resolve event = %+v", ev)
		}
	}
	for _, a := range []string{audit.ActionIncidentOpen, audit.ActionIncidentResolve, audit.ActionReleaseChange} {
		if !seen[a] {
			t.Fatalf("no %s event in the audit log", a)
		}
	}
}

func TestDORACommand_BadInput(t *testing.T) {
	e, _ := startDORACLI(t)
	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"bad week", []string{"dora", "--week", "2026-W60"}, ExitInvalid, "week: week \"2026-W60\": 2026 has weeks 1 to 53"},
		{"week and since", []string{"dora", "--week", "last", "--since", "4w"}, ExitInvalid, "give --week or --since, not both"},
		{"bad since", []string{"dora", "--since", "-3d"}, ExitInvalid, "invalid --since"},
		{"bad zone", []string{"dora", "--timezone", "Mars/Olympus"}, ExitInvalid, "timezone: \"Mars/Olympus\" is not a known time zone"},
		{"html not offered", []string{"dora", "-o", "html"}, ExitInvalid, `invalid --output "html" for shipgate dora`},
		{"md not offered elsewhere", []string{"incident", "list", "-o", "md"}, ExitInvalid, `invalid --output "md"`},
		{"unknown deploy", []string{"incident", "open", "shop", "--deploy", "99", "--title", "x"}, ExitInvalid, "deploy_id: rollout 99 does not exist"},
		{"deploy of another env", []string{"incident", "open", "shop", "--env", "staging", "--deploy", "1", "--title", "x"}, ExitInvalid, "is a deploy of shop in production, not a deploy of shop in staging"},
		{"no title", []string{"incident", "open", "shop", "--deploy", "1"}, ExitInvalid, "title: is required"},
		{"unknown incident", []string{"incident", "resolve", "7"}, ExitFailure, "not found"},
		{"bad change commit", []string{"release", "create", "shop", "v3", "--commit", "x", "--change-commit", "abc"}, ExitInvalid, `invalid --change-commit "abc"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.run(t, tt.args...)
			r.wantCode(t, tt.code)
			if !strings.Contains(r.stderr, tt.want) {
				t.Fatalf("stderr = %q, want %q", r.stderr, tt.want)
			}
		})
	}
}

func TestNotificationsCommand(t *testing.T) {
	e, srv := startDORACLI(t)
	if _, err := srv.Store.EnqueueNotifications(t.Context(), -1, []notify.Delivery{
		{EventID: "audit-9", EventType: notify.RolloutRolledBack, Webhook: "team-slack", Payload: []byte(`{}`)},
	}); err != nil {
		t.Fatal(err)
	}
	ds, err := srv.Store.ListNotifications(t.Context(), "", 1)
	if err != nil {
		t.Fatal(err)
	}
	d := ds[0]
	d.Attempts, d.LastError, d.LastStatus, d.NextAt = 3, "team-slack answered 503 busy", 503, time.Now().Add(time.Minute)
	if err := srv.Store.UpdateNotification(t.Context(), d); err != nil {
		t.Fatal(err)
	}
	r := e.run(t, "notifications", "--state", "pending")
	r.wantCode(t, ExitOK)
	for _, want := range []string{"audit-9", "rollout.rolled_back", "team-slack", "pending", "answered 503 busy"} {
		if !strings.Contains(r.stdout, want) {
			t.Fatalf("notifications lacks %q:\n%s", want, r.stdout)
		}
	}
	r = e.run(t, "notifications", "-o", "json")
	r.wantCode(t, ExitOK)
	var got []notify.Delivery
	decodeOne(t, r.stdout, &got)
	if len(got) != 1 || got[0].Attempts != 3 || got[0].LastStatus != 503 {
		t.Fatalf("notifications -o json = %+v", got)
	}
	r = e.run(t, "notifications", "--state", "lost")
	r.wantCode(t, ExitInvalid)
	if !strings.Contains(r.stderr, `state: "lost" is not pending, sent or failed`) {
		t.Fatalf("stderr = %q", r.stderr)
	}
}

func TestStatusCommand_Watch(t *testing.T) {
	e := newEnv(t)
	// The timeout covers connecting and the first event too: room for a
	// busy machine.
	r := e.run(t, "status", "--watch", "--timeout", "1s")
	r.wantCode(t, ExitOK)
	if want := "production stable 1.0.0; rollout #42 1.1.0 running"; !strings.Contains(r.stdout, want) {
		t.Fatalf("status --watch printed:\n%s\nwant a line with %q", r.stdout, want)
	}
	// The scripted status does not change: one line, not one per poll.
	if n := strings.Count(r.stdout, "\n"); n != 1 {
		t.Fatalf("status --watch printed %d lines, want 1:\n%s", n, r.stdout)
	}
	r = e.run(t, "status", "--watch", "--timeout", "1s", "-o", "json")
	r.wantCode(t, ExitOK)
	var s api.Snapshot
	decodeOne(t, strings.SplitN(r.stdout, "\n", 2)[0], &s)
	if s.App != "shop" || len(s.Envs) != 1 || s.Envs[0].Rollout == nil || s.Envs[0].Rollout.ID != 42 {
		t.Fatalf("status --watch -o json = %+v", s)
	}
}

// gitRepo makes a git repository in a temporary directory, changes to it,
// and commits: a base (tagged v1), then three commits at known times.
func gitRepo(t *testing.T) (first time.Time) {
	t.Helper()
	dir := t.TempDir()
	t.Chdir(dir)
	base := time.Date(2026, 11, 20, 9, 0, 0, 0, time.UTC)
	run := func(at time.Time, args ...string) {
		t.Helper()
		cmd := exec.Command("git", args...)
		cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.com", "GIT_COMMITTER_NAME=t",
			"GIT_COMMITTER_EMAIL=t@example.com", "GIT_AUTHOR_DATE="+at.Format(time.RFC3339), "GIT_COMMITTER_DATE="+at.Format(time.RFC3339))
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	write := func(name, body string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	run(base, "init", "-q", "-b", "main")
	write("a.txt", "one\n")
	run(base, "add", ".")
	run(base, "commit", "-q", "-m", "base")
	run(base, "tag", "v1")
	write("a.txt", "one\ntwo\nthree\n")
	run(base.Add(time.Hour), "commit", "-q", "-am", "Merge pull request #12 from team/feature")
	write("b.txt", "x\ny\n")
	run(base.Add(2*time.Hour), "add", ".")
	run(base.Add(2*time.Hour), "commit", "-q", "-m", "checkout: retry payments (#15)")
	write("a.txt", "one\n")
	run(base.Add(3*time.Hour), "commit", "-q", "-am", "revert a")
	return base.Add(time.Hour)
}

func TestReleaseCreate_GitRange(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("SKIPPED: git is not installed")
	}
	e, srv := startDORACLI(t)
	first := gitRepo(t)
	r := e.run(t, "release", "create", "shop", "v3", "--commit", "cv3", "--git-range", "HEAD")
	r.wantCode(t, ExitInvalid)
	if !strings.Contains(r.stderr, `invalid --git-range "HEAD": want FROM..TO`) {
		t.Fatalf("stderr = %q", r.stderr)
	}
	e.run(t, "release", "create", "shop", "v3", "--commit", "cv3", "--git-range", "v1..HEAD").wantCode(t, ExitOK)
	changes, err := srv.Store.ListChanges(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range changes {
		if c.Version != "v3" {
			continue
		}
		// Three commits since v1, and the release's own commit time.
		if len(c.Commits) != 4 || !c.FirstCommitAt().Equal(first) {
			t.Fatalf("v3 commits = %+v, want 3 from git (first at %v) and the release's", c.Commits, first)
		}
		// b.txt is new (2 lines); a.txt ends as it began, but diff
		// --shortstat counts the net change from v1: 1 file.
		if c.Size == nil || c.Size.Files != 1 || c.Size.Lines != 2 || c.Size.PRs != 2 {
			t.Fatalf("v3 size = %+v, want 1 file, 2 lines, 2 PRs", c.Size)
		}
		return
	}
	t.Fatal("no change recorded for v3")
}

func TestDORARecord_ExternalDeploys(t *testing.T) {
	e, _ := startDORACLI(t)
	at := func(h time.Duration) string { return w48.Add(h).Format(time.RFC3339) }
	r := e.run(t, "dora", "record", "shop", "0.9.0", "--at", at(100*time.Hour), "--live-at", at(100*time.Hour+10*time.Minute))
	r.wantCode(t, ExitOK)
	if want := "deploy of shop 0.9.0 in production recorded as rollout 5 (succeeded)"; !strings.Contains(r.stdout, want) {
		t.Fatalf("stdout = %q, want %q", r.stdout, want)
	}
	e.run(t, "dora", "record", "shop", "0.9.1", "--at", at(110*time.Hour), "--rolled-back-at", at(110*time.Hour+30*time.Minute),
		"--restored-at", at(110*time.Hour+40*time.Minute)).wantCode(t, ExitOK)
	// An incident may name an external deploy.
	e.run(t, "incident", "open", "shop", "--deploy", "5", "--title", "slow pages", "--at", at(120*time.Hour)).wantCode(t, ExitOK)

	r = e.run(t, "dora", "--week", "2026-W48", "-o", "json")
	r.wantCode(t, ExitOK)
	var v report.View
	decodeOne(t, r.stdout, &v)
	k := v.Summaries[0].Keys
	// The four seeded deploys (v2 failed) and the two recorded ones (both
	// failed: one rolled back, one with an incident).
	if got := k.ChangeFailRate.String(); got != "50.0% (3 of 6 deploys)" {
		t.Fatalf("change fail rate = %q; failures %+v", got, v.Summaries[0].Failures)
	}
	r = e.run(t, "dora", "record", "shop", "0.9.2", "--at", at(0), "--restored-at", at(time.Hour))
	r.wantCode(t, ExitInvalid)
	if !strings.Contains(r.stderr, "restored_at: needs rolled_back_at") {
		t.Fatalf("stderr = %q", r.stderr)
	}
	if f := v.Summaries[0].Failures[1]; f.DeployID != 6 || f.Causes[0] != "manual rollback" || time.Duration(*f.Recovery) != 10*time.Minute {
		t.Fatalf("the recorded rollback = %+v", f)
	}
}
