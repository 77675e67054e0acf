package server_test

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestE2E_BlueGreenDeployWaitExitsRolledBack is defect 1 of issue 10 end
// to end: a blue-green deploy whose green fails its observe step after the
// switch. `deploy --wait` printed "promoted ... draining" and exited 0,
// and the release was rolled back two seconds later; it must wait for the
// observe step and exit 3.
func TestE2E_BlueGreenDeployWaitExitsRolledBack(t *testing.T) {
	p := startYAML(t, fmt.Sprintf(`app: shop
`+baseVars+baseRun+`environments:
  production:
    listen: 127.0.0.1:%d
    sticky: {header: X-User-ID}
strategy:
  blue_green: {keep_blue: 60s, analysis: 10s}
`+baseAnalysis, shopBin, freePort(t)))
	if code, _, stderr := runCLI(t, p, "deploy", "shop", "v1", "--wait"); code != 0 {
		t.Fatalf("deploy v1 --wait exited %d: %s", code, stderr)
	}
	load := p.load(t, 40)
	defer load.Stop()
	time.Sleep(2 * time.Second) // a baseline of stable traffic
	code, stdout, stderr := runCLI(t, p, "deploy", "shop", "v2", "--var", "PAY_FAIL_RATE=0.15", "--wait")
	if code != 3 {
		t.Fatalf("deploy of a green that fails after the switch exited %d, want 3\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
	if strings.Contains(stdout, "promoted") || !strings.Contains(stdout, "rolled back") {
		t.Fatalf("stdout does not report the rollback:\n%s", stdout)
	}
	p.onlyVersion(t, "v1", 10)
}
