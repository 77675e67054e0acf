package testsignal

import (
	"sort"
	"time"
)

// Run is one upload of a release's CI test results.
type Run struct {
	ID      int64     `json:"id"`
	App     string    `json:"app"`
	Version string    `json:"version"`
	Commit  string    `json:"commit"`
	At      time.Time `json:"at"`
	// CIDuration is how long the CI run took, as CI said; 0 when unknown.
	CIDuration time.Duration `json:"ci_duration"`
	// Infra is true when most tests failed at once: the run's failures
	// say the CI broke, not the tests, and do not count as flakiness.
	Infra bool   `json:"infra"`
	Cases []Case `json:"cases,omitempty"`
}

// Infrastructure failure: at least this many tests ran, and more than
// this share of them failed.
const (
	infraMinTests = 5
	// DefaultInfraRatio is the share of failed tests above which a run is
	// an infrastructure failure, when the config does not say.
	DefaultInfraRatio = 0.5
)

// Classify sets each case's level and marks the run as an infrastructure
// failure when more than ratio of its tests failed (ratio 0 means the
// default).
func (r *Run) Classify(ls Levels, ratio float64) {
	if ratio <= 0 {
		ratio = DefaultInfraRatio
	}
	for i := range r.Cases {
		r.Cases[i].Level = ls.Classify(r.Cases[i])
	}
	c := r.Counts()
	ran := c.Total.Passed + c.Total.Failed
	r.Infra = ran >= infraMinTests && float64(c.Total.Failed) > ratio*float64(ran)
}

// Count is how many tests ended each way.
type Count struct {
	Total   int `json:"total"`
	Passed  int `json:"passed"`
	Failed  int `json:"failed"`
	Skipped int `json:"skipped"`
	// Flaky counts the tests that failed and then passed on a retry.
	Flaky int `json:"flaky"`
}

// Counts are the counts of a run, overall and per level.
type Counts struct {
	Total   Count            `json:"total"`
	ByLevel map[string]Count `json:"by_level"`
}

// Counts counts the run's tests.
func (r Run) Counts() Counts {
	return countCases(r.Cases)
}

func countCases(cases []Case) Counts {
	out := Counts{ByLevel: map[string]Count{}}
	for _, c := range cases {
		lc := out.ByLevel[c.Level]
		for _, cnt := range []*Count{&out.Total, &lc} {
			cnt.Total++
			switch c.Outcome() {
			case Passed:
				cnt.Passed++
			case Failed:
				cnt.Failed++
			default:
				cnt.Skipped++
			}
			if c.Flaky() {
				cnt.Flaky++
			}
		}
		if c.Level != "" {
			out.ByLevel[c.Level] = lc
		}
	}
	return out
}

// sortRuns orders runs by time, then by ID.
func sortRuns(runs []Run) []Run {
	out := append([]Run(nil), runs...)
	sort.SliceStable(out, func(i, j int) bool {
		if !out[i].At.Equal(out[j].At) {
			return out[i].At.Before(out[j].At)
		}
		return out[i].ID < out[j].ID
	})
	return out
}
