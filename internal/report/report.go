package report

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/shipgate/shipgate/internal/audit"
	"github.com/shipgate/shipgate/internal/dora"
	"github.com/shipgate/shipgate/internal/flags"
)

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
