package testsignal

import (
	"path"
	"slices"
	"strings"
)

// The test levels.
const (
	LevelUnit        = "unit"
	LevelIntegration = "integration"
	LevelE2E         = "e2e"
)

// DefaultLevels are the patterns used when the config sets none: e2e and
// browser tests, then integration tests (Failsafe's *IT classes among
// them); every other test is a unit test.
var DefaultLevels = Levels{
	{Level: LevelE2E, Patterns: []string{"*e2e*", "*browser*", "*playwright*", "*cypress*", "*selenium*"}},
	{Level: LevelIntegration, Patterns: []string{"*integration*", "*IT.*", "*_it.*", "*_it_*"}},
}

// Levels classify tests by glob patterns (path.Match syntax, '*' crossing
// '/') matched against the test's ID and its file: without regard to case,
// unless the pattern has an upper-case letter. The first
// level with a matching pattern wins; a test no pattern matches is a unit
// test.
type Levels []Level

// Level is one level and its patterns.
type Level struct {
	Level    string
	Patterns []string
}

// Classify returns the level of a test.
func (ls Levels) Classify(c Case) string {
	for _, l := range ls {
		for _, p := range l.Patterns {
			id, file := c.ID, c.File
			if p == strings.ToLower(p) {
				id, file = strings.ToLower(id), strings.ToLower(file)
			}
			if match(p, id) || (file != "" && match(p, file)) {
				return l.Level
			}
		}
	}
	return LevelUnit
}

// Names returns the levels a test can have.
func (ls Levels) Names() []string {
	out := []string{LevelUnit}
	for _, l := range ls {
		if !slices.Contains(out, l.Level) {
			out = append(out, l.Level)
		}
	}
	return out
}

// match is path.Match where '*' also crosses '/', since test IDs and files
// are not paths to walk.
func match(pattern, s string) bool {
	ok, err := path.Match(strings.ReplaceAll(pattern, "/", "\x00"), strings.ReplaceAll(s, "/", "\x00"))
	return err == nil && ok
}
