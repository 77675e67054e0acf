package sim

import (
	"flag"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
)

var (
	rollouts = flag.Int("sim.rollouts", 60, "simulated rollouts per scenario (BENCHMARKS.md uses 4000)")
	interval = flag.Duration("sim.interval", 10*time.Second, "analysis interval (looks are every second, or every interval when shorter)")
	workers  = flag.Int("sim.workers", 2, "goroutines simulating rollouts")
	legacy   = flag.Bool("sim.legacy", false, "also simulate the judge before issue 11, to compare with")
	only     = flag.String("sim.only", "", "simulate only the scenarios whose name contains this (or one of several, split by |)")
)

// TestEndToEnd simulates the rollouts of the end-to-end tests and of the
// demo: short bakes, fast looks.
//
//	go test ./internal/analysis/sim -run TestEndToEnd -count=1 -v -sim.rollouts 2000
func TestEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("simulates thousands of looks")
	}
	for _, err := range WriteTable(os.Stdout, EndToEnd(*rollouts), *workers) {
		t.Error(err)
	}
}

// TestMustShow runs issue 11's scenarios through the real judge and fails
// on any figure that does not hold. With the default -sim.rollouts it is a
// quick check; BENCHMARKS.md's table comes from
//
//	go test ./internal/analysis/sim -run TestMustShow -count=1 -v -timeout 2h \
//	    -sim.rollouts 4000 -sim.interval 10s -sim.legacy
func TestMustShow(t *testing.T) {
	cases := MustShow(*interval, *rollouts)
	if testing.Short() {
		cases = cases[3:5]
	}
	if *legacy {
		cases = append(cases, Legacy(*interval, *rollouts)...)
	}
	if *only != "" {
		cases = slices.DeleteFunc(cases, func(c Case) bool {
			return !slices.ContainsFunc(strings.Split(*only, "|"), func(s string) bool { return strings.Contains(c.Name, s) })
		})
	}
	for _, err := range WriteTable(os.Stdout, cases, *workers) {
		t.Error(err)
	}
}
