package testsignal

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 11, 30, 10, 0, 0, 0, time.UTC)

func parseFile(t *testing.T, name string) []Case {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", "junit", name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cases, err := ParseJUnit(f)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return cases
}

func byID(cases []Case) map[string]Case {
	m := map[string]Case{}
	for _, c := range cases {
		m[c.ID] = c
	}
	return m
}

func TestParseJUnit_Attempts(t *testing.T) {
	tests := []struct {
		file string
		id   string
		want []Outcome
		msg  string
	}{
		{"surefire-flaky.xml", "com.shop.CartTest.addItem", []Outcome{Failed, Passed}, "expected:<2> but was:<1>"},
		{"surefire-flaky.xml", "com.shop.PaymentTest.refund", []Outcome{Failed, Failed, Failed}, "refund of 12.00 EUR: got 402"},
		{"surefire-flaky.xml", "com.shop.CartTest.removeItem", []Outcome{Passed}, ""},
		{"retries.xml", "checkout.spec.ts.pays", []Outcome{Failed, Passed}, "checkout.spec.ts:12:5 pays"},
		{"retries.xml", "checkout.spec.ts.cart", []Outcome{Passed}, ""},
		{"clean.xml", "checkout.spec.ts.coupon", []Outcome{Skipped}, ""},
		{"mass-failure.xml", "com.shop.CartTest.addItem", []Outcome{Failed}, "Connection refused: db:5432"},
	}
	for _, tt := range tests {
		t.Run(tt.file+"/"+tt.id, func(t *testing.T) {
			c, ok := byID(parseFile(t, tt.file))[tt.id]
			if !ok {
				t.Fatalf("no test %s", tt.id)
			}
			if !reflect.DeepEqual(c.Attempts, tt.want) {
				t.Errorf("attempts = %v, want %v", c.Attempts, tt.want)
			}
			if c.Message != tt.msg {
				t.Errorf("message = %q, want %q", c.Message, tt.msg)
			}
		})
	}
	if got := byID(parseFile(t, "retries.xml"))["checkout.spec.ts.pays"].Duration; got != 20900*time.Millisecond {
		t.Errorf("a retried test's duration = %s, want both attempts, 20.9s", got)
	}
	if got := byID(parseFile(t, "clean.xml"))["checkout.spec.ts.pays"].File; got != "e2e/checkout.spec.ts" {
		t.Errorf("file = %q, want the suite's file", got)
	}
}

func TestParseJUnit_Invalid(t *testing.T) {
	for _, doc := range []string{"", "<html></html>", "<testsuite><testcase name='x'>", "not xml"} {
		if _, err := ParseJUnit(strings.NewReader(doc)); err == nil {
			t.Errorf("%q parsed", doc)
		}
	}
}

func TestLevels_Classify(t *testing.T) {
	cases := map[string]Case{
		"unit":        {ID: "com.shop.CartTest.addItem"},
		"integration": {ID: "com.shop.CheckoutIT.payByCard"},
		"e2e":         {ID: "checkout.spec.ts.pays", File: "e2e/checkout.spec.ts"},
	}
	for want, c := range cases {
		if got := DefaultLevels.Classify(c); got != want {
			t.Errorf("%s: level %s, want %s", c.ID, got, want)
		}
	}
	custom := Levels{{Level: "integration", Patterns: []string{"*repository*"}}}
	if got := custom.Classify(Case{ID: "shop.OrderRepositoryTest.save"}); got != "integration" {
		t.Errorf("custom pattern: %s", got)
	}
	if got := DefaultLevels.Classify(Case{ID: "com.shop.UnitPriceTest.round"}); got != LevelUnit {
		t.Errorf("a unit test whose name holds 'it.': %s", got)
	}
}

// history is the fixture history: runs of four commits, one of them an
// infrastructure failure.
func history(t *testing.T) []Run {
	t.Helper()
	runs := []Run{
		{ID: 1, Version: "1.0.0", Commit: "aaaa", At: t0, Cases: parseFile(t, "clean.xml")},
		{ID: 2, Version: "1.1.0", Commit: "bbbb", At: t0.Add(time.Hour), Cases: parseFile(t, "surefire-flaky.xml")},
		{ID: 3, Version: "1.2.0", Commit: "cccc", At: t0.Add(2 * time.Hour), Cases: parseFile(t, "retries.xml")},
		{ID: 4, Version: "1.2.0", Commit: "cccc", At: t0.Add(3 * time.Hour), Cases: parseFile(t, "mass-failure.xml")},
		{ID: 5, Version: "1.3.0", Commit: "dddd", At: t0.Add(4 * time.Hour), Cases: parseFile(t, "search-fails.xml")},
		{ID: 6, Version: "1.3.0", Commit: "dddd", At: t0.Add(5 * time.Hour), Cases: parseFile(t, "clean.xml")},
	}
	for i := range runs {
		runs[i].Classify(DefaultLevels, 0)
	}
	return runs
}

func TestRun_InfraFailure(t *testing.T) {
	runs := history(t)
	for _, r := range runs {
		if got, want := r.Infra, r.ID == 4; got != want {
			t.Errorf("run %d: infra = %v, want %v (counts %+v)", r.ID, got, want, r.Counts().Total)
		}
	}
	c := runs[0].Counts()
	if got, want := c.ByLevel, map[string]Count{
		LevelUnit:        {Total: 4, Passed: 4},
		LevelIntegration: {Total: 1, Passed: 1},
		LevelE2E:         {Total: 3, Passed: 2, Skipped: 1},
	}; !reflect.DeepEqual(got, want) {
		t.Errorf("counts by level = %+v, want %+v", got, want)
	}
}

func TestDetectFlaky_History(t *testing.T) {
	got := DetectFlaky(history(t))
	want := []struct {
		id     string
		first  time.Time
		reason string
	}{
		{"com.shop.CartTest.addItem", t0.Add(time.Hour), "failed, then passed on a retry, in the CI run of 1.1.0"},
		{"checkout.spec.ts.pays", t0.Add(2 * time.Hour), "failed, then passed on a retry, in the CI run of 1.2.0"},
		{"com.shop.SearchTest.query", t0.Add(5 * time.Hour), "failed and passed on the same commit dddd"},
	}
	if len(got) != len(want) {
		t.Fatalf("flaky = %+v, want %d tests", got, len(want))
	}
	for i, w := range want {
		if got[i].ID != w.id || !got[i].FirstSeen.Equal(w.first) || got[i].Reason != w.reason {
			t.Errorf("flaky[%d] = %s since %s (%s), want %s since %s (%s)", i, got[i].ID, got[i].FirstSeen, got[i].Reason, w.id, w.first, w.reason)
		}
	}
	// Without the infrastructure rule, the mass failure would make every
	// test that passed on commit cccc flaky.
	runs := history(t)
	runs[3].Infra = false
	if n := len(DetectFlaky(runs)); n <= len(want) {
		t.Errorf("the mass failure counted as flakiness gives %d flaky tests; the test does not test the rule", n)
	}
}

func TestDetectFlaky_FlipsAndClearing(t *testing.T) {
	outcomes := []Outcome{Passed, Failed, Passed, Failed}
	var runs []Run
	for i, o := range outcomes {
		runs = append(runs, Run{ID: int64(i + 1), Commit: string(rune('a' + i)), At: t0.Add(time.Duration(i) * time.Hour),
			Cases: []Case{{ID: "t", Attempts: []Outcome{o}}}})
	}
	got := DetectFlaky(runs)
	if len(got) != 1 || !got[0].FirstSeen.Equal(t0.Add(3*time.Hour)) || got[0].Reason != "changed outcome 3 times in its last 4 runs" {
		t.Fatalf("flips: %+v", got)
	}
	// A bug brought and fixed (passed, failed, passed) is not flaky.
	if got := DetectFlaky(runs[:3]); len(got) != 0 {
		t.Fatalf("two changes: %+v", got)
	}
	// Ten clean passes clear it.
	for i := range cleanToClear {
		runs = append(runs, Run{ID: int64(10 + i), Commit: "z", At: t0.Add(time.Duration(10+i) * time.Hour),
			Cases: []Case{{ID: "t", Attempts: []Outcome{Passed}}}})
	}
	if got := DetectFlaky(runs); len(got) != 0 {
		t.Fatalf("after %d clean runs: %+v", cleanToClear, got)
	}
}

func TestGates_Judge(t *testing.T) {
	runs := history(t)
	flaky := DetectFlaky(runs)
	release := []Run{runs[5]}
	release[0].CIDuration = 12 * time.Minute
	g := Gates{FlakyMaxAge: 48 * time.Hour, CITimeMax: 15 * time.Minute, RequireLevels: []string{LevelUnit, LevelIntegration}}

	// Two days and an hour after addItem turned flaky: it is too old.
	v := g.Judge(release, flaky, t0.Add(49*time.Hour+time.Minute), "shipgate release create --junit")
	if v[0].Gate != GateFlakyTests || v[0].OK || !strings.Contains(v[0].Detail, "com.shop.CartTest.addItem (flaky since 2026-11-30T11:00:00Z, 48h ago") {
		t.Errorf("flaky gate: %+v", v[0])
	}
	if strings.Contains(v[0].Detail, "SearchTest") {
		t.Errorf("flaky gate names a test flaky for less than 48h: %s", v[0].Detail)
	}
	if !v[1].OK || v[1].Detail != "CI took 12m, at most 15m" {
		t.Errorf("ci_time gate: %+v", v[1])
	}
	if !v[2].OK || v[2].Detail != "tests passed: 4 unit, 1 integration" {
		t.Errorf("require_levels gate: %+v", v[2])
	}
	// A day later than the first flaky run, nothing is old enough.
	if v := g.Judge(release, flaky, t0.Add(24*time.Hour), "x"); !v[0].OK {
		t.Errorf("flaky gate a day in: %+v", v[0])
	}
	release[0].CIDuration = 20 * time.Minute
	if v := g.Judge(release, flaky, t0, "x"); v[1].OK || v[1].Detail != "CI took 20m, more than 15m: make it faster (split or parallelise the slowest jobs)" {
		t.Errorf("slow CI: %+v", v[1])
	}
	// search-fails.xml has no integration test.
	if v := g.Judge([]Run{runs[4]}, flaky, t0, "x"); v[2].OK || !strings.HasPrefix(v[2].Detail, "1 of 2 unit tests failed; no integration test ran") {
		t.Errorf("levels: %+v", v[2])
	}
}

func TestCodeOwners_Owner(t *testing.T) {
	co := ParseCodeOwners(`# owners
*                 @shop/everyone
/e2e/             @shop/qa
com/shop/Payment* @shop/payments # money
**/search/**      @shop/search
`)
	tests := map[string]string{
		"e2e/checkout.spec.ts":       "@shop/qa",
		"com/shop/PaymentTest":       "@shop/payments",
		"src/test/java/com/shop/Foo": "@shop/everyone",
		"app/search/query_test.go":   "@shop/search",
	}
	for p, want := range tests {
		if got := co.Owner(p); got != want {
			t.Errorf("Owner(%q) = %q, want %q", p, got, want)
		}
	}
	if got := TestPath(Flaky{ID: "com.shop.PaymentTest.refund"}); got != "com/shop/PaymentTest" {
		t.Errorf("TestPath = %q", got)
	}
}
