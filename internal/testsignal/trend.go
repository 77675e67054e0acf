package testsignal

import (
	"context"
	"slices"
	"time"
)

// Week is one week of CI runs, for the Monday report's trend.
type Week struct {
	// Start is the Monday 00:00 UTC the week begins.
	Start time.Time `json:"start"`
	// Runs counts the runs recorded with a CI duration.
	Runs int `json:"runs"`
	// MedianCI and MaxCI are over those runs; 0 without any.
	MedianCI time.Duration `json:"median_ci"`
	MaxCI    time.Duration `json:"max_ci"`
	// Infra counts the runs that were infrastructure failures.
	Infra int `json:"infra"`
}

// Trend groups runs into the weeks (Monday to Sunday, UTC) that end with
// the week of now, oldest first; weeks without runs are present and zero.
func Trend(runs []Run, now time.Time, weeks int) []Week {
	if weeks <= 0 {
		return nil
	}
	last := monday(now)
	out := make([]Week, weeks)
	durations := make([][]time.Duration, weeks)
	for i := range out {
		out[i].Start = last.AddDate(0, 0, -7*(weeks-1-i))
	}
	for _, r := range runs {
		i := weeks - 1 - int(last.Sub(monday(r.At)).Hours()/(24*7))
		if i < 0 || i >= weeks {
			continue
		}
		if r.Infra {
			out[i].Infra++
		}
		if r.CIDuration > 0 {
			out[i].Runs++
			durations[i] = append(durations[i], r.CIDuration)
		}
	}
	for i, ds := range durations {
		if len(ds) == 0 {
			continue
		}
		slices.Sort(ds)
		out[i].MaxCI = ds[len(ds)-1]
		if n := len(ds); n%2 == 1 {
			out[i].MedianCI = ds[n/2]
		} else {
			out[i].MedianCI = (ds[n/2-1] + ds[n/2]) / 2
		}
	}
	return out
}

// monday returns 00:00 UTC of the Monday of t's week.
func monday(t time.Time) time.Time {
	t = t.UTC()
	d := time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
	back := (int(d.Weekday()) + 6) % 7 // days since Monday
	return d.AddDate(0, 0, -back)
}

// Trend returns the app's CI time per week, for the weeks that end with
// the current one, oldest first.
func (s *Service) Trend(ctx context.Context, app string, weeks int) ([]Week, error) {
	runs, err := s.Store.TestRuns(ctx, app, "", historyRuns)
	if err != nil {
		return nil, err
	}
	return Trend(runs, s.now(), weeks), nil
}
