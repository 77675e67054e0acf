package testsignal

import (
	"testing"
	"time"
)

func TestTrend(t *testing.T) {
	// Tuesday 1 December 2026; its week starts Monday 30 November.
	now := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	runs := []Run{
		{At: time.Date(2026, 11, 16, 10, 0, 0, 0, time.UTC), CIDuration: 9 * time.Minute},  // two weeks back
		{At: time.Date(2026, 11, 22, 23, 0, 0, 0, time.UTC), CIDuration: 13 * time.Minute}, // Sunday, same week
		{At: time.Date(2026, 11, 30, 0, 0, 0, 0, time.UTC), CIDuration: 16 * time.Minute},  // this Monday 00:00
		{At: time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC), CIDuration: 18 * time.Minute},
		{At: time.Date(2026, 12, 1, 8, 30, 0, 0, time.UTC), Infra: true},
		{At: time.Date(2026, 10, 1, 8, 0, 0, 0, time.UTC), CIDuration: time.Hour}, // too old
	}
	got := Trend(runs, now, 3)
	want := []Week{
		{Start: time.Date(2026, 11, 16, 0, 0, 0, 0, time.UTC), Runs: 2, MedianCI: 11 * time.Minute, MaxCI: 13 * time.Minute},
		{Start: time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC)},
		{Start: time.Date(2026, 11, 30, 0, 0, 0, 0, time.UTC), Runs: 2, MedianCI: 17 * time.Minute, MaxCI: 18 * time.Minute, Infra: 1},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d weeks", len(got))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("week %d = %+v, want %+v", i, got[i], want[i])
		}
	}
}
