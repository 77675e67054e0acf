package sim

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/shipgate/shipgate/internal/analysis"
)

// Seed001Plan is the pipeline of seed 001: 5% for 10 minutes, then 25%
// and 50% for 15 minutes each.
var Seed001Plan = []Step{{0.05, 10 * time.Minute}, {0.25, 15 * time.Minute}, {0.50, 15 * time.Minute}}

// Defaults are the judge's options with the config's defaults, the
// settling window being one interval.
func Defaults(interval time.Duration) analysis.Options {
	return analysis.Options{MinRequests: 50, FailConfidence: 0.99, PassConfidence: 0.95, Settle: interval}
}

// Case is one scenario and what it must show.
type Case struct {
	Scenario
	// Show is the figure the scenario stands for, in words.
	Show string
	// Check returns an error when the report does not show it: a
	// *Marginal one when the figure misses but its 95% confidence interval
	// still holds the target (too few rollouts to tell).
	Check func(Report) error
}

// Marginal is a figure that misses its target by less than its own
// uncertainty.
type Marginal struct{ Err error }

func (m *Marginal) Error() string { return m.Err.Error() + " (within the 95% confidence interval)" }

// atMost checks that k of n is at most limit.
func atMost(name, what string, k, n int, limit float64) error {
	if float64(k) <= limit*float64(n) {
		return nil
	}
	err := fmt.Errorf("%s: %d of %d %s (%s), want at most %s", name, k, n, what, pct(float64(k)/float64(n)), pct(limit))
	if lo, _ := Wilson(k, n); lo <= limit {
		return &Marginal{err}
	}
	return err
}

// atLeast checks that k of n is at least limit.
func atLeast(name, what string, k, n int, limit float64) error {
	if float64(k) >= limit*float64(n) {
		return nil
	}
	err := fmt.Errorf("%s: %d of %d %s (%s), want at least %s", name, k, n, what, pct(float64(k)/float64(n)), pct(limit))
	if _, hi := Wilson(k, n); hi >= limit {
		return &Marginal{err}
	}
	return err
}

// MustShow returns the scenarios of issue 11's "must show", with looks
// every interval and rollouts simulated rollouts each.
func MustShow(interval time.Duration, rollouts int) []Case {
	errorGate := []analysis.Gate{{Metric: "error_rate", Max: 0.005, HasMax: true}}
	latencyGate := []analysis.Gate{{Metric: "latency_p99", MaxRatio: 2}}
	fast := Release{Median: 20 * time.Millisecond, Sigma: 0.5}
	base := Scenario{Steps: Seed001Plan, Rate: 100, Interval: interval, Options: Defaults(interval), Rollouts: rollouts, Gates: errorGate}
	with := func(name string, f func(*Scenario)) Scenario {
		s := base
		s.Name = name
		f(&s)
		return s
	}
	falseRollbacks := func(limit float64) func(Report) error {
		return func(r Report) error { return atMost(r.Name, "rolled back", r.RolledBack, r.Rollouts, limit) }
	}
	caught := func(limit float64, firstStep bool) func(Report) error {
		return func(r Report) error {
			n := r.Rollouts - r.Completed
			if firstStep {
				n = r.FirstStep
			}
			return atLeast(r.Name, "caught", n, r.Rollouts, limit)
		}
	}
	return []Case{
		{with("A/A, both fail 0.4% (80% of the limit), error_rate <= 0.5%", func(s *Scenario) {
			s.Canary, s.Stable = Release{ErrorRate: 0.004}, Release{ErrorRate: 0.004}
			s.Seed = 1
		}), "false rollback <= 0.1%", falseRollbacks(0.001)},
		{with("A/A, both fail 0.5% (at the limit), error_rate <= 0.5%", func(s *Scenario) {
			s.Canary, s.Stable = Release{ErrorRate: 0.005}, Release{ErrorRate: 0.005}
			s.Seed = 2
		}), "false rollback <= 1%", falseRollbacks(0.01)},
		{with("A/A relative, both fail 0.6%, error_rate <= stable + 0.5%", func(s *Scenario) {
			s.Gates = []analysis.Gate{{Metric: "error_rate", MaxIncrease: 0.005, HasMaxIncrease: true}}
			s.Canary, s.Stable = Release{ErrorRate: 0.006}, Release{ErrorRate: 0.006}
			s.Seed = 3
		}), "false rollback <= 0.1%", falseRollbacks(0.001)},
		{with("canary fails 40%, error_rate <= 0.5%", func(s *Scenario) {
			s.Canary, s.Stable = Release{ErrorRate: 0.4}, Release{ErrorRate: 0.001}
			s.Seed = 4
		}), "convicted in <= 15 canary requests (median)", func(r Report) error {
			if err := caught(1, true)(r); err != nil {
				return err
			}
			if med, _, _ := Median(r.Requests); med > 15 {
				return fmt.Errorf("%s: median %d canary requests to the rollback, want at most 15", r.Name, med)
			}
			return nil
		}},
		{with("canary fails 1%, error_rate <= 0.5%", func(s *Scenario) {
			s.Canary, s.Stable = Release{ErrorRate: 0.01}, Release{ErrorRate: 0.001}
			s.Seed = 5
		}), "caught within its first step >= 99%", caught(0.99, true)},
		{with("latency A/A, latency_p99 <= 2x stable", func(s *Scenario) {
			s.Gates = latencyGate
			s.Canary, s.Stable = fast, fast
			s.Seed = 6
		}), "false rollback <= 0.1%", falseRollbacks(0.001)},
		{with("latency A/A, both 5x slower for a minute at 5m and at 10m (step 2 begins)", func(s *Scenario) {
			s.Gates = latencyGate
			s.Canary, s.Stable = fast, fast
			s.Busy = []Busy{{From: 5 * time.Minute, For: time.Minute, Factor: 5}, {From: 10 * time.Minute, For: time.Minute, Factor: 5}}
			s.Seed = 7
		}), "false rollback <= 0.1%", falseRollbacks(0.001)},
		{with("canary 3x slower at every quantile, latency_p99 <= 2x stable", func(s *Scenario) {
			s.Gates = latencyGate
			s.Canary, s.Stable = fast, fast
			s.Canary.Slower = 3
			s.Seed = 8
		}), "caught >= 99%", caught(0.99, false)},
	}
}

// Legacy returns the error-rate scenarios of MustShow judged by the judge
// before issue 11, to compare with: they carry no check.
func Legacy(interval time.Duration, rollouts int) []Case {
	var out []Case
	for _, c := range MustShow(interval, rollouts)[:5] {
		if c.Gates[0].HasMaxIncrease {
			continue // the judge before had no relative error-rate gate
		}
		c.Legacy = true
		c.Name = "before issue 11: " + c.Name
		c.Show, c.Check = "(for comparison)", nil
		out = append(out, c)
	}
	return out
}

// EndToEnd returns the scenarios of the end-to-end tests and the demo
// (internal/server, internal/demo), short bakes and fast looks, judged
// by the judge and by the judge before issue 11: the e2e test bounds the
// time from the canary's first request to the rollback by 10 s.
func EndToEnd(rollouts int) []Case {
	gates := []analysis.Gate{{Metric: "error_rate", Max: 0.02, HasMax: true}, {Metric: "latency_p99", MaxRatio: 2}}
	fast := Release{Median: 20 * time.Millisecond, Sigma: 0.3}
	tenPercent := []Step{{0.10, 20 * time.Second}, {0.50, 20 * time.Second}}
	half := 500 * time.Millisecond
	// The e2e test allows 25 failed requests and 10 s; the sequential
	// judge needs more evidence than one test per look did, so the
	// figure checked is the failed requests, and the time is shown.
	within := func(r Report) error {
		late := 0
		for _, f := range r.Failed {
			if f > 25 {
				late++
			}
		}
		if err := atLeast(r.Name, "rolled back", r.RolledBack, r.Rollouts, 1); err != nil {
			return err
		}
		return atMost(r.Name, "rolled back after more than 25 failed requests", late, r.Rollouts, 0.01)
	}
	var out []Case
	for _, legacy := range []bool{false, true} {
		prefix := ""
		if legacy {
			prefix = "before issue 11: "
		}
		out = append(out,
			Case{Scenario{Name: prefix + "e2e: 12% of canary requests fail, 10% of 120 req/s, error_rate <= 2%, looks every 0.5 s", Steps: tenPercent, Rate: 120, Interval: half,
				Gates: gates, Options: Defaults(half), Canary: Release{ErrorRate: 0.12, Median: 20 * time.Millisecond, Sigma: 0.3}, Stable: fast, Rollouts: rollouts, Seed: 11, Legacy: legacy},
				"rolled back within 25 failed requests in >= 99%", within},
			Case{Scenario{Name: prefix + "e2e: canary 6x slower, 10% of 150 req/s, latency_p99 <= 2x stable", Steps: tenPercent, Rate: 150, Interval: half,
				Gates: gates, Options: Defaults(half), Canary: Release{Median: 120 * time.Millisecond, Sigma: 0.3}, Stable: fast, Rollouts: rollouts, Seed: 12, Legacy: legacy},
				"rolled back", func(r Report) error { return atLeast(r.Name, "rolled back", r.RolledBack, r.Rollouts, 1) }},
			Case{Scenario{Name: prefix + "demo: healthy, 10%/25%/50% for 10/5/5 s of 200 req/s, looks every 1 s", Steps: []Step{{0.10, 10 * time.Second}, {0.25, 5 * time.Second}, {0.50, 5 * time.Second}},
				Rate: 200, Interval: time.Second, Gates: gates, Options: Defaults(time.Second), Canary: fast, Stable: fast, Rollouts: rollouts, Seed: 13, Legacy: legacy},
				"completes in >= 99%", func(r Report) error { return atLeast(r.Name, "completed", r.Completed, r.Rollouts, 0.99) }},
		)
	}
	for i := range out {
		if out[i].Legacy {
			out[i].Show, out[i].Check = "(for comparison)", nil
		}
	}
	return out
}

// WriteTable runs the cases and writes a Markdown table of their figures.
// It returns the cases whose figures do not show what they must, leaving
// out those that miss by less than their confidence interval.
func WriteTable(w io.Writer, cases []Case, workers int) []error {
	var problems []error
	fmt.Fprintln(w, "| scenario | rollouts | rolled back (95% CI) | held inconclusive (95% CI) | never left step 1 | canary requests to rollback, median (95% CI) | failed canary requests, median / p99 | seconds to rollback, median / p99 | must show | holds |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|---|")
	for _, c := range cases {
		r := Summarize(c.Name, Run(c.Scenario, workers))
		ok := "–"
		if c.Check != nil {
			ok = "yes"
			var marginal *Marginal
			switch err := c.Check(r); {
			case errors.As(err, &marginal):
				ok = "no, within the CI"
			case err != nil:
				ok = "**no**"
				problems = append(problems, err)
			}
		}
		req, failed, secs := "–", "–", "–"
		if len(r.Requests) > 0 {
			m, lo, hi := Median(r.Requests)
			req = fmt.Sprintf("%d (%d–%d)", m, lo, hi)
			f, _, _ := Median(r.Failed)
			failed = fmt.Sprintf("%d / %d", f, r.Failed[len(r.Failed)*99/100])
			s, _, _ := Median(r.Seconds)
			secs = fmt.Sprintf("%g / %g", s, r.Seconds[len(r.Seconds)*99/100])
		}
		fmt.Fprintf(w, "| %s | %d | %s | %s | %s | %s | %s | %s | %s | %s |\n", strings.ReplaceAll(c.Name, "|", "/"), r.Rollouts,
			Rate(r.RolledBack, r.Rollouts), Rate(r.Held, r.Rollouts), Rate(r.FirstStep, r.Rollouts), req, failed, secs, c.Show, ok)
	}
	return problems
}
