package demo_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/shipgate/shipgate/internal/demo"
)

// TestRun runs the whole demo story, as `shipgate demo` does, and checks
// its summary: the demo is the project's front door and must keep working.
func TestRun(t *testing.T) {
	if testing.Short() {
		t.Skip("the demo takes about 40s")
	}
	shop := filepath.Join(t.TempDir(), "shop")
	if out, err := exec.Command("go", "build", "-o", shop, "../../examples/shop").CombinedOutput(); err != nil {
		t.Fatalf("build shop: %v\n%s", err, out)
	}
	// About 40s alone; the bound is for a hang, not a speed test.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var out bytes.Buffer
	if err := demo.Run(ctx, &out, demo.Options{JSON: true, ShopCommand: []string{shop}}); err != nil {
		t.Fatalf("demo: %v\n%s", err, out.String())
	}
	var sum demo.Summary
	if err := json.Unmarshal(out.Bytes(), &sum); err != nil {
		t.Fatalf("summary is not JSON: %v\n%s", err, out.String())
	}
	if !sum.OK || sum.FailedDuringHealthy != 0 || sum.HealthyRollout.Phase != "succeeded" || sum.BadRollout.Phase != "rolled_back" {
		t.Fatalf("summary = ok %v, healthy %s with %d failures, bad %s", sum.OK, sum.HealthyRollout.Phase, sum.FailedDuringHealthy, sum.BadRollout.Phase)
	}
	if sum.SecondsToStable <= 0 || sum.SecondsToStable > 10 {
		t.Fatalf("v3 was on users for %.1fs, want under 10s", sum.SecondsToStable)
	}
	if sum.BadFailedRequests == 0 || sum.Versions["v2"].Served == 0 {
		t.Fatalf("versions = %+v: the bad canary must have met users and v2 served them", sum.Versions)
	}
	if len(sum.Audit) < 10 {
		t.Fatalf("only %d audit events", len(sum.Audit))
	}
}
