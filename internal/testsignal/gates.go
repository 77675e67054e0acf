package testsignal

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// The gates on test signals, by the names the config and hotfix.skip use.
const (
	GateFlakyTests    = "flaky_tests"
	GateCITime        = "ci_time"
	GateRequireLevels = "require_levels"
)

// Gates are the test gates of an environment; a zero field is no gate.
type Gates struct {
	// FlakyMaxAge refuses a release whose CI ran a test flaky for longer.
	FlakyMaxAge time.Duration
	// CITimeMax refuses a release whose CI took longer.
	CITimeMax time.Duration
	// RequireLevels refuses a release whose CI ran no test, or a failing
	// one, at one of these levels.
	RequireLevels []string
}

// Verdict is the outcome of one gate.
type Verdict struct {
	Gate   string
	OK     bool
	Detail string
}

// Judge evaluates the gates for a release, given the release's own runs
// and the tests flaky now. cmd is how the user records test results, for
// the messages.
func (g Gates) Judge(release []Run, flaky []Flaky, now time.Time, cmd string) []Verdict {
	var out []Verdict
	if g.FlakyMaxAge > 0 {
		out = append(out, g.judgeFlaky(release, flaky, now, cmd))
	}
	if g.CITimeMax > 0 {
		out = append(out, g.judgeCITime(release, cmd))
	}
	if len(g.RequireLevels) > 0 {
		out = append(out, g.judgeLevels(release, cmd))
	}
	return out
}

func (g Gates) judgeFlaky(release []Run, flaky []Flaky, now time.Time, cmd string) Verdict {
	v := Verdict{Gate: GateFlakyTests}
	if len(release) == 0 {
		v.Detail = "no test results recorded for this release: record them with " + cmd
		return v
	}
	ran := map[string]bool{}
	for _, r := range release {
		for _, c := range r.Cases {
			ran[c.ID] = true
		}
	}
	var old []string
	for _, f := range flaky {
		if ran[f.ID] && f.Age(now) > g.FlakyMaxAge {
			old = append(old, fmt.Sprintf("%s (flaky since %s, %s ago: %s)", f.ID, f.FirstSeen.UTC().Format(time.RFC3339), roundAge(f.Age(now)), f.Reason))
		}
	}
	if len(old) == 0 {
		v.OK = true
		v.Detail = fmt.Sprintf("no test this release ran has been flaky for more than %s", roundAge(g.FlakyMaxAge))
		return v
	}
	v.Detail = fmt.Sprintf("%d flaky for more than %s: %s; fix or delete them (shipgate tests flaky lists them)", len(old), roundAge(g.FlakyMaxAge), strings.Join(old, "; "))
	return v
}

func (g Gates) judgeCITime(release []Run, cmd string) Verdict {
	v := Verdict{Gate: GateCITime}
	var longest time.Duration
	for _, r := range release {
		longest = max(longest, r.CIDuration)
	}
	switch {
	case longest == 0:
		v.Detail = "no CI duration recorded for this release: pass --ci-duration to " + cmd
	case longest > g.CITimeMax:
		v.Detail = fmt.Sprintf("CI took %s, more than %s: make it faster (split or parallelise the slowest jobs)", roundAge(longest), roundAge(g.CITimeMax))
	default:
		v.OK = true
		v.Detail = fmt.Sprintf("CI took %s, at most %s", roundAge(longest), roundAge(g.CITimeMax))
	}
	return v
}

func (g Gates) judgeLevels(release []Run, cmd string) Verdict {
	v := Verdict{Gate: GateRequireLevels}
	var cases []Case
	for _, r := range release {
		cases = append(cases, r.Cases...)
	}
	counts := countCases(cases).ByLevel
	var problems, good []string
	for _, level := range g.RequireLevels {
		c := counts[level]
		switch {
		case c.Passed+c.Failed == 0:
			problems = append(problems, "no "+level+" test ran")
		case c.Failed > 0:
			problems = append(problems, fmt.Sprintf("%d of %d %s tests failed", c.Failed, c.Passed+c.Failed, level))
		default:
			good = append(good, fmt.Sprintf("%d %s", c.Passed, level))
		}
	}
	if len(problems) > 0 {
		v.Detail = strings.Join(problems, "; ") + ": record the results of every level with " + cmd
		return v
	}
	v.OK = true
	v.Detail = "tests passed: " + strings.Join(good, ", ")
	return v
}

// IsGate reports whether name is one of the test gates.
func IsGate(name string) bool {
	return slices.Contains([]string{GateFlakyTests, GateCITime, GateRequireLevels}, name)
}

// roundAge writes a duration for people: 15m, 2h, 49h.
func roundAge(d time.Duration) string {
	switch {
	case d >= time.Hour:
		d = d.Round(time.Hour)
	case d >= time.Minute:
		d = d.Round(time.Second)
	}
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}
