// Package testsignal turns CI test reports into signals a release can be
// gated on: each test's outcome and retries from JUnit XML, the level of
// each test (unit, integration, e2e), the tests that are flaky and since
// when, and the gates on them (flaky tests older than a limit, CI time,
// required levels).
//
// It is pure: it parses bytes and judges records; the store keeps the runs
// and the rollout engine asks it for a verdict.
package testsignal

import (
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// Outcome is the result of one attempt of a test.
type Outcome string

// The outcomes of an attempt.
const (
	Passed  Outcome = "passed"
	Failed  Outcome = "failed"
	Skipped Outcome = "skipped"
)

// Case is one test of a run with every attempt at it: a test retried by
// the runner (Surefire's flakyFailure and rerunFailure, or the same test
// case written again) has several.
type Case struct {
	// ID names the test across runs: its class (or suite) and its name.
	ID string `json:"id"`
	// File is the test's source file when the report says it.
	File string `json:"file,omitempty"`
	// Level is unit, integration or e2e (see Levels).
	Level string `json:"level,omitempty"`
	// Attempts are the outcomes in the order they ran; the last one is the
	// test's outcome.
	Attempts []Outcome `json:"attempts"`
	// Duration is the time of all attempts.
	Duration time.Duration `json:"duration"`
	// Message is the first failure's message, cut to one line.
	Message string `json:"message,omitempty"`
}

// Outcome is the outcome of the last attempt.
func (c Case) Outcome() Outcome {
	if len(c.Attempts) == 0 {
		return Skipped
	}
	return c.Attempts[len(c.Attempts)-1]
}

// Flaky reports whether the test both failed and passed in this run.
func (c Case) Flaky() bool {
	var failed, passed bool
	for _, a := range c.Attempts {
		failed = failed || a == Failed
		passed = passed || a == Passed
	}
	return failed && passed
}

// Limits of a JUnit report.
const (
	// MaxReportSize is the largest report accepted, in bytes.
	MaxReportSize = 32 << 20
	// maxDepth bounds the nesting of testsuites.
	maxDepth = 32
	// maxMessage is the longest failure message kept.
	maxMessage = 200
)

// ErrNotJUnit means the document is not a JUnit XML report.
var ErrNotJUnit = errors.New("not a JUnit XML report: the root element must be <testsuites> or <testsuite>")

type xmlSuite struct {
	Name   string     `xml:"name,attr"`
	File   string     `xml:"file,attr"`
	Suites []xmlSuite `xml:"testsuite"`
	Cases  []xmlCase  `xml:"testcase"`
}

type xmlCase struct {
	Name      string       `xml:"name,attr"`
	Classname string       `xml:"classname,attr"`
	File      string       `xml:"file,attr"`
	Time      string       `xml:"time,attr"`
	Failures  []xmlProblem `xml:"failure"`
	Errors    []xmlProblem `xml:"error"`
	Skipped   *struct{}    `xml:"skipped"`
	// Surefire's reruns: a flaky test failed these times and then passed;
	// a failed test failed again on each rerun.
	FlakyFailures []xmlProblem `xml:"flakyFailure"`
	FlakyErrors   []xmlProblem `xml:"flakyError"`
	RerunFailures []xmlProblem `xml:"rerunFailure"`
	RerunErrors   []xmlProblem `xml:"rerunError"`
}

type xmlProblem struct {
	Message string `xml:"message,attr"`
	Type    string `xml:"type,attr"`
	Text    string `xml:",chardata"`
}

// ParseJUnit reads a JUnit XML report (the format of Surefire, Gradle,
// pytest, Jest, Playwright, go-junit-report...) and returns its tests in
// the order they first appear. A test written more than once (a runner's
// retries) is one Case with the attempts in order.
func ParseJUnit(r io.Reader) ([]Case, error) {
	dec := xml.NewDecoder(io.LimitReader(r, MaxReportSize+1))
	dec.Strict = true
	var root xml.StartElement
	for {
		tok, err := dec.Token()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return nil, ErrNotJUnit
			}
			return nil, fmt.Errorf("read JUnit XML: %w", err)
		}
		if se, ok := tok.(xml.StartElement); ok {
			root = se
			break
		}
	}
	var top xmlSuite
	switch root.Name.Local {
	case "testsuites":
		if err := dec.DecodeElement(&top, &root); err != nil {
			return nil, fmt.Errorf("read JUnit XML: %w", err)
		}
	case "testsuite":
		var s xmlSuite
		if err := dec.DecodeElement(&s, &root); err != nil {
			return nil, fmt.Errorf("read JUnit XML: %w", err)
		}
		top.Suites = []xmlSuite{s}
	default:
		return nil, ErrNotJUnit
	}
	p := parser{index: map[string]int{}}
	if err := p.suites(top.Suites, 0); err != nil {
		return nil, err
	}
	return p.cases, nil
}

type parser struct {
	cases []Case
	index map[string]int
}

func (p *parser) suites(ss []xmlSuite, depth int) error {
	if depth > maxDepth {
		return fmt.Errorf("read JUnit XML: testsuites nested more than %d deep", maxDepth)
	}
	for _, s := range ss {
		for _, c := range s.Cases {
			p.add(s, c)
		}
		if err := p.suites(s.Suites, depth+1); err != nil {
			return err
		}
	}
	return nil
}

func (p *parser) add(s xmlSuite, c xmlCase) {
	class := c.Classname
	if class == "" {
		class = s.Name
	}
	id := strings.TrimSpace(c.Name)
	if class != "" {
		id = strings.TrimSpace(class) + "." + id
	}
	file := c.File
	if file == "" {
		file = s.File
	}
	var attempts []Outcome
	var msg string
	note := func(ps []xmlProblem) {
		for _, pr := range ps {
			if msg == "" {
				msg = firstLine(pr.Message, pr.Text)
			}
		}
	}
	failures := append(append([]xmlProblem(nil), c.Failures...), c.Errors...)
	flaky := append(append([]xmlProblem(nil), c.FlakyFailures...), c.FlakyErrors...)
	reruns := append(append([]xmlProblem(nil), c.RerunFailures...), c.RerunErrors...)
	switch {
	case len(failures) > 0:
		note(failures)
		note(reruns)
		for range 1 + len(reruns) {
			attempts = append(attempts, Failed)
		}
	case c.Skipped != nil:
		attempts = append(attempts, Skipped)
	default:
		note(flaky)
		for range flaky {
			attempts = append(attempts, Failed)
		}
		attempts = append(attempts, Passed)
	}
	d := parseSeconds(c.Time)
	if i, ok := p.index[id]; ok {
		prev := &p.cases[i]
		prev.Attempts = append(prev.Attempts, attempts...)
		prev.Duration += d
		if prev.Message == "" {
			prev.Message = msg
		}
		return
	}
	p.index[id] = len(p.cases)
	p.cases = append(p.cases, Case{ID: id, File: file, Attempts: attempts, Duration: d, Message: msg})
}

// parseSeconds reads a JUnit time attribute ("0.153", "1,234.5"); what is
// not a number is no time.
func parseSeconds(s string) time.Duration {
	f, err := strconv.ParseFloat(strings.ReplaceAll(strings.TrimSpace(s), ",", ""), 64)
	if err != nil || f < 0 || f > 1e7 {
		return 0
	}
	return time.Duration(f * float64(time.Second))
}

func firstLine(parts ...string) string {
	for _, s := range parts {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		if i := strings.IndexByte(s, '\n'); i >= 0 {
			s = strings.TrimSpace(s[:i])
		}
		if len(s) > maxMessage {
			s = s[:maxMessage] + "…"
		}
		return strings.ToValidUTF8(s, "?")
	}
	return ""
}
