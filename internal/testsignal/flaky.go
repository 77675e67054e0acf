package testsignal

import (
	"fmt"
	"sort"
	"time"
)

// Flakiness rules.
const (
	// flipWindow is how many of a test's latest runs are looked at for
	// flips, and flipLimit how many changes of outcome in them make it
	// flaky: passed, failed, passed, failed is three changes, where a
	// bug brought and fixed is two.
	flipWindow = 10
	flipLimit  = 3
	// cleanToClear is how many runs in a row a flaky test must pass at
	// the first attempt to count as fixed.
	cleanToClear = 10
)

// Flaky is a test that is flaky now.
type Flaky struct {
	ID    string `json:"id"`
	File  string `json:"file,omitempty"`
	Level string `json:"level,omitempty"`
	// FirstSeen is when the test was first seen flaky (the run that
	// showed it); LastSeen when it last was.
	FirstSeen time.Time `json:"first_seen"`
	LastSeen  time.Time `json:"last_seen"`
	// Reason says what showed it, the first time.
	Reason string `json:"reason"`
	// Owner is the test's owner from CODEOWNERS, when known.
	Owner string `json:"owner,omitempty"`
}

// Age is how long the test has been flaky at now.
func (f Flaky) Age(now time.Time) time.Duration { return now.Sub(f.FirstSeen) }

// testState is what DetectFlaky knows of one test while it reads runs.
type testState struct {
	flaky    *Flaky
	outcomes map[string]map[Outcome]bool // commit → outcomes seen
	recent   []Outcome                   // final outcomes, oldest first
	clean    int
	last     Case
}

// DetectFlaky reads runs in time order and returns the tests that are
// flaky after the last one, oldest first. A test is flaky from the first
// run in which it failed and passed on the same commit (in one run, with
// retries, or in two runs of the commit), or changed outcome flipLimit
// times in its last flipWindow runs. It stays flaky until it passes
// cleanToClear runs in a row at the first attempt. Runs that were
// infrastructure failures are left out.
func DetectFlaky(runs []Run) []Flaky {
	states := map[string]*testState{}
	for _, r := range sortRuns(runs) {
		if r.Infra {
			continue
		}
		for _, c := range r.Cases {
			if c.Outcome() == Skipped {
				continue
			}
			s := states[c.ID]
			if s == nil {
				s = &testState{outcomes: map[string]map[Outcome]bool{}}
				states[c.ID] = s
			}
			s.last = c
			reason := s.observe(r, c)
			switch {
			case reason != "":
				s.clean = 0
				if s.flaky == nil {
					s.flaky = &Flaky{ID: c.ID, FirstSeen: r.At, Reason: reason}
				}
				s.flaky.LastSeen = r.At
			case s.flaky != nil && len(c.Attempts) == 1 && c.Outcome() == Passed:
				if s.clean++; s.clean >= cleanToClear {
					s.flaky, s.recent, s.clean = nil, nil, 0
				}
			case s.flaky != nil:
				s.clean = 0
			}
		}
	}
	var out []Flaky
	for _, s := range states {
		if s.flaky != nil {
			f := *s.flaky
			f.File, f.Level = s.last.File, s.last.Level
			out = append(out, f)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].FirstSeen.Equal(out[j].FirstSeen) {
			return out[i].FirstSeen.Before(out[j].FirstSeen)
		}
		return out[i].ID < out[j].ID
	})
	return out
}

// observe records a test's result in a run and returns why it shows the
// test flaky, or "".
func (s *testState) observe(r Run, c Case) string {
	var reason string
	if c.Flaky() {
		reason = fmt.Sprintf("failed, then passed on a retry, in the CI run of %s", r.Version)
	}
	if r.Commit != "" {
		seen := s.outcomes[r.Commit]
		if seen == nil {
			seen = map[Outcome]bool{}
			s.outcomes[r.Commit] = seen
		}
		for _, a := range c.Attempts {
			seen[a] = true
		}
		if reason == "" && seen[Passed] && seen[Failed] {
			reason = fmt.Sprintf("failed and passed on the same commit %s", short(r.Commit))
		}
	}
	s.recent = append(s.recent, c.Outcome())
	if len(s.recent) > flipWindow {
		s.recent = s.recent[len(s.recent)-flipWindow:]
	}
	flips := 0
	for i := 1; i < len(s.recent); i++ {
		if s.recent[i] != s.recent[i-1] {
			flips++
		}
	}
	// A flip counts when the test turns to failing: the passes after it
	// are how it gets clean again.
	n := len(s.recent)
	if reason == "" && flips >= flipLimit && s.recent[n-1] == Failed && s.recent[n-2] != Failed {
		reason = fmt.Sprintf("changed outcome %d times in its last %d runs", flips, len(s.recent))
	}
	return reason
}

func short(commit string) string {
	if len(commit) > 12 {
		return commit[:12]
	}
	return commit
}
