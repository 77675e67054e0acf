package migrate

import (
	"cmp"
	"slices"
	"strconv"
	"strings"
)

// Severity says whether a finding blocks a deploy.
type Severity string

const (
	// SeverityError is a finding that makes a migration unsafe to deploy:
	// a missing down, a down that does not restore the schema, data lost.
	SeverityError Severity = "error"
	// SeverityWarning is a finding a person should look at: a destructive
	// statement that may be intended.
	SeverityWarning Severity = "warning"
)

// Finding is one thing wrong, or worth a look, in a migration directory.
type Finding struct {
	Severity Severity
	// File is the path of the file, as the directory was given; Line is
	// 1-based, and 0 when the finding is about the whole file or about a
	// file that does not exist (a missing down).
	File string
	Line int
	// Version and Migration name the migration ("003_add_email"); both are
	// zero for a finding that belongs to no migration (a seed file).
	Version   int64
	Migration string
	// Message says what is wrong and what to do about it.
	Message string
}

// String formats f the way compilers do, so that editors and terminals can
// jump to the place: "db/003_add_email.up.sql:4: warning: 003_add_email:
// drops column users.bio and the data in it".
func (f Finding) String() string {
	var b strings.Builder
	if f.File != "" {
		b.WriteString(f.File)
		if f.Line > 0 {
			b.WriteString(":" + strconv.Itoa(f.Line))
		}
		b.WriteString(": ")
	}
	b.WriteString(string(f.Severity) + ": ")
	if f.Migration != "" {
		b.WriteString(f.Migration + ": ")
	}
	b.WriteString(f.Message)
	return b.String()
}

// HasErrors reports whether any finding is an error.
func HasErrors(findings []Finding) bool {
	return slices.ContainsFunc(findings, func(f Finding) bool { return f.Severity == SeverityError })
}

// SortFindings orders findings by version, then file and line, keeping
// the order of findings at the same place.
func SortFindings(findings []Finding) {
	slices.SortStableFunc(findings, func(a, b Finding) int {
		return cmp.Or(cmp.Compare(a.Version, b.Version), cmp.Compare(a.File, b.File), cmp.Compare(a.Line, b.Line))
	})
}

// Error is returned by LoadDir and ParseFiles when a migration directory
// cannot be read as migrations. It holds every problem found, not just the
// first, each with its file and line.
type Error struct {
	Findings []Finding
}

// Error returns the findings, one per line.
func (e *Error) Error() string {
	lines := make([]string, len(e.Findings))
	for i, f := range e.Findings {
		lines[i] = f.String()
	}
	return strings.Join(lines, "\n")
}
