package server_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shipgate/shipgate/internal/api"
	"github.com/shipgate/shipgate/internal/audit"
	"github.com/shipgate/shipgate/internal/flags"
	"github.com/shipgate/shipgate/internal/pgtest"
	"github.com/shipgate/shipgate/internal/rollout"
)

// buildFlagApp builds testdata/flagapp, the app that serves the flag
// "checkout" through OFREP and reports the variant to the router.
func buildFlagApp(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "flagapp")
	if out, err := exec.Command("go", "build", "-o", bin, "./testdata/flagapp").CombinedOutput(); err != nil {
		t.Fatalf("build flagapp: %v\n%s", err, out)
	}
	return bin
}

// flagLoad sends requests with user ids to a router until stopped.
func flagLoad(url string) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			hc := &http.Client{Timeout: 5 * time.Second}
			for i := 0; ctx.Err() == nil; i++ {
				req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url+"/pay", nil)
				req.Header.Set("X-User-ID", fmt.Sprintf("user-%d-%d", w, i%500))
				if resp, err := hc.Do(req); err == nil {
					resp.Body.Close()
				}
				time.Sleep(5 * time.Millisecond)
			}
		}()
	}
	return func() { cancel(); wg.Wait() }
}

// waitGuard polls the guarded rollout of checkout until cond holds, for
// at most 90 seconds; a server that is down or restarting is polled again.
func waitGuard(t *testing.T, client *api.Client, what string, cond func(flags.GuardStatus) bool) flags.GuardStatus {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	var last flags.GuardStatus
	for time.Now().Before(deadline) {
		if st, err := client.GuardedRollout(context.Background(), "checkout"); err == nil {
			if cond(st) {
				return st
			}
			last = st
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("the guarded rollout did not get %s; last seen %+v", what, last)
	return flags.GuardStatus{}
}

// TestE2E_GuardedFlagRolloutSurvivesServerKill: a real server drives a
// guarded flag rollout measured by its real router under load; it is
// killed (SIGKILL) in the middle of the second step, started again on the
// same data dir, and finishes the rollout from that step, each step
// audited once.
func TestE2E_GuardedFlagRolloutSurvivesServerKill(t *testing.T) {
	app := buildFlagApp(t)
	dir := t.TempDir()
	routerPort := freePort(t)
	s := &serverProc{t: t, cfg: filepath.Join(dir, "shipgate.yaml"), data: filepath.Join(dir, "data"),
		api: fmt.Sprintf("http://127.0.0.1:%d", freePort(t)), logPath: filepath.Join(dir, "server.log")}
	keyFile := filepath.Join(dir, "flag-key")
	yaml := fmt.Sprintf(`app: shop
run:
  command: [%q, "--port", "${PORT}"]
  env: {OFREP_URL: %q, OFREP_KEY_FILE: %q}
  instances: 1
  health: {path: /healthz, interval: 200ms, timeout: 1s}
  start_timeout: 4s
  stop_grace: 2s
environments:
  production:
    listen: 127.0.0.1:%d
    sticky: {header: X-User-ID}
strategy:
  canary: {steps: [{weight: 50, bake: 1s}]}
`, app, s.api, keyFile, routerPort)
	client := s.launch(yaml)
	ctx := context.Background()
	r, err := client.Deploy(ctx, rollout.DeployRequest{App: "shop", Version: "v1"})
	if err != nil {
		t.Fatal(err)
	}
	s.waitRollout(client, r.ID, func(r rollout.Rollout) bool { return r.Phase == rollout.PhaseSucceeded })
	if _, err := client.CreateFlag(ctx, api.CreateFlagRequest{Key: "checkout", Owner: "payments"}); err != nil {
		t.Fatal(err)
	}
	key, err := client.CreateFlagKey(ctx, "shop")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, []byte(key.Secret), 0o600); err != nil {
		t.Fatal(err)
	}
	stopLoad := flagLoad(fmt.Sprintf("http://127.0.0.1:%d", routerPort))
	defer stopLoad()

	if _, err := client.StartGuardedRollout(ctx, "checkout", api.GuardRequest{Steps: []int{20, 60, 100}, Bake: "6s", Interval: "250ms",
		Guards: []string{"error_rate<5%"}, MinRequests: 30, Reason: "new checkout"}); err != nil {
		t.Fatal(err)
	}
	// 2 s into the second step's 6 s bake.
	before := waitGuard(t, client, "2 s into its second step", func(st flags.GuardStatus) bool {
		return st.Step == 1 && time.Since(st.StepStarted) >= 2*time.Second || st.Step > 1 || st.Done()
	})
	if before.Step != 1 || before.Done() {
		t.Fatalf("before the kill: %+v; want running at step 2", before)
	}

	// The control plane dies in the middle of the second step.
	s.kill9()
	killed := time.Now()
	s.start()
	resumed := waitGuard(t, client, "resumed", func(flags.GuardStatus) bool { return true })
	t.Logf("killed at step %d (%d%%) %s into it; restarted in %s, seen at step %d (%d%%) with %s baked", before.Step+1, before.Percent,
		killed.Sub(before.StepStarted).Round(time.Millisecond), time.Since(killed).Round(time.Millisecond), resumed.Step+1, resumed.Percent, resumed.Baked)
	if resumed.Step == 1 && (!resumed.StepStarted.Equal(before.StepStarted) || resumed.Baked < time.Second) {
		t.Errorf("step 2 began at %s with %s baked before the kill, and at %s with %s baked after it: the resume restarted the bake",
			before.StepStarted, before.Baked, resumed.StepStarted, resumed.Baked)
	}
	final := waitGuard(t, client, "done", flags.GuardStatus.Done)
	stopLoad()
	if final.Phase != flags.GuardSucceeded || final.Percent != 100 {
		t.Fatalf("after the restart the guarded rollout ended %s at %d%%: %s", final.Phase, final.Percent, final.Reason)
	}
	f, err := client.GetFlag(ctx, "checkout")
	if err != nil {
		t.Fatal(err)
	}
	if p, ok := flags.PlanOf(f.Definition); !ok || p.Percent != 100 || f.Definition.State != flags.Enabled {
		t.Fatalf("flag after the rollout: %+v", f.Definition)
	}
	steps, err := client.Audit(ctx, audit.Filter{Subject: "flag/checkout", Action: flags.ActionGuardStep})
	if err != nil {
		t.Fatal(err)
	}
	if len(steps) != 3 {
		t.Fatalf("%d audited steps, want 3: one per step, none repeated by the restart", len(steps))
	}
	seen := map[string]bool{}
	for _, e := range steps {
		if seen[e.Reason] {
			t.Fatalf("step audited twice: %q", e.Reason)
		}
		seen[e.Reason] = true
	}
	done, err := client.Audit(ctx, audit.Filter{Subject: "flag/checkout", Action: flags.ActionGuardDone})
	if err != nil {
		t.Fatal(err)
	}
	if len(done) != 1 || done[0].Outcome != "ok" {
		t.Fatalf("audited end: %+v", done)
	}
	t.Logf("step 2 began %s; after the restart the rollout finished at %s: %s", before.StepStarted.Format(time.RFC3339Nano), final.Finished.Format(time.RFC3339Nano), final.Reason)
}

// guardOn returns the guarded rollout of checkout as the first live
// server of c that answers has it.
func (c *haCluster) guardOn() (flags.GuardStatus, bool) {
	for _, i := range c.alive() {
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		st, err := c.clients[i].GuardedRollout(ctx, "checkout")
		cancel()
		if err == nil {
			return st, true
		}
	}
	return flags.GuardStatus{}, false
}

// waitGuard polls the guarded rollout of checkout through the live
// servers until cond holds, for at most 90 seconds.
func (c *haCluster) waitGuard(what string, cond func(flags.GuardStatus) bool) flags.GuardStatus {
	c.t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	var last flags.GuardStatus
	for time.Now().Before(deadline) {
		if st, ok := c.guardOn(); ok {
			if cond(st) {
				return st
			}
			last = st
		}
		time.Sleep(100 * time.Millisecond)
	}
	c.t.Fatalf("the guarded rollout did not get %s; last seen %+v", what, last)
	return flags.GuardStatus{}
}

// TestE2E_HA_GuardedFlagRolloutSurvivesFailover: three servers on one
// PostgreSQL; a guarded flag rollout started through a follower is driven
// by the leader, measured by the shared router under load; kill -9 of the
// leader in the middle of the second step. The new leader resumes it at
// that step with the bake it had served and finishes it, each step
// audited once, the audit chain linear.
func TestE2E_HA_GuardedFlagRolloutSurvivesFailover(t *testing.T) {
	app := buildFlagApp(t)
	dir := t.TempDir()
	routerPort := freePort(t)
	keyFile, urlFile := filepath.Join(dir, "flag-key"), filepath.Join(dir, "ofrep-urls")
	c := startHACluster(t, pgtest.Shared(t).NewDatabase(t), fmt.Sprintf(`app: shop
run:
  command: [%q, "--port", "${PORT}"]
  env: {OFREP_URL_FILE: %q, OFREP_KEY_FILE: %q}
  instances: 1
  health: {path: /healthz, interval: 200ms, timeout: 1s}
  start_timeout: 4s
  stop_grace: 2s
environments:
  production:
    listen: 127.0.0.1:%d
    sticky: {header: X-User-ID}
strategy:
  canary: {steps: [{weight: 50, bake: 1s}]}
`, app, urlFile, keyFile, routerPort), routerPort, "--lease-ttl", "2s")
	ctx := context.Background()
	lead, term := c.leader(0, 20*time.Second)
	f1 := c.follower(lead)
	r, err := c.clients[f1].Deploy(ctx, rollout.DeployRequest{App: "shop", Version: "v1"})
	if err != nil {
		t.Fatal(err)
	}
	if r = c.waitRollout(r.ID, func(r rollout.Rollout) bool { return r.Phase.Final() }); r.Phase != rollout.PhaseSucceeded {
		t.Fatalf("v1 ended %s: %s", r.Phase, r.Reason)
	}
	if _, err := c.clients[f1].CreateFlag(ctx, api.CreateFlagRequest{Key: "checkout", Owner: "payments"}); err != nil {
		t.Fatal(err)
	}
	key, err := c.clients[f1].CreateFlagKey(ctx, "shop")
	if err != nil {
		t.Fatal(err)
	}
	// The app asks the followers first, the leader last.
	var urls []string
	for _, i := range append(slices.DeleteFunc(c.alive(), func(i int) bool { return i == lead }), lead) {
		urls = append(urls, c.servers[i].api)
	}
	if err := os.WriteFile(keyFile, []byte(key.Secret), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(urlFile, []byte(strings.Join(urls, "\n")), 0o600); err != nil {
		t.Fatal(err)
	}
	stopLoad := flagLoad(c.router)
	defer stopLoad()

	// Started through a follower: stored, and driven by the leader.
	if _, err := c.clients[f1].StartGuardedRollout(ctx, "checkout", api.GuardRequest{Steps: []int{20, 60, 100}, Bake: "6s", Interval: "250ms",
		Guards: []string{"error_rate<5%"}, MinRequests: 30, Reason: "new checkout"}); err != nil {
		t.Fatal(err)
	}
	before := c.waitGuard("2 s into its second step", func(st flags.GuardStatus) bool {
		return st.Step == 1 && time.Since(st.StepStarted) >= 2*time.Second || st.Step > 1 || st.Done()
	})
	if before.Step != 1 || before.Done() {
		t.Fatalf("before the kill: %+v; want running at step 2", before)
	}

	killed := time.Now()
	c.servers[lead].kill9()
	lead2, term2 := c.leader(term, 20*time.Second)
	t.Logf("kill -9 of the leader s%d (term %d) %s into step 2 (%s baked): s%d leads in term %d after %s (lease 2s)",
		lead+1, term, killed.Sub(before.StepStarted).Round(time.Millisecond), before.Baked.Round(time.Millisecond),
		lead2+1, term2, time.Since(killed).Round(10*time.Millisecond))
	resumed := c.waitGuard("resumed by the new leader", func(st flags.GuardStatus) bool { return st.Baked > 0 || st.Step > 1 || st.Done() })
	if resumed.Step == 1 && !resumed.StepStarted.Equal(before.StepStarted) {
		t.Errorf("step 2 began at %s before the failover and at %s after it: the new leader restarted the step", before.StepStarted, resumed.StepStarted)
	}
	final := c.waitGuard("done", flags.GuardStatus.Done)
	stopLoad()
	if final.Phase != flags.GuardSucceeded || final.Percent != 100 {
		t.Fatalf("after the failover the guarded rollout ended %s at %d%%: %s", final.Phase, final.Percent, final.Reason)
	}
	client := c.clients[lead2]
	steps, err := client.Audit(ctx, audit.Filter{Subject: "flag/checkout", Action: flags.ActionGuardStep})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, e := range steps {
		if seen[e.Reason] {
			t.Errorf("step audited twice: %q", e.Reason)
		}
		seen[e.Reason] = true
	}
	if len(steps) != 3 {
		t.Fatalf("%d audited steps, want 3: one per step, none repeated by the new leader", len(steps))
	}
	if done, err := client.Audit(ctx, audit.Filter{Subject: "flag/checkout", Action: flags.ActionGuardDone}); err != nil || len(done) != 1 {
		t.Fatalf("audited ends: %+v, %v; want one", done, err)
	}
	chain, err := client.AuditChain(ctx, 1, 1000)
	if err != nil {
		t.Fatal(err)
	}
	if err := audit.Verify(chain); err != nil {
		t.Fatalf("audit chain after the failover: %v", err)
	}
	t.Logf("finished by s%d: %s, %s after the kill", lead2+1, final.Reason, final.Finished.Sub(killed).Round(time.Millisecond))
}
