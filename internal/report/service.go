package report

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/shipgate/shipgate/internal/dora"
	"github.com/shipgate/shipgate/internal/rollout"
)

// Query selects what DORA numbers to compute.
type Query struct {
	// App and Env narrow the view; "" means all.
	App string `json:"app,omitempty"`
	Env string `json:"env,omitempty"`
	// Week, when set, is the period: "last", "this" or "2026-W48".
	// Otherwise the period is the Since before now (default 28 days).
	Week  string        `json:"week,omitempty"`
	Since time.Duration `json:"since,omitempty"`
	// Timezone (IANA name) and WeekStart ("monday"...) override the
	// service's calendar.
	Timezone  string `json:"timezone,omitempty"`
	WeekStart string `json:"week_start,omitempty"`
}

// View is the DORA numbers of a period, per app and environment.
type View struct {
	From      time.Time      `json:"from"`
	To        time.Time      `json:"to"`
	Week      string         `json:"week,omitempty"`
	Timezone  string         `json:"timezone"`
	WeekStart string         `json:"week_start"`
	Summaries []dora.Summary `json:"summaries"`
}

// DefaultSince is the period of a query that gives neither Week nor Since.
const DefaultSince = 28 * 24 * time.Hour

// Service answers DORA queries from the store.
type Service struct {
	Store Store
	// Calendar is the default week start and zone.
	Calendar dora.Calendar
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Flags, when set, lists the flags past their expiry in the report.
	Flags FlagDebt
	// Tests, when set, adds each app's CI time trend and flaky tests.
	Tests TestRuns
}

func (s *Service) now() time.Time {
	if s.Now == nil {
		return time.Now()
	}
	return s.Now()
}

// ParseWeekday reads "monday" (or "mon") to time.Monday.
func ParseWeekday(s string) (time.Weekday, error) {
	for d := time.Sunday; d <= time.Saturday; d++ {
		name := strings.ToLower(d.String())
		if l := strings.ToLower(s); l == name || l == name[:3] {
			return d, nil
		}
	}
	return 0, &rollout.FieldError{Field: "week_start", Message: fmt.Sprintf("%q is not a day of the week (monday, tuesday, ...)", s)}
}

// calendar returns the calendar of q: the service's, with q's overrides.
func (s *Service) calendar(q Query) (dora.Calendar, error) {
	cal := s.Calendar
	if q.Timezone != "" {
		loc, err := time.LoadLocation(q.Timezone)
		if err != nil {
			return cal, &rollout.FieldError{Field: "timezone", Message: fmt.Sprintf("%q is not a known time zone (an IANA name such as Europe/Paris)", q.Timezone)}
		}
		cal.Location = loc
	}
	if q.WeekStart != "" {
		d, err := ParseWeekday(q.WeekStart)
		if err != nil {
			return cal, err
		}
		cal.WeekStart = d
	}
	return cal, nil
}

// DORA computes the view q asks for.
func (s *Service) DORA(ctx context.Context, q Query) (View, error) {
	cal, err := s.calendar(q)
	if err != nil {
		return View{}, err
	}
	now := s.now()
	v := View{Timezone: locName(cal.Location), WeekStart: strings.ToLower(cal.WeekStart.String())}
	switch {
	case q.Week != "":
		if q.Since != 0 {
			return View{}, &rollout.FieldError{Field: "since", Message: "give either week or since, not both"}
		}
		if v.From, err = cal.ParseWeek(q.Week, now); err != nil {
			return View{}, &rollout.FieldError{Field: "week", Message: err.Error()}
		}
		v.To, v.Week = cal.NextWeek(v.From), cal.WeekName(v.From)
	case q.Since < 0:
		return View{}, &rollout.FieldError{Field: "since", Message: "must be positive, such as 28d"}
	default:
		since := q.Since
		if since == 0 {
			since = DefaultSince
		}
		v.From, v.To = now.Add(-since).In(cal.Location), now.In(cal.Location)
	}
	h, err := Gather(ctx, s.Store, q.App)
	if err != nil {
		return View{}, err
	}
	for _, sum := range dora.Summarize(h, cal, v.From, v.To) {
		if q.Env == "" || sum.Env == q.Env {
			v.Summaries = append(v.Summaries, sum)
		}
	}
	if v.Summaries == nil {
		v.Summaries = []dora.Summary{}
	}
	return v, nil
}

func locName(l *time.Location) string {
	if l == nil {
		return "UTC"
	}
	return l.String()
}

// ParseSince reads a period such as "28d", "4w", "36h" or "90m".
func ParseSince(s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	unit := map[byte]time.Duration{'d': 24 * time.Hour, 'w': 7 * 24 * time.Hour}
	if m, ok := unit[s[len(s)-1]]; ok {
		var n int
		if _, err := fmt.Sscanf(s[:len(s)-1], "%d", &n); err != nil || n <= 0 || fmt.Sprint(n) != s[:len(s)-1] {
			return 0, fmt.Errorf("since %q: want a positive period such as 28d, 4w or 36h", s)
		}
		return time.Duration(n) * m, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("since %q: want a positive period such as 28d, 4w or 36h", s)
	}
	return d, nil
}
