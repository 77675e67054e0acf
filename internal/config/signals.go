package config

import (
	"regexp"
	"slices"
	"time"
)

// DoctorGates are the seven gates shipgate doctor looks for, in the order
// it reports them; doctor.required names some of them.
var DoctorGates = []string{"release_day", "iac", "staging", "browser_tests", "canary", "rollback", "monday_report"}

// TestLevels are the test levels known without tests.levels.
var TestLevels = []string{"unit", "integration", "e2e"}

var (
	_ defaulter = (*Retire)(nil)
	_ defaulter = (*FlakyTestsGate)(nil)
	_ defaulter = (*CITimeGate)(nil)
	_ defaulter = (*Tests)(nil)
)

func (g *FlakyTestsGate) setDefaults() { g.MaxAge = Duration(48 * time.Hour) }

func (g *CITimeGate) setDefaults() { g.Max = Duration(15 * time.Minute) }

func (t *Tests) setDefaults() { t.InfraFailureRatio = 0.5 }

func (r *Retire) setDefaults() {
	r.Cycle = Duration(7 * 24 * time.Hour)
	r.Watch = Duration(24 * time.Hour)
}

func (d *decoder) validateRetire(r *Retire) {
	d.positive("retire.cycle", r.Cycle)
	d.positive("retire.watch", r.Watch)
	if r.BackupCommand != nil && (len(r.BackupCommand) == 0 || r.BackupCommand[0] == "") {
		d.problemf("retire.backup_command", "give the program and its arguments, like [sh, -c, \"pg_dump ... > $SHIPGATE_BACKUP_DIR/db.sql\"], or remove it")
	}
}

var levelName = regexp.MustCompile(`^[a-z][a-z0-9_-]{0,31}$`)

// Levels returns the test levels the config knows.
func (c *Config) Levels() []string {
	out := slices.Clone(TestLevels)
	if c.Tests != nil {
		for _, name := range sortedKeys(c.Tests.Levels) {
			if !slices.Contains(out, name) {
				out = append(out, name)
			}
		}
	}
	return out
}

func (d *decoder) validateTests(t *Tests) {
	for _, name := range sortedKeys(t.Levels) {
		p := "tests.levels." + name
		if !levelName.MatchString(name) {
			d.keyProblemf(p, "a level name is lowercase letters, digits, '-' and '_', starting with a letter, like integration; got %q", name)
		}
		if name == "unit" {
			d.keyProblemf(p, "unit is the level of every test no pattern matches; it has no patterns")
		}
		if len(t.Levels[name]) == 0 {
			d.problemf(p, "give at least one pattern, like \"*%s*\"", name)
		}
	}
	if t.InfraFailureRatio <= 0 || t.InfraFailureRatio > 1 {
		d.problemf("tests.infra_failure_ratio", "must be above 0 and at most 1 (0.5: more than half of the tests failed at once), got %g", t.InfraFailureRatio)
	}
}

func (d *decoder) validateTestGates(c *Config, path string, g *Gates) {
	d.emptySection(path + ".flaky_tests")
	if g.FlakyTests != nil {
		d.positive(path+".flaky_tests.max_age", g.FlakyTests.MaxAge)
	}
	d.emptySection(path + ".ci_time")
	if g.CITime != nil {
		d.positive(path+".ci_time.max", g.CITime.Max)
	}
	d.checkList(path+".require_levels", g.RequireLevels, "test level", c.Levels())
}

// hotfixTestGates are the test gates a hotfix may skip.
var hotfixTestGates = []string{"flaky_tests", "ci_time", "require_levels"}
