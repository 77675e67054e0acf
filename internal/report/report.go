package report

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/shipgate/shipgate/internal/audit"
	"github.com/shipgate/shipgate/internal/dora"
	"github.com/shipgate/shipgate/internal/flags"
	"github.com/shipgate/shipgate/internal/testsignal"
)

// TestRuns reads the CI runs recorded for an app (testsignal.Store).
type TestRuns interface {
	TestRuns(ctx context.Context, app, version string, limit int) ([]testsignal.Run, error)
}

// ciWeeks is how many weeks of CI time the report shows: the report's
// week and the four before, as the DORA sparklines do.
const ciWeeks = 5

// ciRuns bounds the runs read per app, as testsignal does.
const ciRuns = 500

// FlagDebt lists the flags that should be cleaned up (flags.Service).
type FlagDebt interface {
	Stale(ctx context.Context) ([]flags.Debt, error)
}

// Report is the Monday report: one week of one environment (production by
// default), every app in it.
type Report struct {
	Week      string    `json:"week"`
	From      time.Time `json:"from"`
	To        time.Time `json:"to"`
	Timezone  string    `json:"timezone"`
	WeekStart string    `json:"week_start"`
	Env       string    `json:"env"`
	// Headline is the week's deploy success rate over every app: the
	// deployments that did not fail, of all deployments.
	Headline dora.Ratio `json:"deploy_success_rate"`
	Apps     []AppWeek  `json:"apps"`
	// ExpiredFlags are flags past their expiry at the end of the week.
	ExpiredFlags []flags.Debt `json:"expired_flags"`
	// RevertedMigrations are the week's migration reverts.
	RevertedMigrations []Revert `json:"reverted_migrations"`
	// BandSource names where the bands come from.
	BandSource string `json:"band_source"`
}

// AppWeek is one app's DORA summary for the week, with its success rate.
type AppWeek struct {
	dora.Summary
	SuccessRate dora.Ratio `json:"deploy_success_rate"`
	// CI is the CI time per week (Monday to Sunday, UTC) of the runs
	// recorded with `shipgate tests record`, ending with the report's
	// week, oldest first; absent when no run was ever recorded.
	CI []testsignal.Week `json:"ci_weeks,omitempty"`
	// Flaky are the tests that were flaky at the end of the week, the
	// longest-flaky first.
	Flaky []testsignal.Flaky `json:"flaky_tests,omitempty"`
}

// Revert is a rollback that reverted migrations.
type Revert struct {
	Time     time.Time `json:"time"`
	Subject  string    `json:"subject"`
	Versions string    `json:"versions"`
	Rollout  string    `json:"rollout"`
	Outcome  string    `json:"outcome"`
}

// WeekQuery selects a report.
type WeekQuery struct {
	// Week is last (default), this or an ISO week.
	Week string `json:"week,omitempty"`
	// App narrows to one app; Env is the environment (default production).
	App       string `json:"app,omitempty"`
	Env       string `json:"env,omitempty"`
	Timezone  string `json:"timezone,omitempty"`
	WeekStart string `json:"week_start,omitempty"`
}

// successRate turns a change fail rate into a success rate.
func successRate(cfr dora.Ratio) dora.Ratio {
	r := dora.Ratio{Count: cfr.Of - cfr.Count, Of: cfr.Of}
	if r.Of > 0 {
		v := float64(r.Count) / float64(r.Of)
		r.Rate = &v
	}
	return r
}

// Report builds the Monday report q asks for.
func (s *Service) Report(ctx context.Context, q WeekQuery) (Report, error) {
	if q.Week == "" {
		q.Week = "last"
	}
	if q.Env == "" {
		q.Env = "production"
	}
	v, err := s.DORA(ctx, Query{App: q.App, Env: q.Env, Week: q.Week, Timezone: q.Timezone, WeekStart: q.WeekStart})
	if err != nil {
		return Report{}, err
	}
	r := Report{Week: v.Week, From: v.From, To: v.To, Timezone: v.Timezone, WeekStart: v.WeekStart, Env: q.Env,
		BandSource: dora.BandSource, Apps: []AppWeek{}, ExpiredFlags: []flags.Debt{}, RevertedMigrations: []Revert{}}
	failed, deploys := 0, 0
	for _, sum := range v.Summaries {
		r.Apps = append(r.Apps, AppWeek{Summary: sum, SuccessRate: successRate(sum.Keys.ChangeFailRate)})
		failed += sum.Keys.ChangeFailRate.Count
		deploys += sum.Keys.ChangeFailRate.Of
	}
	r.Headline = successRate(dora.Ratio{Count: failed, Of: deploys})
	if s.Tests != nil {
		for i := range r.Apps {
			if err := s.testSignals(ctx, &r.Apps[i], r.To); err != nil {
				return Report{}, err
			}
		}
	}
	if s.Flags != nil {
		debt, err := s.Flags.Stale(ctx)
		if err != nil {
			return Report{}, fmt.Errorf("report: stale flags: %w", err)
		}
		for _, d := range debt {
			if !d.Expires.IsZero() && d.Expires.Before(r.To) {
				r.ExpiredFlags = append(r.ExpiredFlags, d)
			}
		}
		slices.SortFunc(r.ExpiredFlags, func(a, b flags.Debt) int { return a.Expires.Compare(b.Expires) })
	}
	downs, err := s.Store.ListAudit(ctx, audit.Filter{Action: audit.ActionMigrateDown, Limit: allRows})
	if err != nil {
		return Report{}, fmt.Errorf("report: migration reverts: %w", err)
	}
	for i := len(downs) - 1; i >= 0; i-- {
		e := downs[i]
		if e.Time.Before(r.From) || !e.Time.Before(r.To) {
			continue
		}
		r.RevertedMigrations = append(r.RevertedMigrations, Revert{Time: e.Time, Subject: e.Subject,
			Versions: e.Data["versions"], Rollout: e.Data["rollout"], Outcome: e.Outcome})
	}
	return r, nil
}

// testSignals adds an app's CI time trend and its flaky tests, as they
// were at the end of the week, to a.
func (s *Service) testSignals(ctx context.Context, a *AppWeek, end time.Time) error {
	runs, err := s.Tests.TestRuns(ctx, a.App, "", ciRuns)
	if err != nil {
		return fmt.Errorf("report: test runs of %s: %w", a.App, err)
	}
	var before []testsignal.Run
	for _, r := range runs {
		if r.At.Before(end) {
			before = append(before, r)
		}
	}
	if len(before) == 0 {
		return nil
	}
	a.CI = testsignal.Trend(before, end.Add(-time.Nanosecond), ciWeeks)
	a.Flaky = testsignal.DetectFlaky(before)
	slices.SortStableFunc(a.Flaky, func(x, y testsignal.Flaky) int { return x.FirstSeen.Compare(y.FirstSeen) })
	return nil
}
