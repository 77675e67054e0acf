package sqlite

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/shipgate/shipgate/internal/audit"
	"github.com/shipgate/shipgate/internal/testsignal"
)

func junit(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "testsignal", "testdata", "junit", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestStore_TestRuns records the fixture history through the service on
// a real store and reads back the runs, the flaky tests with their
// first-seen times, and the audit events.
func TestStore_TestRuns(t *testing.T) {
	s, _ := openStore(t)
	ctx := t.Context()
	t0 := time.Date(2026, 11, 30, 10, 0, 0, 0, time.UTC)
	now := t0
	svc := &testsignal.Service{Store: s, Now: func() time.Time { return now }}
	uploads := []struct {
		version, commit string
		files           []string
	}{
		{"1.0.0", "aaaa", []string{"clean.xml"}},
		{"1.1.0", "bbbb", []string{"surefire-flaky.xml"}},
		{"1.2.0", "cccc", []string{"retries.xml"}},
		{"1.2.0", "cccc", []string{"mass-failure.xml"}},
		{"1.3.0", "dddd", []string{"search-fails.xml"}},
		{"1.3.0", "dddd", []string{"clean.xml"}},
	}
	var sums []testsignal.RunSummary
	for i, u := range uploads {
		now = t0.Add(time.Duration(i) * time.Hour)
		var reports [][]byte
		for _, f := range u.files {
			reports = append(reports, junit(t, f))
		}
		sum, err := svc.Record(ctx, testsignal.Upload{App: "shop", Version: u.version, Commit: u.commit, CIDuration: 9 * time.Minute, Reports: reports, Actor: "user:ci"})
		if err != nil {
			t.Fatalf("upload %d: %v", i, err)
		}
		sums = append(sums, sum)
	}
	if !sums[3].Run.Infra || sums[2].Run.Infra {
		t.Errorf("infra: run 3 %v, run 4 %v; want only the mass failure", sums[2].Run.Infra, sums[3].Run.Infra)
	}
	if got, want := sums[1].Counts.Total, (testsignal.Count{Total: 5, Passed: 4, Failed: 1, Flaky: 1}); got != want {
		t.Errorf("counts of the Surefire run = %+v, want %+v", got, want)
	}
	flaky, err := svc.Flaky(ctx, "shop")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, f := range flaky {
		got = append(got, f.ID+"@"+f.FirstSeen.Format("15:04"))
	}
	want := []string{"com.shop.CartTest.addItem@11:00", "checkout.spec.ts.pays@12:00", "com.shop.SearchTest.query@15:00"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("flaky = %v, want %v", got, want)
	}
	runs, err := s.TestRuns(ctx, "shop", "1.3.0", 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(runs) != 2 || runs[0].Commit != "dddd" || !runs[0].At.Before(runs[1].At) || len(runs[1].Cases) != 8 {
		t.Fatalf("runs of 1.3.0 = %+v", runs)
	}
	if c := runs[0].Cases[0]; c.ID != "com.shop.SearchTest.query" || !reflect.DeepEqual(c.Attempts, []testsignal.Outcome{testsignal.Failed}) || c.Message != "expected 3 results, got 2" {
		t.Errorf("first case read back = %+v", c)
	}
	events, err := s.ListAudit(ctx, audit.Filter{Action: testsignal.ActionTestRun})
	if err != nil {
		t.Fatal(err)
	}
	if len(events) != 6 || events[2].Data["infra"] == "" || events[0].Actor != "user:ci" {
		t.Errorf("audit events = %+v", events)
	}
}
