package dora

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
	"testing"
	"time"
)

// truth is what the generator knows about one rollout, independently of
// how package dora infers it.
type truth struct {
	counted bool // a deployment that reached users
	rework  bool
	// detects and restores of each intervention on it (restore zero when
	// service was not restored by that intervention).
	detects, restores []time.Time
}

// generated is a history with its ground truth.
type generated struct {
	h     History
	truth map[int64]*truth
	byID  map[int64]Deploy
	// rollbackOfRollback and earlierFixes count the edge cases generated.
	rollbackOfRollback, earlierFixes int
}

// generate makes a history of rollouts of two apps in two environments
// from start for weeks weeks, with quiet weeks, auto and manual
// rollbacks, rollbacks of rollbacks, incidents and hotfixes fixing
// earlier deploys, commit times (some after the deploy, some unknown) and
// change sizes.
func generate(seed uint64, start time.Time, weeks int) generated {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	g := generated{truth: map[int64]*truth{}, byID: map[int64]Deploy{}}
	end := start.Add(time.Duration(weeks) * 7 * 24 * time.Hour)
	var id, incidentID int64
	dur := func(lo, hi time.Duration) time.Duration { return lo + time.Duration(rng.Int64N(int64(hi-lo))) }

	for _, app := range []string{"shop", "api"} {
		for _, env := range []string{"production", "staging"} {
			t := start.Add(dur(0, 6*time.Hour))
			version := 0
			stable, previous := "", ""
			var stableBy int64 // the rollout that made stable live
			var live []int64   // deploys that went live, newest last
			pendingFix := int64(0)
			var busyUntil time.Time // rollouts of one environment do not overlap
			for t.Before(end) {
				if t.Before(busyUntil) {
					t = busyUntil
				}
				if rng.IntN(14) == 0 {
					t = t.Add(dur(8*24*time.Hour, 12*24*time.Hour)) // a quiet week or more
				} else {
					t = t.Add(dur(20*time.Minute, 16*time.Hour))
				}
				id++
				canRollback := stable != "" && previous != ""
				if canRollback && pendingFix == 0 && rng.IntN(10) == 0 {
					// A manual rollback after the release finished.
					r := Deploy{ID: id, App: app, Env: env, Kind: KindRollback, Version: previous, FromVersion: stable, StartedAt: t}
					if rng.IntN(8) != 0 {
						r.FirstTrafficAt = t.Add(30 * time.Second)
						r.LiveAt = t.Add(dur(40*time.Second, 20*time.Minute))
					}
					g.truth[id] = &truth{}
					if tr := g.truth[stableBy]; tr != nil && g.byID[stableBy].Kind == KindDeploy {
						tr.detects = append(tr.detects, r.StartedAt)
						tr.restores = append(tr.restores, r.LiveAt)
					} else {
						g.rollbackOfRollback++
					}
					if !r.LiveAt.IsZero() {
						stable, previous, stableBy = previous, stable, id
					}
					busyUntil = r.StartedAt.Add(20 * time.Minute)
					g.add(r)
					continue
				}

				version++
				d := Deploy{ID: id, App: app, Env: env, Kind: KindDeploy, Version: fmt.Sprintf("v%d", version),
					FromVersion: stable, StartedAt: t}
				tr := &truth{}
				g.truth[id] = tr
				if pendingFix != 0 || rng.IntN(14) == 0 {
					d.Hotfix = true
					tr.rework = true
				}
				switch n := rng.IntN(100); {
				case pendingFix == 0 && n < 5: // stopped by a gate before any user
					d.RolledBack = true
					d.RollbackStartedAt = t.Add(2 * time.Minute)
					d.TrafficRestoredAt = d.RollbackStartedAt
				case pendingFix == 0 && n < 17: // convicted by the canary analysis
					d.FirstTrafficAt = t.Add(3 * time.Minute)
					d.RolledBack = true
					d.RollbackStartedAt = d.FirstTrafficAt.Add(dur(time.Minute, 40*time.Minute))
					d.TrafficRestoredAt = d.RollbackStartedAt.Add(dur(time.Millisecond, 3*time.Second))
					d.Gate, d.Value, d.Threshold = "error_rate", "0.12", "0.01"
					tr.detects = append(tr.detects, d.RollbackStartedAt)
					tr.restores = append(tr.restores, d.TrafficRestoredAt)
				case pendingFix == 0 && n < 20: // rolled back by a person mid-rollout
					d.FirstTrafficAt = t.Add(3 * time.Minute)
					d.RolledBack, d.ManualRollback = true, true
					d.RollbackStartedAt = d.FirstTrafficAt.Add(dur(time.Minute, 2*time.Hour))
					if rng.IntN(5) != 0 {
						d.TrafficRestoredAt = d.RollbackStartedAt.Add(time.Second)
					}
					tr.detects = append(tr.detects, d.RollbackStartedAt)
					tr.restores = append(tr.restores, d.TrafficRestoredAt)
				case pendingFix == 0 && n < 23: // live, then failed its post-promotion smoke checks
					d.FirstTrafficAt = t.Add(3 * time.Minute)
					d.LiveAt = t.Add(30 * time.Minute)
					d.RolledBack = true
					d.RollbackStartedAt = d.LiveAt.Add(time.Minute)
					d.TrafficRestoredAt = d.RollbackStartedAt.Add(time.Second)
					tr.detects = append(tr.detects, d.RollbackStartedAt)
					tr.restores = append(tr.restores, d.TrafficRestoredAt)
				default:
					d.FirstTrafficAt = t.Add(3 * time.Minute)
					d.LiveAt = t.Add(dur(10*time.Minute, 3*time.Hour))
				}
				tr.counted = !d.FirstTrafficAt.IsZero()
				switch rng.IntN(20) {
				case 0: // unknown commit time
				case 1: // commit time after going live: excluded
					d.FirstCommitAt = d.StartedAt.Add(4 * time.Hour)
				case 2: // exactly at live: excluded (lead time 0)
					d.FirstCommitAt = d.LiveAt
				default:
					d.FirstCommitAt = d.StartedAt.Add(-dur(time.Minute, 20*24*time.Hour))
				}
				if rng.IntN(6) != 0 {
					d.Size = &Size{Files: 1 + rng.IntN(40), Lines: rng.IntN(3000), PRs: 1 + rng.IntN(20)}
				}
				if pendingFix != 0 {
					d.LiveAt = d.FirstTrafficAt.Add(10 * time.Minute)
					in := &g.h.Incidents[pendingFix-1]
					in.FixDeployID = id
					if in.DeployID != live[len(live)-1] {
						g.earlierFixes++
					}
					target := g.truth[in.DeployID]
					target.restores[len(target.restores)-1] = earliestTime(in.ResolvedAt, d.LiveAt)
					pendingFix = 0
				}
				if !d.LiveAt.IsZero() && !d.RolledBack {
					previous, stable, stableBy = stable, d.Version, id
					live = append(live, id)
				}
				busyUntil = latest(d.StartedAt, d.LiveAt, d.TrafficRestoredAt, d.RollbackStartedAt)
				g.add(d)

				// Now and then an incident against one of the last live
				// deploys (not always the newest), maybe fixed by the next
				// deploy, a hotfix.
				if len(live) > 0 && rng.IntN(12) == 0 {
					target := live[max(0, len(live)-1-rng.IntN(3))]
					incidentID++
					in := Incident{ID: incidentID, App: app, Env: env, DeployID: target, Title: "checkout errors",
						OpenedAt: d.StartedAt.Add(dur(time.Minute, time.Hour))}
					if in.OpenedAt.Before(g.byID[target].LiveAt) {
						in.OpenedAt = g.byID[target].LiveAt.Add(time.Minute)
					}
					tt := g.truth[target]
					tt.detects = append(tt.detects, in.OpenedAt)
					if rng.IntN(3) != 0 {
						in.ResolvedAt = in.OpenedAt.Add(dur(10*time.Minute, 3*24*time.Hour))
					}
					tt.restores = append(tt.restores, in.ResolvedAt)
					g.h.Incidents = append(g.h.Incidents, in)
					if rng.IntN(2) == 0 {
						pendingFix = incidentID
						t = in.OpenedAt
					}
				}
				// An incident no deploy is known to have caused.
				if rng.IntN(40) == 0 {
					incidentID++
					g.h.Incidents = append(g.h.Incidents, Incident{ID: incidentID, App: app, Env: env, Title: "network",
						OpenedAt: t.Add(time.Hour), ResolvedAt: t.Add(2 * time.Hour)})
				}
			}
		}
	}
	return g
}

func (g *generated) add(d Deploy) {
	g.h.Deploys = append(g.h.Deploys, d)
	g.byID[d.ID] = d
}

func latest(ts ...time.Time) time.Time {
	var l time.Time
	for _, t := range ts {
		if t.After(l) {
			l = t
		}
	}
	return l
}

func earliestTime(a, b time.Time) time.Time {
	if a.IsZero() || (!b.IsZero() && b.Before(a)) {
		return b
	}
	return a
}

// oracleKeys is the plain reading of the definitions over the deploys of
// app/env whose start lies in the local dates [fromDay, toDay) (days since
// 1970-01-01 in loc).
type oracleKeys struct {
	deploys, days, notReached, failed, rework int
	leads, recoveries                         []float64 // seconds
	excluded                                  int
}

// civilDay is the number of days from 1970-01-01 to t's date in loc.
func civilDay(t time.Time, loc *time.Location) int {
	y, m, d := t.In(loc).Date()
	return int(time.Date(y, m, d, 0, 0, 0, 0, time.UTC).Unix() / 86400)
}

func (g generated) oracle(app, env string, loc *time.Location, fromDay, toDay int) oracleKeys {
	var k oracleKeys
	days := map[int]bool{}
	for _, d := range g.h.Deploys {
		day := civilDay(d.StartedAt, loc)
		if d.App != app || d.Env != env || d.Kind != KindDeploy || day < fromDay || day >= toDay {
			continue
		}
		tr := g.truth[d.ID]
		if !tr.counted {
			k.notReached++
			continue
		}
		k.deploys++
		days[day] = true
		if tr.rework {
			k.rework++
		}
		if len(tr.detects) > 0 {
			k.failed++
			detect, restore := tr.detects[0], time.Time{}
			for _, x := range tr.detects {
				if x.Before(detect) {
					detect = x
				}
			}
			for _, x := range tr.restores {
				if !x.IsZero() && (restore.IsZero() || x.Before(restore)) {
					restore = x
				}
			}
			if !restore.IsZero() {
				k.recoveries = append(k.recoveries, restore.Sub(detect).Seconds())
			}
		}
		if !d.LiveAt.IsZero() && !d.FirstCommitAt.IsZero() {
			if s := d.LiveAt.Sub(d.FirstCommitAt).Seconds(); s > 0 {
				k.leads = append(k.leads, s)
			} else {
				k.excluded++
			}
		}
	}
	k.days = len(days)
	return k
}

func oracleMedian(xs []float64) float64 {
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// oracleP90 is the smallest value that at least 90% of the sample is at
// or below.
func oracleP90(xs []float64) float64 {
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	for _, v := range s {
		n := 0
		for _, x := range s {
			if x <= v {
				n++
			}
		}
		if float64(n) >= 0.9*float64(len(s)) {
			return v
		}
	}
	return math.NaN()
}

func checkKeys(t *testing.T, where string, got Keys, want oracleKeys) {
	t.Helper()
	f := got.Frequency
	if f.Deploys != want.deploys || f.DeployDays != want.days || got.NotReachedUsers != want.notReached {
		t.Errorf("%s: deploys/days/not reached = %d/%d/%d, want %d/%d/%d", where,
			f.Deploys, f.DeployDays, got.NotReachedUsers, want.deploys, want.days, want.notReached)
	}
	checkRatio(t, where+" change fail rate", got.ChangeFailRate, want.failed, want.deploys)
	checkRatio(t, where+" rework rate", got.Rework, want.rework, want.deploys)
	checkDurations(t, where+" lead time", got.LeadTime, want.leads)
	if got.LeadTime.Excluded != want.excluded {
		t.Errorf("%s: lead times excluded = %d, want %d", where, got.LeadTime.Excluded, want.excluded)
	}
	checkDurations(t, where+" recovery", got.Recovery, want.recoveries)
}

func checkRatio(t *testing.T, where string, got Ratio, count, of int) {
	t.Helper()
	if got.Count != count || got.Of != of {
		t.Errorf("%s = %d of %d, want %d of %d", where, got.Count, got.Of, count, of)
	}
	if of == 0 {
		if got.Rate != nil || got.String() != "no deploys" {
			t.Errorf("%s with no deploys = %v %q, want nil rate and \"no deploys\"", where, got.Rate, got.String())
		}
		return
	}
	if got.Rate == nil || math.Abs(*got.Rate-float64(count)/float64(of)) > 1e-12 {
		t.Errorf("%s rate = %s, want %v", where, got.Percent(), float64(count)/float64(of))
	}
}

func checkDurations(t *testing.T, where string, got Durations, want []float64) {
	t.Helper()
	if got.N != len(want) {
		t.Errorf("%s n = %d, want %d", where, got.N, len(want))
		return
	}
	if len(want) == 0 {
		if got.Median != nil || got.P90 != nil {
			t.Errorf("%s with no samples has median %v p90 %v", where, got.Median, got.P90)
		}
		return
	}
	med, p90 := oracleMedian(want), oracleP90(want)
	if math.Abs(time.Duration(*got.Median).Seconds()-med) > 1e-3 {
		t.Errorf("%s median = %v, want %.3fs", where, time.Duration(*got.Median), med)
	}
	if math.Abs(time.Duration(*got.P90).Seconds()-p90) > 1e-6 {
		t.Errorf("%s p90 = %v, want %.3fs", where, time.Duration(*got.P90), p90)
	}
}

// TestSummarize_MatchesOracle checks every key of every app, environment
// and week of generated histories against the plain implementation above,
// in New York (a daylight-saving change inside the range) with weeks
// starting Monday and Sunday, and in UTC.
func TestSummarize_MatchesOracle(t *testing.T) {
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		cal  Calendar
		seed uint64
	}{
		{"new york monday", DefaultCalendar(ny), 1},
		{"new york sunday", Calendar{Location: ny, WeekStart: time.Sunday}, 2},
		{"utc monday", DefaultCalendar(nil), 3},
		{"utc wednesday", Calendar{WeekStart: time.Wednesday}, 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			loc := tt.cal.loc()
			// A fixed clock: 13 weeks from 2026-09-07, across the end of
			// daylight saving time in New York on 2026-11-01.
			start := time.Date(2026, 9, 7, 0, 0, 0, 0, loc)
			g := generate(tt.seed, start, 13)
			if n := len(g.h.Deploys); n < 250 {
				t.Fatalf("generated %d rollouts, want hundreds", n)
			}
			counted, failed, rollbacks := 0, 0, 0
			for _, tr := range g.truth {
				if tr.counted {
					counted++
					if len(tr.detects) > 0 {
						failed++
					}
				}
			}
			for _, d := range g.h.Deploys {
				if d.Kind == KindRollback {
					rollbacks++
				}
			}
			t.Logf("%d rollouts: %d deployments, %d failed, %d manual rollbacks (%d of a rollback), %d incidents (%d fixed by a hotfix to an earlier deploy)",
				len(g.h.Deploys), counted, failed, rollbacks, g.rollbackOfRollback, len(g.h.Incidents), g.earlierFixes)
			if g.rollbackOfRollback == 0 || g.earlierFixes == 0 {
				t.Fatal("the history lacks a rollback of a rollback or a hotfix fixing an earlier deploy")
			}

			from := tt.cal.AddWeeks(tt.cal.WeekOf(start), 5)
			to := tt.cal.AddWeeks(from, 6)
			sums := Summarize(g.h, tt.cal, from, to)
			if len(sums) != 4 {
				t.Fatalf("got %d summaries, want 4 (2 apps x 2 envs)", len(sums))
			}
			emptyWeeks := 0
			for _, s := range sums {
				where := s.App + "/" + s.Env
				checkKeys(t, where+" period", s.Keys, g.oracle(s.App, s.Env, loc, civilDay(from, loc), civilDay(to, loc)))
				prevFrom := civilDay(from, loc) - 28
				checkKeys(t, where+" previous 4 weeks", s.Previous, g.oracle(s.App, s.Env, loc, prevFrom, civilDay(from, loc)))
				if len(s.Weeks) != 10 {
					t.Fatalf("%s: %d weeks, want 10 (4 before and 6 in the period)", where, len(s.Weeks))
				}
				for i, w := range s.Weeks {
					// The oracle's week i starts 7*i days after the
					// previous period's first day, at local midnight.
					day := prevFrom + 7*i
					wantStart := time.Unix(int64(day)*86400, 0).UTC()
					if l := w.Start.In(loc); l.Hour() != 0 || l.Minute() != 0 || l.Weekday() != tt.cal.WeekStart ||
						l.Format(time.DateOnly) != wantStart.Format(time.DateOnly) {
						t.Fatalf("%s week %d starts %v, want %s 00:00 (%s)", where, i, l, wantStart.Format(time.DateOnly), tt.cal.WeekStart)
					}
					want := g.oracle(s.App, s.Env, loc, day, day+7)
					if want.deploys == 0 {
						emptyWeeks++
					}
					checkKeys(t, fmt.Sprintf("%s %s", where, w.Name), w.Keys, want)
				}
			}
			if emptyWeeks == 0 {
				t.Error("no week without deploys was generated: the edge case is untested")
			}
		})
	}
}
