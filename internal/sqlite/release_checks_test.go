package sqlite

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/shipgate/shipgate/internal/rollout"
)

func TestStore_PutRelease_MergesChecks(t *testing.T) {
	s, _ := openStore(t)
	ctx := context.Background()
	commitTime := time.Date(2026, 11, 20, 9, 30, 0, 0, time.UTC)
	rel := rollout.Release{App: "shop", Version: "v1", Commit: "abc", CommitTime: commitTime,
		Checks: map[string]rollout.CheckState{"unit": rollout.CheckPassed, "e2e": rollout.CheckPending}}
	if err := s.PutRelease(ctx, rel); err != nil {
		t.Fatal(err)
	}
	// CI reports e2e later, and a new check.
	if err := s.PutRelease(ctx, rollout.Release{App: "shop", Version: "v1", Commit: "abc",
		Checks: map[string]rollout.CheckState{"e2e": rollout.CheckFailed, "lint": rollout.CheckPassed}}); err != nil {
		t.Fatal(err)
	}
	got, err := s.GetRelease(ctx, "shop", "v1")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]rollout.CheckState{"unit": "passed", "e2e": "failed", "lint": "passed"}
	if len(got.Checks) != len(want) {
		t.Fatalf("checks = %v, want %v", got.Checks, want)
	}
	for k, v := range want {
		if got.Checks[k] != v {
			t.Fatalf("checks = %v, want %v", got.Checks, want)
		}
	}
	if !got.CommitTime.Equal(commitTime) {
		t.Fatalf("commit time = %s, want %s", got.CommitTime, commitTime)
	}
	// Another commit under the same version is still refused.
	err = s.PutRelease(ctx, rollout.Release{App: "shop", Version: "v1", Commit: "def"})
	if !errors.Is(err, rollout.ErrConflict) {
		t.Fatalf("other commit: %v, want conflict", err)
	}
}
