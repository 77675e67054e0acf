package dora

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"time"
)

// Keys are the five keys over one period of one app's environment.
type Keys struct {
	Frequency      Frequency `json:"deployment_frequency"`
	LeadTime       Durations `json:"change_lead_time"`
	ChangeFailRate Ratio     `json:"change_fail_rate"`
	Recovery       Durations `json:"failed_deployment_recovery_time"`
	Rework         Ratio     `json:"deployment_rework_rate"`
	// NotReachedUsers counts deploy rollouts that no user saw: stopped by
	// a gate (or not yet at traffic). They are not deployments.
	NotReachedUsers int `json:"not_reached_users"`
}

// Failure is one failed deployment and how it was found and fixed.
type Failure struct {
	DeployID int64  `json:"deploy_id"`
	Version  string `json:"version"`
	// Causes say what made it a failure: "automatic rollback", "manual
	// rollback", "rolled back after release (rollout 12)", "incident 3",
	// "fixed by deploy 45".
	Causes     []string  `json:"causes"`
	DetectedAt time.Time `json:"detected_at"`
	// RestoredAt is zero while service is not restored.
	RestoredAt time.Time `json:"restored_at,omitzero"`
	Recovery   *Duration `json:"recovery_seconds"`
	Reason     string    `json:"reason,omitempty"`
	Gate       string    `json:"gate,omitempty"`
	Value      string    `json:"value,omitempty"`
	Threshold  string    `json:"threshold,omitempty"`
}

// LeadSample is one deployment's change lead time.
type LeadSample struct {
	DeployID      int64     `json:"deploy_id"`
	Version       string    `json:"version"`
	FirstCommitAt time.Time `json:"first_commit_at"`
	LiveAt        time.Time `json:"live_at"`
	LeadTime      Duration  `json:"lead_time_seconds"`
}

// Week is the keys of one calendar week.
type Week struct {
	// Name is the ISO name of the week, "2026-W48"; Start its first instant.
	Name  string    `json:"name"`
	Start time.Time `json:"start"`
	Keys  Keys      `json:"keys"`
}

// SizeBucket is the change fail rate of the deployments of one change size.
type SizeBucket struct {
	Label  string `json:"label"`
	Failed Ratio  `json:"failed"`
}

// Summary is the DORA view of one app's environment over a period.
type Summary struct {
	App  string    `json:"app"`
	Env  string    `json:"env"`
	From time.Time `json:"from"`
	To   time.Time `json:"to"`
	Keys Keys      `json:"keys"`
	// Previous is the four weeks before From, which Keys' trends compare
	// against.
	Previous Keys `json:"previous_4_weeks"`
	// Weeks are the calendar weeks from four weeks before From up to To,
	// oldest first: the points of a trend chart.
	Weeks []Week `json:"weeks"`
	// Failures are the period's failed deployments, oldest first.
	Failures []Failure `json:"failures"`
	// Slowest are the period's longest lead times, slowest first (at most 5).
	Slowest []LeadSample `json:"slowest_lead_times"`
	// ByLines and ByPRs bucket the period's deployments by change size.
	ByLines []SizeBucket `json:"fail_rate_by_lines"`
	ByPRs   []SizeBucket `json:"fail_rate_by_prs"`
	// BandSource names where the bands come from.
	BandSource string `json:"band_source"`
}

// trendWeeks is how many weeks before a period its trend compares with.
const trendWeeks = 4

// maxSlowest caps Summary.Slowest.
const maxSlowest = 5

// analysis is the history with every deployment's failure worked out.
type analysis struct {
	h        History
	cal      Calendar
	failures map[int64]*Failure
	rework   map[int64]bool
}

func analyse(h History, cal Calendar) *analysis {
	a := &analysis{h: h, cal: cal, failures: map[int64]*Failure{}, rework: map[int64]bool{}}
	byID := make(map[int64]Deploy, len(h.Deploys))
	for _, d := range h.Deploys {
		byID[d.ID] = d
	}
	blame := func(d Deploy, cause string, detected, restored time.Time) {
		if d.Kind != KindDeploy || !d.reachedUsers() || detected.IsZero() {
			return
		}
		f := a.failures[d.ID]
		if f == nil {
			f = &Failure{DeployID: d.ID, Version: d.Version, DetectedAt: detected,
				Reason: d.Reason, Gate: d.Gate, Value: d.Value, Threshold: d.Threshold}
			a.failures[d.ID] = f
		}
		f.Causes = append(f.Causes, cause)
		if detected.Before(f.DetectedAt) {
			f.DetectedAt = detected
		}
		if !restored.IsZero() && !restored.Before(detected) && (f.RestoredAt.IsZero() || restored.Before(f.RestoredAt)) {
			f.RestoredAt = restored
		}
	}

	// A rollout rolled back during its own rollout.
	for _, d := range h.Deploys {
		if d.RolledBack {
			cause := "automatic rollback"
			if d.ManualRollback {
				cause = "manual rollback"
			}
			blame(d, cause, d.RollbackStartedAt, d.TrafficRestoredAt)
		}
	}
	// A manual rollback after a rollout finished blames the rollout that
	// made the release it removed live, unless that was itself a rollback.
	for _, r := range h.Deploys {
		if r.Kind != KindRollback {
			continue
		}
		if d, ok := a.madeLive(r); ok && d.Kind == KindDeploy {
			blame(d, fmt.Sprintf("rolled back after release (rollout %d)", r.ID), r.StartedAt, r.LiveAt)
		}
	}
	// Incidents blame the deploy they name; their fix is rework.
	for _, in := range h.Incidents {
		var fixLive time.Time
		if fix, ok := byID[in.FixDeployID]; ok && in.FixDeployID != 0 {
			a.rework[fix.ID] = true
			fixLive = fix.LiveAt
		}
		d, ok := byID[in.DeployID]
		if !ok || in.DeployID == 0 {
			continue
		}
		blame(d, fmt.Sprintf("incident %d", in.ID), in.OpenedAt, earliest(in.ResolvedAt, fixLive))
		if in.FixDeployID != 0 {
			f := a.failures[d.ID]
			if f != nil {
				f.Causes = append(f.Causes, fmt.Sprintf("fixed by deploy %d", in.FixDeployID))
			}
		}
	}
	for _, f := range a.failures {
		if !f.RestoredAt.IsZero() {
			r := Duration(f.RestoredAt.Sub(f.DetectedAt))
			f.Recovery = &r
		}
	}
	return a
}

// earliest returns the earlier of two times, ignoring zero ones.
func earliest(a, b time.Time) time.Time {
	switch {
	case a.IsZero():
		return b
	case b.IsZero() || a.Before(b):
		return a
	default:
		return b
	}
}

// madeLive finds the rollout that made r.FromVersion live in r's
// environment: the latest one of that version live at 100% before r began
// and not rolled back before then.
func (a *analysis) madeLive(r Deploy) (Deploy, bool) {
	var best Deploy
	found := false
	for _, d := range a.h.Deploys {
		if d.App != r.App || d.Env != r.Env || d.ID == r.ID || d.Version != r.FromVersion {
			continue
		}
		if d.LiveAt.IsZero() || !d.LiveAt.Before(r.StartedAt) {
			continue
		}
		if d.RolledBack && d.RollbackStartedAt.Before(r.StartedAt) {
			continue
		}
		if !found || d.LiveAt.After(best.LiveAt) {
			best, found = d, true
		}
	}
	return best, found
}

// deploysIn returns the deployments and the rollouts that reached no user
// of app/env started in [from, to).
func (a *analysis) deploysIn(app, env string, from, to time.Time) (deploys []Deploy, notReached int) {
	for _, d := range a.h.Deploys {
		if d.App != app || d.Env != env || d.Kind != KindDeploy {
			continue
		}
		if d.StartedAt.Before(from) || !d.StartedAt.Before(to) {
			continue
		}
		if !d.reachedUsers() {
			notReached++
			continue
		}
		deploys = append(deploys, d)
	}
	return deploys, notReached
}

func (a *analysis) keys(app, env string, from, to time.Time) Keys {
	deploys, notReached := a.deploysIn(app, env, from, to)
	k := Keys{NotReachedUsers: notReached}

	days := map[string]bool{}
	var leads, recoveries []time.Duration
	failed, rework, excluded := 0, 0, 0
	for _, d := range deploys {
		days[a.cal.Day(d.StartedAt)] = true
		if !d.LiveAt.IsZero() && !d.FirstCommitAt.IsZero() {
			if lt := d.LiveAt.Sub(d.FirstCommitAt); lt > 0 {
				leads = append(leads, lt)
			} else {
				excluded++
			}
		}
		if f, ok := a.failures[d.ID]; ok {
			failed++
			if f.Recovery != nil {
				recoveries = append(recoveries, time.Duration(*f.Recovery))
			}
		}
		if d.Hotfix || a.rework[d.ID] {
			rework++
		}
	}

	periodDays := int(math.Round(to.Sub(from).Hours() / 24))
	k.Frequency = Frequency{Deploys: len(deploys), DeployDays: len(days), Days: periodDays}
	if periodDays > 0 {
		weeks := float64(periodDays) / 7
		k.Frequency.PerWeek = float64(len(deploys)) / weeks
		k.Frequency.DaysPerWeek = float64(len(days)) / weeks
		k.Frequency.Band = FrequencyBand(k.Frequency.DaysPerWeek)
	}

	k.LeadTime = newDurations(leads)
	k.LeadTime.Excluded = excluded
	if k.LeadTime.Median != nil {
		k.LeadTime.Band = LeadTimeBand(time.Duration(*k.LeadTime.Median))
	}
	k.ChangeFailRate = newRatio(failed, len(deploys))
	if k.ChangeFailRate.Rate != nil {
		k.ChangeFailRate.Band = ChangeFailBand(*k.ChangeFailRate.Rate)
	}
	k.Recovery = newDurations(recoveries)
	if k.Recovery.Median != nil {
		k.Recovery.Band = RecoveryBand(time.Duration(*k.Recovery.Median))
	}
	k.Rework = newRatio(rework, len(deploys))
	if k.Rework.Rate != nil {
		k.Rework.Band = noBand
	}
	return k
}

// Summarize computes the keys of every app and environment with a
// rollout in [from, to) or in the four weeks before, sorted by app then
// environment. from is normally a week start of cal; the weekly series
// starts at the week holding from, four weeks earlier.
func Summarize(h History, cal Calendar, from, to time.Time) []Summary {
	a := analyse(h, cal)
	prevFrom := cal.AddWeeks(from, -trendWeeks)

	type target struct{ app, env string }
	seen := map[target]bool{}
	var targets []target
	for _, d := range h.Deploys {
		t := target{d.App, d.Env}
		if !seen[t] && !d.StartedAt.Before(prevFrom) && d.StartedAt.Before(to) {
			seen[t] = true
			targets = append(targets, t)
		}
	}
	slices.SortFunc(targets, func(x, y target) int {
		return cmp.Or(cmp.Compare(x.app, y.app), cmp.Compare(x.env, y.env))
	})

	out := make([]Summary, 0, len(targets))
	for _, t := range targets {
		s := Summary{App: t.app, Env: t.env, From: from, To: to, BandSource: BandSource}
		s.Keys = a.keys(t.app, t.env, from, to)
		s.Previous = a.keys(t.app, t.env, prevFrom, from)
		setTrends(&s.Keys, s.Previous)
		for w := cal.WeekOf(prevFrom); w.Before(to); w = cal.NextWeek(w) {
			end := cal.NextWeek(w)
			s.Weeks = append(s.Weeks, Week{Name: cal.WeekName(w), Start: w, Keys: a.keys(t.app, t.env, w, end)})
		}
		deploys, _ := a.deploysIn(t.app, t.env, from, to)
		s.Failures, s.Slowest = a.failuresAndSlowest(deploys)
		s.ByLines, s.ByPRs = a.sizeBuckets(deploys)
		out = append(out, s)
	}
	return out
}

func setTrends(k *Keys, prev Keys) {
	if k.Frequency.Days > 0 && prev.Frequency.Days > 0 {
		k.Frequency.Trend = compare(k.Frequency.PerWeek, prev.Frequency.PerWeek, false)
	}
	if k.LeadTime.Median != nil && prev.LeadTime.Median != nil {
		k.LeadTime.Trend = compare(float64(*k.LeadTime.Median), float64(*prev.LeadTime.Median), true)
	}
	if k.ChangeFailRate.Rate != nil && prev.ChangeFailRate.Rate != nil {
		k.ChangeFailRate.Trend = compare(*k.ChangeFailRate.Rate, *prev.ChangeFailRate.Rate, true)
	}
	if k.Recovery.Median != nil && prev.Recovery.Median != nil {
		k.Recovery.Trend = compare(float64(*k.Recovery.Median), float64(*prev.Recovery.Median), true)
	}
	if k.Rework.Rate != nil && prev.Rework.Rate != nil {
		k.Rework.Trend = compare(*k.Rework.Rate, *prev.Rework.Rate, true)
	}
}

func (a *analysis) failuresAndSlowest(deploys []Deploy) ([]Failure, []LeadSample) {
	var (
		failures []Failure
		leads    []LeadSample
	)
	for _, d := range deploys {
		if f, ok := a.failures[d.ID]; ok {
			failures = append(failures, *f)
		}
		if !d.LiveAt.IsZero() && !d.FirstCommitAt.IsZero() && d.LiveAt.After(d.FirstCommitAt) {
			leads = append(leads, LeadSample{DeployID: d.ID, Version: d.Version, FirstCommitAt: d.FirstCommitAt,
				LiveAt: d.LiveAt, LeadTime: Duration(d.LiveAt.Sub(d.FirstCommitAt))})
		}
	}
	slices.SortStableFunc(failures, func(x, y Failure) int { return x.DetectedAt.Compare(y.DetectedAt) })
	slices.SortStableFunc(leads, func(x, y LeadSample) int {
		return cmp.Or(cmp.Compare(y.LeadTime, x.LeadTime), cmp.Compare(x.DeployID, y.DeployID))
	})
	if len(leads) > maxSlowest {
		leads = leads[:maxSlowest]
	}
	return failures, leads
}

// Change size buckets: lines changed (seed 001: under 100 lines fail 2%,
// 2000 and more 18%) and pull requests per deploy.
var (
	lineBuckets = []sizeBound{{"< 100 lines", 99}, {"100-499 lines", 499}, {"500-1999 lines", 1999}, {"2000+ lines", -1}}
	prBuckets   = []sizeBound{{"1 PR", 1}, {"2-4 PRs", 4}, {"5-14 PRs", 14}, {"15+ PRs", -1}}
)

// sizeBound is one change size bucket: up to max inclusive (-1: no bound).
type sizeBound struct {
	label string
	max   int
}

func (a *analysis) sizeBuckets(deploys []Deploy) (byLines, byPRs []SizeBucket) {
	bucket := func(bounds []sizeBound, measure func(Size) int) []SizeBucket {
		counts := make([][2]int, len(bounds)+1) // failed, of; last: unknown
		for _, d := range deploys {
			i := len(bounds)
			if d.Size != nil {
				v := measure(*d.Size)
				i = slices.IndexFunc(bounds, func(b sizeBound) bool { return b.max < 0 || v <= b.max })
			}
			counts[i][1]++
			if _, ok := a.failures[d.ID]; ok {
				counts[i][0]++
			}
		}
		out := make([]SizeBucket, 0, len(counts))
		for i, c := range counts {
			label := "size not recorded"
			if i < len(bounds) {
				label = bounds[i].label
			}
			out = append(out, SizeBucket{Label: label, Failed: newRatio(c[0], c[1])})
		}
		return out
	}
	return bucket(lineBuckets, func(s Size) int { return s.Lines }),
		bucket(prBuckets, func(s Size) int { return s.PRs })
}
