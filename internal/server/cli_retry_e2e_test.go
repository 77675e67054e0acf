package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/shipgate/shipgate/internal/api"
	"github.com/shipgate/shipgate/internal/audit"
	"github.com/shipgate/shipgate/internal/cli"
	"github.com/shipgate/shipgate/internal/losingproxy"
	"github.com/shipgate/shipgate/internal/rollout"
)

// TestE2E_CLIRetriesALostAnswerOnce runs `shipgate deploy` and `shipgate
// rollback` through a proxy that loses the server's answer to the first
// attempt, after the server has carried it out. The CLI sends the request
// again with the same Idempotency-Key, says so, gets the first answer and
// prints the result: one rollout of the deploy, one rollback (a second
// one would have gone back one more release, or been refused).
func TestE2E_CLIRetriesALostAnswerOnce(t *testing.T) {
	p := startPlane(t, "[{weight: 50, bake: 2s}]")
	ctx := context.Background()
	proxy := losingproxy.New(t, p.APIURL)
	cliVia := func(args ...string) (int, string, string) {
		t.Helper()
		var out, errOut bytes.Buffer
		full := append([]string{"--server", proxy.URL, "--token", p.AdminToken}, args...)
		code := cli.Main(ctx, full, strings.NewReader(""), &out, &errOut)
		return code, out.String(), errOut.String()
	}
	client := api.NewClient(p.APIURL, p.AdminToken, nil)
	if code, _, stderr := runCLI(t, p, "deploy", "shop", "v1", "--wait"); code != 0 {
		t.Fatalf("deploy v1 exited %d: %s", code, stderr)
	}
	p.load(t, 100)

	// deploy v2, its first answer lost.
	proxy.Lose(nil)
	code, stdout, stderr := cliVia("deploy", "shop", "v2", "--wait", "-o", "json")
	if code != 0 {
		t.Fatalf("deploy v2 through a lost answer exited %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
	if !strings.Contains(stderr, "attempt 1 failed") || !strings.Contains(stderr, "same Idempotency-Key") {
		t.Errorf("the CLI did not say it sent the deploy again:\n%s", stderr)
	}
	var r rollout.Rollout
	if err := json.Unmarshal([]byte(stdout), &r); err != nil || r.Version != "v2" || (r.Phase != rollout.PhaseSucceeded && r.PromotedAt.IsZero()) {
		t.Fatalf("deploy v2 printed %q (%v), want v2 live", stdout, err)
	}
	_ = p.Engine.Wait(ctx, "production")
	var keys []string
	for _, r := range proxy.Keyed() {
		keys = append(keys, r.String())
	}
	if len(keys) != 2 || keys[0] != keys[1] || !strings.HasPrefix(keys[0], "POST /v1/deploys ") {
		t.Errorf("keyed requests %q, want the deploy twice with one key", keys)
	}
	hist, err := client.History(ctx, "shop", "production", 10)
	if err != nil {
		t.Fatal(err)
	}
	if got := versions(hist); got != "v2 v1" {
		t.Fatalf("rollouts after the deploy = %s, want v2 v1: the deploy carried out once", got)
	}

	// rollback, its first answer lost: once, back to v1.
	proxy.Lose(nil)
	code, stdout, stderr = cliVia("rollback", "shop", "--reason", "checkout button missing", "--wait")
	if code != 0 {
		t.Fatalf("rollback through a lost answer exited %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
	if !strings.Contains(stderr, "attempt 1 failed") {
		t.Errorf("the CLI did not say it sent the rollback again:\n%s", stderr)
	}
	if hist, err = client.History(ctx, "shop", "production", 10); err != nil {
		t.Fatal(err)
	}
	if got := versions(hist); got != "v1 v2 v1" {
		t.Fatalf("rollouts after the rollback = %s, want v1 v2 v1: one rollback", got)
	}
	if hist[0].Kind != rollout.KindRollback {
		t.Errorf("the last rollout is a %s, want a rollback", hist[0].Kind)
	}
	events, err := client.Audit(ctx, audit.Filter{Action: audit.ActionRollbackManual})
	if err != nil || len(events) != 1 {
		t.Errorf("rollback.manual events = %d (%v), want 1", len(events), err)
	}
	st, err := client.Status(ctx, "shop")
	if err != nil || st.Envs[0].State.Stable != "v1" {
		t.Errorf("stable after the rollback = %+v (%v), want v1", st.Envs, err)
	}
}

func versions(hist []rollout.Rollout) string {
	var v []string
	for _, r := range hist {
		v = append(v, r.Version)
	}
	return strings.Join(v, " ")
}
