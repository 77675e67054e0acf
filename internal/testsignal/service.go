package testsignal

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/shipgate/shipgate/internal/audit"
)

// ActionTestRun is the audit action of a recorded test run.
const ActionTestRun = "tests.record"

// historyRuns bounds how many of an app's latest runs flakiness is
// judged on.
const historyRuns = 500

// Store keeps test runs.
type Store interface {
	// AddTestRun records a run with its cases and the audit event that
	// says so, in one transaction, and returns the run with its ID.
	AddTestRun(ctx context.Context, r Run, ev audit.Event) (Run, error)
	// TestRuns returns an app's latest runs with their cases, at most
	// limit, oldest first; version "" means every version.
	TestRuns(ctx context.Context, app, version string, limit int) ([]Run, error)
}

// Service records test runs and judges them.
type Service struct {
	Store Store
	// Levels classify the tests; nil means DefaultLevels.
	Levels Levels
	// InfraRatio is the share of failed tests that makes a run an
	// infrastructure failure; 0 means DefaultInfraRatio.
	InfraRatio float64
	// Now tells the time; nil means time.Now.
	Now func() time.Time
}

// Upload is one CI run's test results for a release.
type Upload struct {
	App, Version, Commit string
	// CIDuration is how long the CI run took.
	CIDuration time.Duration
	// Reports are JUnit XML documents.
	Reports [][]byte
	Actor   string
}

// RunSummary is what Record returns: the run without its cases, its
// counts, and the tests of it that are flaky now.
type RunSummary struct {
	Run    Run     `json:"run"`
	Counts Counts  `json:"counts"`
	Flaky  []Flaky `json:"flaky"`
}

func (s *Service) now() time.Time {
	if s.Now == nil {
		return time.Now().UTC()
	}
	return s.Now().UTC()
}

func (s *Service) levels() Levels {
	if s.Levels == nil {
		return DefaultLevels
	}
	return s.Levels
}

// FieldError is bad input, naming what was wrong.
type FieldError struct {
	Field, Message string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Message }

// Record parses the reports of an upload and records them as one run.
func (s *Service) Record(ctx context.Context, u Upload) (RunSummary, error) {
	if len(u.Reports) == 0 {
		return RunSummary{}, &FieldError{Field: "reports", Message: "no JUnit report: give at least one"}
	}
	if u.CIDuration < 0 {
		return RunSummary{}, &FieldError{Field: "ci_duration", Message: "must not be negative"}
	}
	if u.Actor == "" {
		u.Actor = "shipgate"
	}
	r := Run{App: u.App, Version: u.Version, Commit: u.Commit, At: s.now(), CIDuration: u.CIDuration}
	seen := map[string]int{}
	for i, rep := range u.Reports {
		if len(rep) > MaxReportSize {
			return RunSummary{}, &FieldError{Field: fmt.Sprintf("reports[%d]", i), Message: fmt.Sprintf("larger than %d MiB", MaxReportSize>>20)}
		}
		cases, err := ParseJUnit(bytes.NewReader(rep))
		if err != nil {
			return RunSummary{}, &FieldError{Field: fmt.Sprintf("reports[%d]", i), Message: err.Error()}
		}
		// The same test in two reports of one run is a retry too.
		for _, c := range cases {
			if j, ok := seen[c.ID]; ok {
				r.Cases[j].Attempts = append(r.Cases[j].Attempts, c.Attempts...)
				r.Cases[j].Duration += c.Duration
				continue
			}
			seen[c.ID] = len(r.Cases)
			r.Cases = append(r.Cases, c)
		}
	}
	r.Classify(s.levels(), s.InfraRatio)
	counts := r.Counts()
	ev := audit.Event{Time: r.At, Actor: u.Actor, Action: ActionTestRun, Subject: u.App + "/" + u.Version, Outcome: "ok",
		Data: map[string]string{"commit": u.Commit, "tests": strconv.Itoa(counts.Total.Total), "failed": strconv.Itoa(counts.Total.Failed),
			"flaky": strconv.Itoa(counts.Total.Flaky), "ci_duration": u.CIDuration.String()}}
	if r.Infra {
		ev.Data["infra"] = "most tests failed at once: an infrastructure failure, not counted as flakiness"
	}
	stored, err := s.Store.AddTestRun(ctx, r, ev)
	if err != nil {
		return RunSummary{}, err
	}
	flaky, err := s.Flaky(ctx, u.App)
	if err != nil {
		return RunSummary{}, err
	}
	ran := map[string]bool{}
	for _, c := range r.Cases {
		ran[c.ID] = true
	}
	sum := RunSummary{Run: stored, Counts: counts, Flaky: []Flaky{}}
	sum.Run.Cases = nil
	for _, f := range flaky {
		if ran[f.ID] {
			sum.Flaky = append(sum.Flaky, f)
		}
	}
	return sum, nil
}

// Flaky returns the app's tests that are flaky now, oldest first.
func (s *Service) Flaky(ctx context.Context, app string) ([]Flaky, error) {
	runs, err := s.Store.TestRuns(ctx, app, "", historyRuns)
	if err != nil {
		return nil, err
	}
	return DetectFlaky(runs), nil
}

// Judge evaluates the test gates g for a release.
func (s *Service) Judge(ctx context.Context, app, version string, g Gates) ([]Verdict, error) {
	if g.FlakyMaxAge <= 0 && g.CITimeMax <= 0 && len(g.RequireLevels) == 0 {
		return nil, nil
	}
	release, err := s.Store.TestRuns(ctx, app, version, historyRuns)
	if err != nil {
		return nil, err
	}
	flaky, err := s.Flaky(ctx, app)
	if err != nil {
		return nil, err
	}
	cmd := fmt.Sprintf("shipgate release create %s %s --junit FILE --ci-duration D", app, version)
	return g.Judge(release, flaky, s.now(), cmd), nil
}
