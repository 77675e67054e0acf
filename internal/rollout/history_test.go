package rollout_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/shipgate/shipgate/internal/rollout"
)

// TestEngine_HistoryShowsFailedStarts: a rollout whose release failed to
// start (its instance exits at once: an invalid SHOP_LATENCY) is a rollout
// the store has, rolled back with why: History lists it, as it lists every
// rollout. A refused deploy (nothing created) is not in it.
func TestEngine_HistoryShowsFailedStarts(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t, canary)
	h.deployV1()
	bad := h.final(h.deploy("v2", map[string]string{"LATENCY": "not-a-duration"}).ID)
	if bad.Phase != rollout.PhaseRolledBack {
		t.Fatalf("v2 that cannot start: %s (%s), want rolled_back", bad.Phase, bad.Reason)
	}
	if !strings.Contains(bad.Reason, "did not start") {
		t.Errorf("v2 reason %q, want it to say v2 did not start", bad.Reason)
	}
	// Refused: v1 is already live; nothing is created.
	if _, err := h.eng.Deploy(ctx, rollout.DeployRequest{App: "shop", Env: "production", Version: "v1", Actor: "alice"}); !errors.Is(err, rollout.ErrConflict) {
		t.Fatalf("deploy of the live v1: %v, want a conflict", err)
	}
	list, err := h.eng.History(ctx, "shop", "", 20)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range list {
		got = append(got, fmt.Sprintf("%d %s %s", r.ID, r.Version, r.Phase))
	}
	want := []string{fmt.Sprintf("%d v2 %s", bad.ID, bad.Phase), fmt.Sprintf("%d v1 succeeded", bad.ID-1)}
	if strings.Join(got, "; ") != strings.Join(want, "; ") {
		t.Fatalf("history: %q, want %q (the failed start listed, the refused deploy not)", got, want)
	}
}
