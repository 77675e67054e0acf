package flags

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestParseFile_Invalid checks each fixture in testdata/invalid against
// its exact expected problems in the .err file beside it (-update
// rewrites them).
func TestParseFile_Invalid(t *testing.T) {
	files, err := filepath.Glob("testdata/invalid/*.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("no fixtures: %v", err)
	}
	for _, path := range files {
		t.Run(filepath.Base(path), func(t *testing.T) {
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			_, err = ParseFile(data)
			if err == nil {
				t.Fatal("ParseFile accepted it")
			}
			got := err.Error() + "\n"
			errPath := strings.TrimSuffix(path, ".json") + ".err"
			if *update {
				if err := os.WriteFile(errPath, []byte(got), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(errPath)
			if err != nil {
				t.Fatal(err)
			}
			if got != string(want) {
				t.Errorf("got:\n%s\nwant:\n%s", got, want)
			}
		})
	}
}

// TestParseFile_Warnings checks each fixture in testdata/warnings, which
// flagd loads and so Shipgate loads too, against its exact expected
// warnings in the .warn file beside it (-update rewrites them).
func TestParseFile_Warnings(t *testing.T) {
	files, err := filepath.Glob("testdata/warnings/*.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("no fixtures: %v", err)
	}
	for _, path := range files {
		t.Run(filepath.Base(path), func(t *testing.T) {
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			f, err := ParseFile(data)
			if err != nil {
				t.Fatalf("ParseFile refused what flagd loads: %v", err)
			}
			if len(f.Warnings) == 0 {
				t.Fatal("no warning")
			}
			var b strings.Builder
			for _, w := range f.Warnings {
				b.WriteString(w.String() + "\n")
			}
			got := b.String()
			warnPath := strings.TrimSuffix(path, ".json") + ".warn"
			if *update {
				if err := os.WriteFile(warnPath, []byte(got), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(warnPath)
			if err != nil {
				t.Fatal(err)
			}
			if got != string(want) {
				t.Errorf("got:\n%s\nwant:\n%s", got, want)
			}
		})
	}
}

func TestParseFile_FlagdFixtureRoundTrips(t *testing.T) {
	data, err := os.ReadFile("testdata/flagd/flags.json")
	if err != nil {
		t.Fatal(err)
	}
	f, err := ParseFile(data)
	if err != nil {
		t.Fatal(err)
	}
	out, err := Marshal(f.Flags, f.Segments)
	if err != nil {
		t.Fatal(err)
	}
	g, err := ParseFile(out)
	if err != nil {
		t.Fatalf("Marshal wrote a file ParseFile rejects: %v\n%s", err, out)
	}
	a, _ := Compile(f.Flags, f.Segments)
	b, _ := Compile(g.Flags, g.Segments)
	if a.ETag() != b.ETag() {
		t.Error("the definitions changed through Marshal and ParseFile")
	}
}

func TestPlan_RoundTrip(t *testing.T) {
	plans := []Plan{
		{},
		{Percent: 5},
		{Percent: 100},
		{Users: []string{"u1", "u2"}},
		{Segments: []string{"internal"}, Percent: 25},
		{Users: []string{"u1"}, Segments: []string{"internal", "beta"}, Rules: []Rule{
			{Attribute: "email", Op: "ends_with", Values: []string{"@acme.com"}},
			{Attribute: "country", Op: "not_in", Values: []string{"FR", "DE"}},
			{Attribute: "appVersion", Op: ">=", Values: []string{"2.1.0"}},
			{Attribute: "age", Op: "<", Values: []string{"18"}},
			{Attribute: "plan", Op: "=", Values: []string{"pro"}},
		}, Percent: 50},
	}
	for _, p := range plans {
		f := NewBooleanFlag("x", "", "", time.Time{}, time.Now())
		if err := ApplyPlan(f, p, time.Now()); err != nil {
			t.Fatal(err)
		}
		got, ok := PlanOf(f)
		if !ok {
			t.Fatalf("PlanOf does not read back %+v: %s", p, f.Targeting)
		}
		a, _ := json.Marshal(p)
		b, _ := json.Marshal(got)
		if string(a) != string(b) {
			t.Errorf("round trip: %s became %s", a, b)
		}
		segs := []Segment{{Name: "internal", Rule: json.RawMessage(`{"==":[1,1]}`)}, {Name: "beta", Rule: json.RawMessage(`{"==":[1,2]}`)}}
		if _, err := Compile([]*Flag{f}, segs); err != nil {
			t.Errorf("plan %s does not compile: %v", a, err)
		}
	}
	hand := NewBooleanFlag("x", "", "", time.Time{}, time.Now())
	hand.Targeting = json.RawMessage(`{"if":[{"==":[{"var":"plan"},"pro"]},"on","off",{"x":1}]}`)
	if _, ok := PlanOf(hand); ok {
		t.Error("PlanOf read hand-written targeting as a plan")
	}
}

func TestStaleFlags(t *testing.T) {
	now := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	day := 24 * time.Hour
	mk := func(key string, created time.Time, meta map[string]any) *Flag {
		f := NewBooleanFlag(key, "team-"+key, "", time.Time{}, created)
		for k, v := range meta {
			f.SetMeta(k, v)
		}
		return f
	}
	list := []*Flag{
		mk("fresh", now.Add(-2*day), nil),
		mk("expired", now.Add(-2*day), map[string]any{MetaExpires: "2026-05-01"}),
		mk("unused", now.Add(-90*day), nil),
		mk("idle", now.Add(-90*day), nil),
		mk("full", now.Add(-90*day), map[string]any{MetaFullSince: now.Add(-20 * day).Format(time.RFC3339)}),
		mk("archived", now.Add(-90*day), map[string]any{MetaStage: string(StageArchived)}),
	}
	usage := map[string]Usage{
		"idle":  {Variants: map[string]uint64{"on": 3}, Last: now.Add(-40 * day)},
		"full":  {Variants: map[string]uint64{"on": 3}, Last: now.Add(-time.Hour)},
		"fresh": {Variants: map[string]uint64{"on": 3}, Last: now},
	}
	got := map[string]string{}
	for _, d := range StaleFlags(list, usage, StalePolicy{}, now) {
		got[d.Key] = d.Owner + ": " + strings.Join(d.Reasons, "; ")
	}
	want := map[string]string{
		"expired": "team-expired: expired on 2026-05-01",
		"unused":  "team-unused: never evaluated in the 90 days since it was created",
		"idle":    "team-idle: not evaluated for 40 days",
		"full":    "team-full: at 100% for 20 days: remove the flag and keep the code path",
	}
	if len(got) != len(want) {
		t.Errorf("stale = %v, want %v", got, want)
	}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("%s: %q, want %q", k, got[k], w)
		}
	}
}
