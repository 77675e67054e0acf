package dora

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"time"
)

// Duration is a time.Duration that encodes to JSON as seconds.
type Duration time.Duration

// MarshalJSON writes the duration as a number of seconds.
func (d Duration) MarshalJSON() ([]byte, error) {
	return strconv.AppendFloat(nil, time.Duration(d).Seconds(), 'f', -1, 64), nil
}

// UnmarshalJSON reads a number of seconds.
func (d *Duration) UnmarshalJSON(b []byte) error {
	f, err := strconv.ParseFloat(string(b), 64)
	if err != nil {
		return fmt.Errorf("duration: want seconds, got %s", b)
	}
	*d = Duration(f * float64(time.Second))
	return nil
}

// String writes the duration for people: "45s", "12m", "3h20m", "2d4h".
func (d Duration) String() string { return HumanDuration(time.Duration(d)) }

// HumanDuration writes d with at most two units, rounded down.
func HumanDuration(d time.Duration) string {
	neg := d < 0
	if neg {
		d = -d
	}
	var s string
	switch {
	case d < time.Minute:
		s = fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		s = fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 24*time.Hour:
		h := int(d.Hours())
		s = fmt.Sprintf("%dh", h)
		if m := int(d.Minutes()) - 60*h; m > 0 {
			s += fmt.Sprintf("%dm", m)
		}
	default:
		days := int(d.Hours()) / 24
		s = fmt.Sprintf("%dd", days)
		if h := int(d.Hours()) - 24*days; h > 0 {
			s += fmt.Sprintf("%dh", h)
		}
	}
	if neg {
		return "-" + s
	}
	return s
}

// Trend compares a key with the four weeks before.
type Trend string

// Trends.
const (
	Better Trend = "better"
	Worse  Trend = "worse"
	Same   Trend = "same"
	// NoTrend: one side has no data.
	NoTrend Trend = ""
)

// Ratio is count of of, e.g. 2 failed of 23 deploys. Rate is nil when Of
// is 0: a week without deploys has no fail rate, not a 0% one.
type Ratio struct {
	Count int      `json:"count"`
	Of    int      `json:"of"`
	Rate  *float64 `json:"rate"`
	Band  Band     `json:"band"`
	Trend Trend    `json:"trend,omitempty"`
}

func newRatio(count, of int) Ratio {
	r := Ratio{Count: count, Of: of}
	if of > 0 {
		v := float64(count) / float64(of)
		r.Rate = &v
	}
	return r
}

// Percent writes the rate as "8.7%", or "no deploys".
func (r Ratio) Percent() string {
	if r.Rate == nil {
		return "no deploys"
	}
	return strconv.FormatFloat(100**r.Rate, 'f', 1, 64) + "%"
}

// String writes "8.7% (2 of 23 deploys)", or "no deploys".
func (r Ratio) String() string {
	if r.Rate == nil {
		return "no deploys"
	}
	return fmt.Sprintf("%s (%d of %d deploys)", r.Percent(), r.Count, r.Of)
}

// Durations summarises a sample of durations. Median and P90 are nil when
// N is 0.
type Durations struct {
	// N is the sample size; Excluded counts samples left out as
	// meaningless (a lead time of zero or less: a commit time after the
	// deploy, a clock skew).
	N        int       `json:"n"`
	Excluded int       `json:"excluded,omitempty"`
	Median   *Duration `json:"median_seconds"`
	P90      *Duration `json:"p90_seconds"`
	Band     Band      `json:"band"`
	Trend    Trend     `json:"trend,omitempty"`
}

func newDurations(ds []time.Duration) Durations {
	out := Durations{N: len(ds)}
	if len(ds) == 0 {
		return out
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	var med time.Duration
	if n := len(s); n%2 == 1 {
		med = s[n/2]
	} else {
		med = s[n/2-1] + (s[n/2]-s[n/2-1])/2
	}
	// Nearest rank: the smallest value at least 90% of the sample is at
	// or below.
	p90 := s[int(math.Ceil(0.9*float64(len(s))))-1]
	m, p := Duration(med), Duration(p90)
	out.Median, out.P90 = &m, &p
	return out
}

// String writes "median 3h20m, p90 2d (n=20)", or "no samples".
func (d Durations) String() string {
	if d.Median == nil {
		return "no samples"
	}
	return fmt.Sprintf("median %s, p90 %s (n=%d)", d.Median, d.P90, d.N)
}

// Frequency is how often the environment got deployments.
type Frequency struct {
	Deploys    int `json:"deploys"`
	DeployDays int `json:"deploy_days"`
	// Days is the length of the period in calendar days.
	Days        int     `json:"days"`
	PerWeek     float64 `json:"deploys_per_week"`
	DaysPerWeek float64 `json:"deploy_days_per_week"`
	Band        Band    `json:"band"`
	Trend       Trend   `json:"trend,omitempty"`
}

// String writes "23 deploys on 9 days (5.8/week)" or "no deploys".
func (f Frequency) String() string {
	if f.Deploys == 0 {
		return "no deploys"
	}
	return fmt.Sprintf("%d deploys on %d days (%.1f/week)", f.Deploys, f.DeployDays, f.PerWeek)
}

// compare says whether now is better than before, lower being better
// when lowerBetter.
func compare(now, before float64, lowerBetter bool) Trend {
	const eps = 1e-9
	switch {
	case math.Abs(now-before) < eps:
		return Same
	case (now < before) == lowerBetter:
		return Better
	default:
		return Worse
	}
}
