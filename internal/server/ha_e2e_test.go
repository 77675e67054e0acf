package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/shipgate/shipgate/internal/api"
	"github.com/shipgate/shipgate/internal/audit"
	"github.com/shipgate/shipgate/internal/demo"
	"github.com/shipgate/shipgate/internal/pgtest"
	"github.com/shipgate/shipgate/internal/proxy"
	"github.com/shipgate/shipgate/internal/rollout"
)

// haCluster is three `shipgate server` processes on one PostgreSQL store,
// on one machine: each has its own data dir and API port, and they share
// the machine's data plane (--plane-dir: the router process, the
// instances).
type haCluster struct {
	t       *testing.T
	servers []*serverProc
	clients []*api.Client
	plane   string
	router  string
}

func startHACluster(t *testing.T, dsn, yaml string, routerPort int, extra ...string) *haCluster {
	t.Helper()
	dir := t.TempDir()
	c := &haCluster{t: t, plane: filepath.Join(dir, "plane"), router: fmt.Sprintf("http://127.0.0.1:%d", routerPort)}
	cfg := filepath.Join(dir, "shipgate.yaml")
	if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.killServers()
		if rc, err := proxy.Dial(context.Background(), proxy.ControlSocketPath(c.plane, "production")); err == nil {
			_ = rc.StopProcess(context.Background())
		}
		for _, inst := range registered(t, c.plane) {
			_ = syscall.Kill(-inst.PID, syscall.SIGKILL)
		}
		if t.Failed() {
			for _, s := range c.servers {
				b, _ := os.ReadFile(s.logPath)
				t.Logf("log of %s:\n%s", s.data, b)
			}
		}
	})
	for i := 1; i <= 3; i++ {
		name := fmt.Sprintf("s%d", i)
		s := &serverProc{t: t, cfg: cfg, data: filepath.Join(dir, name), api: fmt.Sprintf("http://127.0.0.1:%d", freePort(t)),
			logPath: filepath.Join(dir, name+".log"),
			args:    append([]string{"--store", dsn, "--server-id", name, "--plane-dir", c.plane}, extra...)}
		s.start()
		token, err := os.ReadFile(filepath.Join(s.data, "token"))
		if err != nil {
			t.Fatal(err)
		}
		c.servers = append(c.servers, s)
		c.clients = append(c.clients, api.NewClient(s.api, strings.TrimSpace(string(token)), nil))
	}
	return c
}

// alive are the indexes of the servers not killed.
func (c *haCluster) alive() []int {
	var out []int
	for i, s := range c.servers {
		if s.cmd.ProcessState == nil {
			out = append(out, i)
		}
	}
	return out
}

// leader waits until a live server says it leads in a term above after,
// and returns its index and term.
func (c *haCluster) leader(after int64, within time.Duration) (int, int64) {
	c.t.Helper()
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		for _, i := range c.alive() {
			ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond) // a paused server answers nothing
			st, err := c.clients[i].Status(ctx, "shop")
			cancel()
			if err == nil && st.ControlPlane != nil && st.ControlPlane.Leading && st.ControlPlane.Term > after {
				return i, st.ControlPlane.Term
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	c.t.Fatalf("no server leads in a term above %d within %s", after, within)
	return 0, 0
}

// follower returns a live server other than those given.
func (c *haCluster) follower(not ...int) int {
	for _, i := range c.alive() {
		if !slices.Contains(not, i) {
			return i
		}
	}
	c.t.Fatal("no other live server")
	return 0
}

// waitRollout polls rollout id through any live server until done holds.
func (c *haCluster) waitRollout(id int64, done func(rollout.Rollout) bool) rollout.Rollout {
	c.t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for time.Now().Before(deadline) {
		for _, i := range c.alive() {
			ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
			r, err := c.clients[i].GetRollout(ctx, id)
			cancel()
			if err == nil && done(r) {
				return r
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	c.t.Fatalf("rollout %d did not get where expected", id)
	return rollout.Rollout{}
}

// postDeploy sends a deploy to server i with an Idempotency-Key and the
// token of server 1, as a client retrying on another server would.
func (c *haCluster) postDeploy(i int, key string, req rollout.DeployRequest) rollout.Rollout {
	c.t.Helper()
	body, _ := json.Marshal(req)
	hr, _ := http.NewRequest(http.MethodPost, c.servers[i].api+"/v1/deploys", bytes.NewReader(body))
	token, _ := os.ReadFile(filepath.Join(c.servers[0].data, "token"))
	hr.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(token)))
	hr.Header.Set("Content-Type", "application/json")
	hr.Header.Set("Idempotency-Key", key)
	resp, err := http.DefaultClient.Do(hr)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	var r rollout.Rollout
	if resp.StatusCode/100 != 2 || json.NewDecoder(resp.Body).Decode(&r) != nil {
		c.t.Fatalf("deploy through server %d answered %s", i+1, resp.Status)
	}
	return r
}

// auditOf returns the audit events of one release's rollout, by action.
func (c *haCluster) auditOf(version string) map[string][]audit.Event {
	c.t.Helper()
	events, err := c.clients[c.alive()[0]].Audit(context.Background(), audit.Filter{Subject: "shop/production/" + version})
	if err != nil {
		c.t.Fatal(err)
	}
	out := map[string][]audit.Event{}
	for _, e := range events {
		out[e.Action] = append(out[e.Action], e)
	}
	return out
}

// stepsOnce fails unless each step of the rollout was entered once.
func (c *haCluster) stepsOnce(version string, byAction map[string][]audit.Event) {
	c.t.Helper()
	seen := map[string]int{}
	for _, e := range byAction[audit.ActionStep] {
		seen[e.Data["step"]]++
	}
	for step, n := range seen {
		if n != 1 {
			c.t.Errorf("%s: step %s entered %d times in the audit log, want once", version, step, n)
		}
	}
	if len(byAction[audit.ActionDeploy]) != 1 || len(byAction[audit.ActionApprove]) != 1 || len(byAction[audit.ActionSucceed]) != 1 {
		c.t.Errorf("%s: %d deploys, %d approvals, %d successes in the audit log; want one each",
			version, len(byAction[audit.ActionDeploy]), len(byAction[audit.ActionApprove]), len(byAction[audit.ActionSucceed]))
	}
}

// TestE2E_HA_LeaderKilledMidBake is issue 16's failover: three servers on
// one PostgreSQL, load through the router, a canary mid-bake; kill -9 of
// the leader. A follower leads within the lease (the figure is logged),
// resumes the rollout at its step and promotes it; no user request
// fails; each step is entered once; no instance is duplicated. Deploys
// go to followers (one sent twice with one Idempotency-Key, to two
// servers: one rollout), and an approval is sent while the leader is
// being killed: each is carried out once.
func TestE2E_HA_LeaderKilledMidBake(t *testing.T) {
	routerPort := freePort(t)
	c := startHACluster(t, pgtest.Shared(t).NewDatabase(t), fmt.Sprintf(`app: shop
`+baseVars+baseRun+`environments:
  production:
    listen: 127.0.0.1:%d
    sticky: {header: X-User-ID}
    gates: {approval: true}
strategy:
  canary: {steps: [{weight: 20, bake: 8s}, {weight: 50, bake: 2s}], scale_down_delay: 1s}
`+baseAnalysis, shopBin, routerPort), routerPort)
	ctx := context.Background()
	lead, term := c.leader(0, 20*time.Second)
	for i := range c.servers {
		want := "0"
		if i == lead {
			want = "1"
		}
		if got := c.leaderGauge(i); got != want {
			t.Errorf("s%d: shipgate_leader = %q, want %s (s%d leads)", i+1, got, want, lead+1)
		}
	}

	// v1: a deploy and its approval, each through a follower.
	f1 := c.follower(lead)
	f2 := c.follower(lead, f1)
	r, err := c.clients[f1].Deploy(ctx, rollout.DeployRequest{App: "shop", Version: "v1"})
	if err != nil {
		t.Fatalf("deploy through follower s%d: %v", f1+1, err)
	}
	c.waitRollout(r.ID, func(r rollout.Rollout) bool { return r.Steps[r.StepIndex].Kind == rollout.StepApproval })
	if _, err := c.clients[f2].Approve(ctx, rollout.ApproveRequest{App: "shop", Version: "v1"}); err != nil {
		t.Fatalf("approve through follower s%d: %v", f2+1, err)
	}
	if r = c.waitRollout(r.ID, func(r rollout.Rollout) bool { return r.Phase.Final() }); r.Phase != rollout.PhaseSucceeded {
		t.Fatalf("v1 ended %s: %s", r.Phase, r.Reason)
	}
	v1 := registered(t, c.plane)

	load := &demo.Load{URL: c.router, Rate: 150}
	load.Start(ctx)
	defer load.Stop()
	time.Sleep(time.Second)

	// v2: sent twice with one key, to two followers: one rollout.
	req := rollout.DeployRequest{App: "shop", Version: "v2"}
	r = c.postDeploy(f1, "deploy-v2-once", req)
	if again := c.postDeploy(f2, "deploy-v2-once", req); again.ID != r.ID {
		t.Fatalf("the same deploy sent again to another server made rollout %d, want %d", again.ID, r.ID)
	}
	c.waitRollout(r.ID, func(r rollout.Rollout) bool { return r.Steps[r.StepIndex].Kind == rollout.StepApproval })
	if _, err := c.clients[f2].Approve(ctx, rollout.ApproveRequest{App: "shop", Version: "v2"}); err != nil {
		t.Fatal(err)
	}
	r = c.waitRollout(r.ID, func(r rollout.Rollout) bool { return r.Weight == 20 && r.Analysis != nil })
	canary := []int{r.New[0].PID, r.New[1].PID}

	// The leader dies mid-bake.
	killed := time.Now()
	c.servers[lead].kill9()
	lead2, term2 := c.leader(term, 20*time.Second)
	failover := time.Since(killed)
	t.Logf("kill -9 of the leader s%d (term %d) mid-bake: s%d leads in term %d after %s (lease 5s)",
		lead+1, term, lead2+1, term2, failover.Round(10*time.Millisecond))
	if failover > 10*time.Second {
		t.Errorf("failover took %s, want within 10s", failover)
	}
	final := c.waitRollout(r.ID, func(r rollout.Rollout) bool { return r.Phase.Final() })
	if final.Phase != rollout.PhaseSucceeded {
		t.Fatalf("after the failover v2 ended %s: %s", final.Phase, final.Reason)
	}
	time.Sleep(500 * time.Millisecond)
	if fails := load.Failures(); len(fails) != 0 {
		t.Fatalf("%d user requests failed across the failover, first %+v", len(fails), fails[0])
	}
	// The new leader adopted the two canary processes and promoted them:
	// no third v2 started, no v1 left behind.
	var pids []int
	for _, inst := range registered(t, c.plane) {
		if inst.Version != "v2" {
			t.Fatalf("instance %s of %s still runs after the rollout", inst.ID, inst.Version)
		}
		pids = append(pids, inst.PID)
	}
	slices.Sort(pids)
	slices.Sort(canary)
	if !slices.Equal(pids, canary) {
		t.Fatalf("running v2 pids %v, want the canary's %v", pids, canary)
	}
	for _, inst := range v1 {
		if isRunning(inst.PID) {
			t.Fatalf("v1 instance %s (pid %d) was orphaned", inst.ID, inst.PID)
		}
	}
	c.stepsOnce("v2", c.auditOf("v2"))

	// v3: the approval is sent to the last follower while the leader is
	// being killed; the follower leads next and carries it out, once.
	last := c.follower(lead2)
	r, err = c.clients[last].Deploy(ctx, rollout.DeployRequest{App: "shop", Version: "v3"})
	if err != nil {
		t.Fatal(err)
	}
	c.waitRollout(r.ID, func(r rollout.Rollout) bool { return r.Steps[r.StepIndex].Kind == rollout.StepApproval })
	approved := make(chan error, 1)
	go func() {
		_, err := c.clients[last].Approve(ctx, rollout.ApproveRequest{App: "shop", Version: "v3"})
		approved <- err
	}()
	time.Sleep(20 * time.Millisecond)
	c.servers[lead2].kill9()
	if err := <-approved; err != nil {
		t.Fatalf("approve sent while the leader was killed: %v", err)
	}
	if i, _ := c.leader(term2, 20*time.Second); i != last {
		t.Fatalf("s%d leads, want the last server s%d", i+1, last+1)
	}
	if r = c.waitRollout(r.ID, func(r rollout.Rollout) bool { return r.Phase.Final() }); r.Phase != rollout.PhaseSucceeded {
		t.Fatalf("v3 ended %s: %s", r.Phase, r.Reason)
	}
	load.Stop()
	if fails := load.Failures(); len(fails) != 0 {
		t.Fatalf("%d user requests failed across the second failover, first %+v", len(fails), fails[0])
	}
	c.stepsOnce("v3", c.auditOf("v3"))
	chain, err := c.clients[last].AuditChain(ctx, 1, 1000)
	if err != nil {
		t.Fatal(err)
	}
	if err := audit.Verify(chain); err != nil {
		t.Fatalf("audit chain after two failovers: %v", err)
	}
}

// canaryYAML is a canary without approval for the failure tests.
const canaryYAML = `app: shop
` + baseVars + baseRun + `environments:
  production:
    listen: 127.0.0.1:%d
    sticky: {header: X-User-ID}
strategy:
  canary: {steps: [{weight: 20, bake: 6s}, {weight: 50, bake: 2s}], scale_down_delay: 1s}
` + baseAnalysis

// midBake deploys v1 and then v2 through a follower of lead, under load,
// and returns v2's rollout once it bakes at 20%, with the load running.
func (c *haCluster) midBake(lead int) (rollout.Rollout, *demo.Load) {
	c.t.Helper()
	ctx := context.Background()
	f := c.follower(lead)
	r, err := c.clients[f].Deploy(ctx, rollout.DeployRequest{App: "shop", Version: "v1"})
	if err != nil {
		c.t.Fatal(err)
	}
	if r = c.waitRollout(r.ID, func(r rollout.Rollout) bool { return r.Phase.Final() }); r.Phase != rollout.PhaseSucceeded {
		c.t.Fatalf("v1 ended %s: %s", r.Phase, r.Reason)
	}
	load := &demo.Load{URL: c.router, Rate: 150}
	load.Start(ctx)
	c.t.Cleanup(load.Stop)
	time.Sleep(time.Second)
	if r, err = c.clients[f].Deploy(ctx, rollout.DeployRequest{App: "shop", Version: "v2"}); err != nil {
		c.t.Fatal(err)
	}
	return c.waitRollout(r.ID, func(r rollout.Rollout) bool { return r.Weight == 20 && r.Analysis != nil }), load
}

// finish waits for v2's rollout to succeed and checks what every failure
// test promises: no failed user request, each step once, the canary's
// two instances and nothing else, a chain that verifies.
func (c *haCluster) finish(r rollout.Rollout, load *demo.Load) {
	c.t.Helper()
	canary := []int{r.New[0].PID, r.New[1].PID}
	final := c.waitRollout(r.ID, func(r rollout.Rollout) bool { return r.Phase.Final() })
	if final.Phase != rollout.PhaseSucceeded {
		c.t.Fatalf("v2 ended %s: %s", final.Phase, final.Reason)
	}
	time.Sleep(500 * time.Millisecond)
	load.Stop()
	if fails := load.Failures(); len(fails) != 0 {
		c.t.Fatalf("%d user requests failed, first %+v", len(fails), fails[0])
	}
	var pids []int
	for _, inst := range registered(c.t, c.plane) {
		if inst.Version != "v2" {
			c.t.Fatalf("instance %s of %s still runs after the rollout", inst.ID, inst.Version)
		}
		pids = append(pids, inst.PID)
	}
	slices.Sort(pids)
	slices.Sort(canary)
	if !slices.Equal(pids, canary) {
		c.t.Fatalf("running v2 pids %v, want the canary's %v", pids, canary)
	}
	events := c.auditOf("v2")
	seen := map[string]int{}
	for _, e := range events[audit.ActionStep] {
		seen[e.Data["step"]]++
	}
	for step, n := range seen {
		if n != 1 {
			c.t.Errorf("step %s entered %d times in the audit log, want once", step, n)
		}
	}
	if len(events[audit.ActionSucceed]) != 1 {
		c.t.Errorf("%d successes of v2 in the audit log, want 1", len(events[audit.ActionSucceed]))
	}
	chain, err := c.clients[c.alive()[0]].AuditChain(context.Background(), 1, 1000)
	if err != nil {
		c.t.Fatal(err)
	}
	if err := audit.Verify(chain); err != nil {
		c.t.Fatalf("audit chain: %v", err)
	}
}

// TestE2E_HA_PausedLeaderIsFenced: the leader is paused (SIGSTOP) mid-bake
// past its lease; another server takes over; the old one wakes (SIGCONT)
// and acts on its stale view: the store refuses its writes, it steps down
// and says so, and the rollout ends once, on the new leader.
func TestE2E_HA_PausedLeaderIsFenced(t *testing.T) {
	routerPort := freePort(t)
	hooks := startReceiver(t, "127.0.0.1:0", false)
	t.Setenv("SHIPGATE_E2E_HOOK_SECRET", hookSecret)
	yaml := fmt.Sprintf(canaryYAML, shopBin, routerPort) + fmt.Sprintf(`notifications:
  webhooks:
    - {name: ops, url: %q, secret_env: SHIPGATE_E2E_HOOK_SECRET, events: [rollout.succeeded], timeout: 2s}
`, hooks.url())
	c := startHACluster(t, pgtest.Shared(t).NewDatabase(t), yaml, routerPort, "--lease-ttl", "2s")
	lead, term := c.leader(0, 20*time.Second)
	c.flagSeenEverywhere()
	r, load := c.midBake(lead)

	old := c.servers[lead]
	if err := syscall.Kill(old.cmd.Process.Pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	paused := time.Now()
	lead2, term2 := c.leader(term, 20*time.Second)
	t.Logf("SIGSTOP of the leader s%d (term %d): s%d leads in term %d after %s (lease 2s)", lead+1, term, lead2+1, term2, time.Since(paused).Round(10*time.Millisecond))
	time.Sleep(time.Second) // the new leader acts
	if err := syscall.Kill(old.cmd.Process.Pid, syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		st, err := c.clients[lead].Status(context.Background(), "shop")
		if err == nil && st.ControlPlane != nil && !st.ControlPlane.Leading {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the woken leader s%d still says it leads: %+v, %v", lead+1, st.ControlPlane, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	c.finish(r, load)
	// One notification per success (v1's, v2's), each received once,
	// though three servers run and the leader changed. (Webhooks go out
	// from the leader only; with every server sending, a duplicate needs
	// two servers to poll the outbox within the same send, so this check
	// catches that only now and then.)
	deadline = time.Now().Add(30 * time.Second)
	for len(hooks.byType("rollout.succeeded")) < 2 && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(time.Second) // a duplicate would arrive by now
	if got := hooks.byType("rollout.succeeded"); len(got) != 2 {
		t.Errorf("%d rollout.succeeded notifications, want 2 (v1, v2)", len(got))
	}
	hooks.mu.Lock()
	for id, n := range hooks.got {
		if n != 1 {
			t.Errorf("notification %s received %d times, want once", id, n)
		}
	}
	hooks.mu.Unlock()
	b, _ := os.ReadFile(old.logPath)
	if !strings.Contains(string(b), "stepped down") {
		t.Errorf("the woken leader's log does not say it stepped down")
	}
}

// TestE2E_HA_DatabaseRestartMidRollout: PostgreSQL restarts (a fast
// shutdown cuts every session) while a canary bakes: the servers
// reconnect, one leads again, the rollout goes on from its committed step
// and ends once; users notice nothing (the routers keep their table).
func TestE2E_HA_DatabaseRestartMidRollout(t *testing.T) {
	srv := pgtest.New(t)
	routerPort := freePort(t)
	c := startHACluster(t, srv.NewDatabase(t), fmt.Sprintf(canaryYAML, shopBin, routerPort), routerPort, "--lease-ttl", "2s")
	lead, term := c.leader(0, 20*time.Second)
	r, load := c.midBake(lead)

	start := time.Now()
	if err := srv.Restart(context.Background(), 3*time.Second); err != nil {
		t.Fatal(err)
	}
	lead2, term2 := c.leader(term-1, 30*time.Second)
	t.Logf("PostgreSQL down 3s mid-bake: s%d leads in term %d %s after the restart began (s%d led in term %d)",
		lead2+1, term2, time.Since(start).Round(10*time.Millisecond), lead+1, term)
	c.finish(r, load)
}

// flagSeenEverywhere is the change feed: a flag created and then turned
// on through server 1 is evaluated by OFREP on servers 2 and 3 within a
// second (the figure is logged).
func (c *haCluster) flagSeenEverywhere() {
	c.t.Helper()
	ctx := context.Background()
	key, err := c.clients[0].CreateToken(ctx, api.TokenRequest{Name: "app", Role: "viewer"})
	if err != nil {
		c.t.Fatal(err)
	}
	def := `{"state": "ENABLED", "variants": {"on": true, "off": false}, "defaultVariant": "off"}`
	if _, err := c.clients[0].CreateFlag(ctx, api.CreateFlagRequest{Key: "new-checkout", Owner: "payments", Definition: json.RawMessage(def), Reason: "ship dark"}); err != nil {
		c.t.Fatal(err)
	}
	for _, i := range []int{1, 2} {
		c.awaitVariant(i, key.Secret, "off", 5*time.Second)
	}
	on := `{"state": "ENABLED", "variants": {"on": true, "off": false}, "defaultVariant": "on"}`
	changed := time.Now()
	if _, err := c.clients[0].PutFlag(ctx, "new-checkout", api.PutFlagRequest{Definition: json.RawMessage(on), Reason: "release"}); err != nil {
		c.t.Fatal(err)
	}
	for _, i := range []int{1, 2} {
		c.awaitVariant(i, key.Secret, "on", 5*time.Second)
	}
	seen := time.Since(changed)
	c.t.Logf("a flag change through s1 is evaluated by OFREP on s2 and s3 after %s", seen.Round(time.Millisecond))
	if seen > time.Second {
		c.t.Errorf("the change took %s to reach the other servers, want within a second", seen)
	}
}

// awaitVariant polls server i's OFREP until new-checkout evaluates to
// variant.
func (c *haCluster) awaitVariant(i int, key, variant string, within time.Duration) {
	c.t.Helper()
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		req, _ := http.NewRequest(http.MethodPost, c.servers[i].api+"/ofrep/v1/evaluate/flags/new-checkout", strings.NewReader(`{"context": {"targetingKey": "u-1"}}`))
		req.Header.Set("Authorization", "Bearer "+key)
		req.Header.Set("Content-Type", "application/json")
		if resp, err := http.DefaultClient.Do(req); err == nil {
			var got struct {
				Variant string `json:"variant"`
			}
			_ = json.NewDecoder(resp.Body).Decode(&got)
			resp.Body.Close()
			if got.Variant == variant {
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	c.t.Fatalf("s%d's OFREP never evaluated new-checkout to %s", i+1, variant)
}

// leaderGauge returns the value of shipgate_leader{server="sN"} on server
// i's /metrics.
func (c *haCluster) leaderGauge(i int) string {
	c.t.Helper()
	return c.gauge(i, fmt.Sprintf("shipgate_leader{server=%q}", fmt.Sprintf("s%d", i+1)))
}

// gauge returns the value of the series named (with its labels) name on
// server i's /metrics, or "missing".
func (c *haCluster) gauge(i int, name string) string {
	c.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, c.servers[i].api+"/metrics", nil)
	token, _ := os.ReadFile(filepath.Join(c.servers[i].data, "token"))
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(token)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	_, _ = b.ReadFrom(resp.Body)
	prefix := name + " "
	for _, line := range strings.Split(b.String(), "\n") {
		if v, ok := strings.CutPrefix(line, prefix); ok {
			return v
		}
	}
	return "missing"
}

// killServers kills (-9) every server of the cluster still running, a
// paused one too: at the end of a test, before its router processes are
// stopped, since a live leader would start a stopped one again.
func (c *haCluster) killServers() {
	for _, s := range c.servers {
		if s.cmd != nil && s.cmd.ProcessState == nil {
			_ = syscall.Kill(s.cmd.Process.Pid, syscall.SIGCONT)
			s.kill9()
		}
	}
}
