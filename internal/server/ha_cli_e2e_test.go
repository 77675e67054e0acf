package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shipgate/shipgate/internal/audit"
	"github.com/shipgate/shipgate/internal/cli"
	"github.com/shipgate/shipgate/internal/losingproxy"
	"github.com/shipgate/shipgate/internal/pgtest"
	"github.com/shipgate/shipgate/internal/rollout"
)

// TestE2E_HA_CLICommandsAcrossLeaderDeaths: three servers on PostgreSQL
// behind one address. `shipgate deploy` reaches the leader, which carries
// it out and is killed (-9) before its answer gets back; the CLI sends the
// deploy again with the same Idempotency-Key, now to another server, and
// prints the rollout the dead leader made. `shipgate approve` then meets
// the same fate with the next leader. Each is carried out once: one
// rollout, one deploy, one approval in the audit log, the rollout ends
// once, on the last server.
func TestE2E_HA_CLICommandsAcrossLeaderDeaths(t *testing.T) {
	routerPort := freePort(t)
	c := startHACluster(t, pgtest.Shared(t).NewDatabase(t), fmt.Sprintf(`app: shop
`+baseVars+baseRun+`environments:
  production:
    listen: 127.0.0.1:%d
    gates: {approval: true}
strategy:
  canary: {steps: [{weight: 50, bake: 1s}], scale_down_delay: 1s}
`+baseAnalysis, shopBin, routerPort), routerPort, "--lease-ttl", "2s")
	ctx := context.Background()
	lead, term := c.leader(0, 20*time.Second)
	token, err := os.ReadFile(filepath.Join(c.servers[0].data, "token"))
	if err != nil {
		t.Fatal(err)
	}
	proxy := losingproxy.New(t, c.servers[lead].api) // in front of every server, as a load balancer
	shipgate := func(args ...string) (int, string, string) {
		t.Helper()
		var out, errOut bytes.Buffer
		full := append([]string{"--server", proxy.URL, "--token", strings.TrimSpace(string(token)), "--retry-for", "60s"}, args...)
		code := cli.Main(ctx, full, strings.NewReader(""), &out, &errOut)
		return code, out.String(), errOut.String()
	}
	// killLeader kills the server the proxy reaches, the leader, and
	// points the proxy at a live one.
	killLeader := func(i int) func() string {
		return func() string {
			c.servers[i].kill9()
			return c.servers[c.follower(i)].api
		}
	}

	// Requests that are not rollout commands: the answer of a follower
	// is lost, and the request sent again reaches another server, which
	// answers with the first answer, from the store.
	f1 := c.follower(lead)
	f2 := c.follower(lead, f1)
	proxy.Point(c.servers[f1].api)
	proxy.Lose(func() string { return c.servers[f2].api })
	code, stdout, stderr := shipgate("incident", "open", "shop", "--env", "production", "--title", "checkout 500s", "-o", "json")
	if code != 0 || !strings.Contains(stderr, "attempt 1 failed") {
		t.Fatalf("incident open through a lost answer exited %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
	incidents, err := c.clients[lead].ListIncidents(ctx, "shop", "")
	if err != nil || len(incidents) != 1 || !strings.Contains(stdout, fmt.Sprintf(`"id": %d`, incidents[0].ID)) {
		t.Fatalf("incidents after one `incident open` = %+v (%v), printed %s; want the one, printed", incidents, err, stdout)
	}
	proxy.Point(c.servers[f2].api)
	proxy.Lose(func() string { return c.servers[f1].api })
	if code, stdout, stderr := shipgate("flags", "create", "new-checkout", "--owner", "payments"); code != 0 || !strings.Contains(stderr, "attempt 1 failed") {
		t.Fatalf("flags create through a lost answer exited %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
	if events, err := c.clients[lead].Audit(ctx, audit.Filter{Subject: "flag/new-checkout"}); err != nil || len(events) != 1 {
		t.Errorf("audit events of the flag = %d (%v), want its one creation", len(events), err)
	}

	// Rollout commands, each meeting the death of the leader.
	proxy.Point(c.servers[lead].api)
	proxy.Lose(killLeader(lead))
	began := time.Now()
	code, stdout, stderr = shipgate("deploy", "shop", "v1", "-o", "json")
	t.Logf("shipgate deploy through the leader's death (kill -9 before its answer): printed the result after %s", time.Since(began).Round(time.Millisecond))
	if code != 0 {
		t.Fatalf("deploy through a leader killed before its answer exited %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
	if !strings.Contains(stderr, "attempt 1 failed") {
		t.Errorf("the CLI did not say it sent the deploy again:\n%s", stderr)
	}
	var r rollout.Rollout
	if err := json.Unmarshal([]byte(stdout), &r); err != nil || r.Version != "v1" || r.ID == 0 {
		t.Fatalf("deploy printed %s (%v), want the rollout of v1", stdout, err)
	}
	c.waitRollout(r.ID, func(r rollout.Rollout) bool { return r.Steps[r.StepIndex].Kind == rollout.StepApproval })
	lead2, _ := c.leader(term, 20*time.Second)

	proxy.Point(c.servers[lead2].api)
	proxy.Lose(killLeader(lead2))
	began = time.Now()
	code, stdout, stderr = shipgate("approve", "shop", "--comment", "looks good")
	t.Logf("shipgate approve through the leader's death: printed the result after %s", time.Since(began).Round(time.Millisecond))
	if code != 0 {
		t.Fatalf("approve through a leader killed before its answer exited %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
	if !strings.Contains(stderr, "attempt 1 failed") {
		t.Errorf("the CLI did not say it sent the approval again:\n%s", stderr)
	}
	if r = c.waitRollout(r.ID, func(r rollout.Rollout) bool { return r.Phase.Final() }); r.Phase != rollout.PhaseSucceeded {
		t.Fatalf("v1 ended %s: %s", r.Phase, r.Reason)
	}
	hist, err := c.clients[c.alive()[0]].History(ctx, "shop", "production", 10)
	if err != nil || len(hist) != 1 {
		t.Fatalf("rollouts = %d (%v), want the one deploy", len(hist), err)
	}
	c.stepsOnce("v1", c.auditOf("v1"))
}
