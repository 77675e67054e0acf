package config

import (
	"cmp"
	"slices"
	"strconv"
	"strings"
)

// Error is returned by Load and Parse when a config has problems. It holds
// every problem found, not just the first, so that one run of
// "shipgate validate" is enough to fix a file.
type Error struct {
	// Problems are sorted by position in the file.
	Problems []Problem
}

// Error returns the problems, one per line.
func (e *Error) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

// Problem is one thing wrong with a config, at one place in the file.
type Problem struct {
	// File is the path of the file as it was given to Load or Parse.
	File string
	// Line and Column are 1-based. Column is 0 when only the line is known
	// (YAML syntax errors); Line is 0 when the problem is the whole file.
	Line, Column int
	// Field is the path of the field in YAML keys, for example
	// "analysis.gates[0].max"; empty for YAML syntax errors.
	Field string
	// Message says what is wrong and what to do about it.
	Message string
}

// String formats p the way compilers do, so that editors and terminals can
// jump to the place: "shipgate.yaml:12:5: strategy.canary.steps[1].weight:
// must be between 1 and 100, got 120". Parts that are unknown are left out.
func (p Problem) String() string {
	var b strings.Builder
	b.WriteString(p.File)
	if p.Line > 0 {
		b.WriteString(":" + strconv.Itoa(p.Line))
		if p.Column > 0 {
			b.WriteString(":" + strconv.Itoa(p.Column))
		}
	}
	b.WriteString(": ")
	if p.Field != "" {
		b.WriteString(p.Field + ": ")
	}
	b.WriteString(p.Message)
	return b.String()
}

// maxProblems bounds the report: past it, more lines help nobody, and a
// hostile file full of aliases could otherwise produce millions.
const maxProblems = 100

// newError sorts problems by position, drops repeats (an anchor used twice
// can be wrong twice in the same way) and caps their number.
func newError(problems []Problem) *Error {
	seen := map[Problem]bool{}
	problems = slices.DeleteFunc(problems, func(p Problem) bool {
		repeat := seen[p]
		seen[p] = true
		return repeat
	})
	slices.SortStableFunc(problems, func(a, b Problem) int {
		return cmp.Or(cmp.Compare(a.Line, b.Line), cmp.Compare(a.Column, b.Column))
	})
	if len(problems) > maxProblems {
		next := problems[maxProblems]
		problems = append(problems[:maxProblems], Problem{
			File:    next.File,
			Line:    next.Line,
			Column:  next.Column,
			Message: "too many problems (more than " + strconv.Itoa(maxProblems) + "); fix the ones above and run again",
		})
	}
	return &Error{Problems: problems}
}
