package dora

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC) // a Monday, ISO 2026-W48

func live(id int64, version, from string, start time.Time) Deploy {
	return Deploy{ID: id, App: "shop", Env: "production", Kind: KindDeploy, Version: version, FromVersion: from,
		StartedAt: start, FirstTrafficAt: start.Add(time.Minute), LiveAt: start.Add(30 * time.Minute)}
}

func rollbackOf(id int64, to, from string, start time.Time) Deploy {
	return Deploy{ID: id, App: "shop", Env: "production", Kind: KindRollback, Version: to, FromVersion: from,
		StartedAt: start, FirstTrafficAt: start.Add(time.Second), LiveAt: start.Add(time.Minute)}
}

func week(t *testing.T, h History, cal Calendar, from time.Time) Summary {
	t.Helper()
	sums := Summarize(h, cal, from, cal.NextWeek(from))
	if len(sums) != 1 {
		t.Fatalf("Summarize returned %d summaries, want 1", len(sums))
	}
	return sums[0]
}

func failedIDs(s Summary) []int64 {
	var ids []int64
	for _, f := range s.Failures {
		ids = append(ids, f.DeployID)
	}
	return ids
}

func TestSummarize_NoDeploysIsNotZeroPercent(t *testing.T) {
	cal := DefaultCalendar(nil)
	// One deploy three weeks before the week asked for.
	h := History{Deploys: []Deploy{live(1, "v1", "", t0.AddDate(0, 0, -21))}}
	s := week(t, h, cal, cal.WeekOf(t0))
	k := s.Keys
	if k.ChangeFailRate.Rate != nil || k.ChangeFailRate.String() != "no deploys" || k.Rework.Percent() != "no deploys" {
		t.Fatalf("change fail rate = %v %q, want nil and \"no deploys\"", k.ChangeFailRate.Rate, k.ChangeFailRate.String())
	}
	if k.ChangeFailRate.Band.Level != "" || k.LeadTime.Median != nil || k.Frequency.String() != "no deploys" {
		t.Fatalf("a week without deploys has a band %q, a lead time %v or frequency %q", k.ChangeFailRate.Band.Level, k.LeadTime.Median, k.Frequency)
	}
	if got, want := k.Frequency.Band.Level, Low; got != want {
		t.Fatalf("frequency band = %q, want %q", got, want)
	}
	b, err := json.Marshal(k.ChangeFailRate)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"rate":null`) {
		t.Fatalf("JSON %s: want \"rate\":null", b)
	}
}

func TestSummarize_RollbackOfRollback(t *testing.T) {
	cal := DefaultCalendar(nil)
	h := History{Deploys: []Deploy{
		live(1, "v1", "", t0),
		live(2, "v2", "v1", t0.Add(2*time.Hour)),
		rollbackOf(3, "v1", "v2", t0.Add(4*time.Hour)), // v2 was bad
		rollbackOf(4, "v2", "v1", t0.Add(5*time.Hour)), // no, it was not: v2 back
	}}
	s := week(t, h, cal, cal.WeekOf(t0))
	if got, want := failedIDs(s), []int64{2}; !slices.Equal(got, want) {
		t.Fatalf("failed deploys = %v, want %v: the rollback of the rollback blames no deploy", got, want)
	}
	if got := s.Keys.ChangeFailRate.String(); got != "50.0% (1 of 2 deploys)" {
		t.Fatalf("change fail rate = %q", got)
	}
	if got, want := time.Duration(*s.Keys.Recovery.Median), time.Minute; got != want {
		t.Fatalf("recovery = %v, want %v (rollback asked to rollback live)", got, want)
	}
	if s.Keys.Frequency.Deploys != 2 {
		t.Fatalf("deploys = %d, want 2: rollbacks are not deployments", s.Keys.Frequency.Deploys)
	}
}

func TestSummarize_HotfixFixesEarlierDeploy(t *testing.T) {
	cal := DefaultCalendar(nil)
	hotfix := live(3, "v3", "v2", t0.Add(6*time.Hour))
	hotfix.Hotfix = true
	h := History{
		Deploys: []Deploy{live(1, "v1", "", t0), live(2, "v2", "v1", t0.Add(2*time.Hour)), hotfix},
		// The incident is v1's, although v2 is the newest deploy.
		Incidents: []Incident{{ID: 7, App: "shop", Env: "production", DeployID: 1, FixDeployID: 3,
			OpenedAt: t0.Add(5 * time.Hour), ResolvedAt: t0.Add(9 * time.Hour)}},
	}
	s := week(t, h, cal, cal.WeekOf(t0))
	if got, want := failedIDs(s), []int64{1}; !slices.Equal(got, want) {
		t.Fatalf("failed deploys = %v, want %v", got, want)
	}
	f := s.Failures[0]
	if want := []string{"incident 7", "fixed by deploy 3"}; !slices.Equal(f.Causes, want) {
		t.Fatalf("causes = %q, want %q", f.Causes, want)
	}
	// Detected when the incident opened, restored when the hotfix went
	// live (before the incident was resolved).
	if got, want := time.Duration(*f.Recovery), hotfix.LiveAt.Sub(t0.Add(5*time.Hour)); got != want {
		t.Fatalf("recovery = %v, want %v", got, want)
	}
	if got := s.Keys.Rework.String(); got != "33.3% (1 of 3 deploys)" {
		t.Fatalf("rework = %q", got)
	}
}

func TestSummarize_LeadTimeAtOrBelowZeroIsExcluded(t *testing.T) {
	cal := DefaultCalendar(nil)
	ok := live(1, "v1", "", t0)
	ok.FirstCommitAt = ok.LiveAt.Add(-26 * time.Hour)
	zero := live(2, "v2", "v1", t0.Add(time.Hour))
	zero.FirstCommitAt = zero.LiveAt
	after := live(3, "v3", "v2", t0.Add(2*time.Hour))
	after.FirstCommitAt = after.LiveAt.Add(time.Hour)
	unknown := live(4, "v4", "v3", t0.Add(3*time.Hour))
	s := week(t, History{Deploys: []Deploy{ok, zero, after, unknown}}, cal, cal.WeekOf(t0))
	lt := s.Keys.LeadTime
	if lt.N != 1 || lt.Excluded != 2 || time.Duration(*lt.Median) != 26*time.Hour {
		t.Fatalf("lead time = %s, excluded %d; want median 26h over 1, 2 excluded", lt, lt.Excluded)
	}
	if lt.Band.Level != High {
		t.Fatalf("lead time band = %q, want high (between one day and one week)", lt.Band.Level)
	}
}

func TestCalendar_WeekBoundaryAndTimezone(t *testing.T) {
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Fatal(err)
	}
	// Sunday 29 November 2026 23:30 in New York is Monday 04:30 UTC.
	sundayNight := time.Date(2026, 11, 30, 4, 30, 0, 0, time.UTC)
	tests := []struct {
		name string
		cal  Calendar
		want string // the week start, local
	}{
		{"utc monday", DefaultCalendar(nil), "2026-11-30T00:00:00Z"},
		{"new york monday", DefaultCalendar(ny), "2026-11-23T00:00:00-05:00"},
		{"new york sunday", Calendar{Location: ny, WeekStart: time.Sunday}, "2026-11-29T00:00:00-05:00"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.cal.WeekOf(sundayNight).Format(time.RFC3339); got != tt.want {
				t.Fatalf("WeekOf = %s, want %s", got, tt.want)
			}
			// The deploy lands in that week and not the other.
			h := History{Deploys: []Deploy{live(1, "v1", "", sundayNight)}}
			from := tt.cal.WeekOf(sundayNight)
			if n := week(t, h, tt.cal, from).Keys.Frequency.Deploys; n != 1 {
				t.Fatalf("deploys in its week = %d, want 1", n)
			}
			if n := week(t, h, tt.cal, tt.cal.AddWeeks(from, 1)).Previous.Frequency.Deploys; n != 1 {
				t.Fatalf("deploys in the 4 weeks before the next week = %d, want 1", n)
			}
			if n := week(t, h, tt.cal, tt.cal.AddWeeks(from, 1)).Keys.Frequency.Deploys; n != 0 {
				t.Fatalf("deploys in the next week = %d, want 0", n)
			}
		})
	}
	// The week that holds the end of daylight saving time lasts 169 hours.
	cal := DefaultCalendar(ny)
	w := cal.WeekOf(time.Date(2026, 11, 1, 12, 0, 0, 0, ny))
	if got := cal.NextWeek(w).Sub(w); got != 169*time.Hour {
		t.Fatalf("week across the DST change lasts %v, want 169h", got)
	}
}

func TestCalendar_ParseWeek(t *testing.T) {
	ny, _ := time.LoadLocation("America/New_York")
	now := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC) // a Thursday, 2026-W49
	tests := []struct {
		cal  Calendar
		in   string
		want string
		name string
	}{
		{DefaultCalendar(nil), "2026-W48", "2026-11-23T00:00:00Z", "2026-W48"},
		{DefaultCalendar(nil), "last", "2026-11-23T00:00:00Z", "2026-W48"},
		{DefaultCalendar(nil), "this", "2026-11-30T00:00:00Z", "2026-W49"},
		{DefaultCalendar(nil), "2026-W01", "2025-12-29T00:00:00Z", "2026-W01"},
		{DefaultCalendar(nil), "2026-W53", "2026-12-28T00:00:00Z", "2026-W53"},
		{DefaultCalendar(ny), "2026-W48", "2026-11-23T00:00:00-05:00", "2026-W48"},
		{Calendar{Location: ny, WeekStart: time.Sunday}, "2026-W48", "2026-11-22T00:00:00-05:00", "2026-W48"},
	}
	for _, tt := range tests {
		got, err := tt.cal.ParseWeek(tt.in, now)
		if err != nil {
			t.Fatalf("ParseWeek(%q): %v", tt.in, err)
		}
		if got.Format(time.RFC3339) != tt.want {
			t.Errorf("ParseWeek(%q) = %s, want %s", tt.in, got.Format(time.RFC3339), tt.want)
		}
		if n := tt.cal.WeekName(got); n != tt.name {
			t.Errorf("WeekName(%s) = %s, want %s", got, n, tt.name)
		}
	}
	for _, bad := range []string{"2026-W54", "2025-W53", "2026-W00", "W48", "next"} {
		if _, err := DefaultCalendar(nil).ParseWeek(bad, now); err == nil {
			t.Errorf("ParseWeek(%q) did not fail", bad)
		}
	}
}

func TestSummarize_TrendAndSizes(t *testing.T) {
	cal := DefaultCalendar(nil)
	var h History
	id := int64(0)
	add := func(start time.Time, fail bool, lines int) {
		id++
		d := live(id, "v"+string(rune('a'+id)), "", start)
		d.Size = &Size{Files: 1, Lines: lines, PRs: 1}
		if fail {
			d.RolledBack, d.RollbackStartedAt, d.TrafficRestoredAt = true, d.FirstTrafficAt.Add(time.Minute), d.FirstTrafficAt.Add(time.Minute+time.Second)
			d.LiveAt = time.Time{}
		}
		h.Deploys = append(h.Deploys, d)
	}
	// Four weeks before: 2 deploys, 1 failed. This week: 4 deploys, 0 failed.
	add(t0.AddDate(0, 0, -14), true, 2500)
	add(t0.AddDate(0, 0, -13), false, 50)
	for i := range 4 {
		add(t0.Add(time.Duration(i)*24*time.Hour), false, 50)
	}
	s := week(t, h, cal, cal.WeekOf(t0))
	if s.Keys.ChangeFailRate.Trend != Better || s.Keys.Frequency.Trend != Better {
		t.Fatalf("trends = %q/%q, want better/better", s.Keys.ChangeFailRate.Trend, s.Keys.Frequency.Trend)
	}
	if s.Previous.ChangeFailRate.String() != "50.0% (1 of 2 deploys)" {
		t.Fatalf("previous = %s", s.Previous.ChangeFailRate)
	}
	if len(s.Weeks) != 5 || s.Weeks[4].Name != "2026-W48" || s.Weeks[2].Keys.Frequency.Deploys != 2 {
		t.Fatalf("weeks = %+v", s.Weeks)
	}
	if got := s.ByLines[0]; got.Label != "< 100 lines" || got.Failed.Of != 4 || got.Failed.Count != 0 {
		t.Fatalf("by lines[0] = %+v", got)
	}
	if got := s.ByLines[3].Failed.String(); got != "no deploys" {
		t.Fatalf("2000+ lines this week = %q, want no deploys", got)
	}
}

func TestBands(t *testing.T) {
	tests := []struct {
		got, want string
	}{
		{ChangeFailBand(0.05).Level, Elite}, {ChangeFailBand(0.051).Level, High}, {ChangeFailBand(0.15).Level, Medium}, {ChangeFailBand(0.16).Level, Low},
		{LeadTimeBand(23 * time.Hour).Level, Elite}, {LeadTimeBand(24 * time.Hour).Level, High}, {LeadTimeBand(8 * 24 * time.Hour).Level, Medium}, {LeadTimeBand(31 * 24 * time.Hour).Level, Low},
		{RecoveryBand(59 * time.Minute).Level, Elite}, {RecoveryBand(time.Hour).Level, High}, {RecoveryBand(2 * 24 * time.Hour).Level, Medium}, {RecoveryBand(8 * 24 * time.Hour).Level, Low},
		{FrequencyBand(5).Level, Elite}, {FrequencyBand(1).Level, High}, {FrequencyBand(0.25).Level, Medium}, {FrequencyBand(0.2).Level, Low},
	}
	for i, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("case %d: band %q, want %q", i, tt.got, tt.want)
		}
	}
}

func TestHumanDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		3 * time.Second: "3s", 12 * time.Minute: "12m", 200 * time.Minute: "3h20m", 52 * time.Hour: "2d4h", 48 * time.Hour: "2d", -time.Hour: "-1h",
	} {
		if got := HumanDuration(d); got != want {
			t.Errorf("HumanDuration(%v) = %q, want %q", d, got, want)
		}
	}
}
