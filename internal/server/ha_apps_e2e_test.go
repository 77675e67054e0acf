package server_test

import (
	"context"
	"fmt"
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

// twoAppsYAML is shop and billing in one file, each with its production
// on its own router port.
func twoAppsYAML(shopPort, billingPort int) string {
	steps := "[{weight: 20, bake: 6s}, {weight: 50, bake: 2s}]"
	return appYAML("shop", shopPort, steps) + "---\n" + appYAML("billing", billingPort, steps)
}

// stopAppRouters stops, at the end of a test, the router processes of
// apps whose environments share a name (their sockets are under
// <plane>/apps/<app>). The servers are killed first: a live leader
// supervises its routers and would start a stopped one again, which then
// outlives the test (and writes into its directory as it is removed).
func (c *haCluster) stopAppRouters(apps ...string) {
	c.t.Cleanup(func() {
		c.killServers()
		for _, app := range apps {
			if rc, err := proxy.Dial(context.Background(), proxy.ControlSocketPath(filepath.Join(c.plane, "apps", app), "production")); err == nil {
				_ = rc.StopProcess(context.Background())
			}
		}
	})
}

// auditOfApp returns the audit events of one release's rollout of app, by
// action.
func (c *haCluster) auditOfApp(app, version string) map[string][]audit.Event {
	c.t.Helper()
	events, err := c.clients[c.alive()[0]].Audit(context.Background(), audit.Filter{Subject: app + "/production/" + version})
	if err != nil {
		c.t.Fatal(err)
	}
	out := map[string][]audit.Event{}
	for _, e := range events {
		out[e.Action] = append(out[e.Action], e)
	}
	return out
}

// TestE2E_HA_TwoAppsLeaderKilledMidBake: three servers on one PostgreSQL
// manage two apps (shop and billing, one file); a canary of each bakes
// under load when the leader is killed -9. A follower leads within the
// lease and resumes both rollouts (every app's engine runs on the leader,
// under its one term) and promotes them: each step once in each app's
// audit, no user request failed on either router, each app's two canary
// processes and nothing else, the chain linear.
func TestE2E_HA_TwoAppsLeaderKilledMidBake(t *testing.T) {
	shopPort, billingPort := freePort(t), freePort(t)
	c := startHACluster(t, pgtest.Shared(t).NewDatabase(t), twoAppsYAML(shopPort, billingPort), shopPort, "--lease-ttl", "2s")
	c.stopAppRouters("shop", "billing")
	ctx := context.Background()
	lead, term := c.leader(0, 20*time.Second)
	apps := []string{"shop", "billing"}
	routers := map[string]string{"shop": fmt.Sprintf("http://127.0.0.1:%d", shopPort), "billing": fmt.Sprintf("http://127.0.0.1:%d", billingPort)}

	// v1 of each app, through a follower each.
	f1, f2 := c.follower(lead), c.follower(lead, c.follower(lead))
	var ids []int64
	for i, app := range apps {
		r, err := c.clients[[]int{f1, f2}[i]].Deploy(ctx, rollout.DeployRequest{App: app, Version: "v1"})
		if err != nil {
			t.Fatalf("deploy %s v1 through a follower: %v", app, err)
		}
		ids = append(ids, r.ID)
	}
	for i, id := range ids {
		if r := c.waitRollout(id, func(r rollout.Rollout) bool { return r.Phase.Final() }); r.Phase != rollout.PhaseSucceeded {
			t.Fatalf("%s v1 ended %s: %s", apps[i], r.Phase, r.Reason)
		}
	}

	loads := map[string]*demo.Load{}
	for _, app := range apps {
		l := &demo.Load{URL: routers[app], Rate: 75}
		l.Start(ctx)
		t.Cleanup(l.Stop)
		loads[app] = l
	}
	time.Sleep(time.Second)

	// v2 of each app, each through another follower; both bake at 20%.
	ids = ids[:0]
	for i, app := range apps {
		r, err := c.clients[[]int{f2, f1}[i]].Deploy(ctx, rollout.DeployRequest{App: app, Version: "v2"})
		if err != nil {
			t.Fatalf("deploy %s v2 through a follower: %v", app, err)
		}
		ids = append(ids, r.ID)
	}
	canary := map[string][]int{}
	for i, id := range ids {
		r := c.waitRollout(id, func(r rollout.Rollout) bool { return r.Weight == 20 && r.Analysis != nil })
		canary[apps[i]] = []int{r.New[0].PID, r.New[1].PID}
	}

	killed := time.Now()
	c.servers[lead].kill9()
	lead2, term2 := c.leader(term, 20*time.Second)
	failover := time.Since(killed)
	t.Logf("kill -9 of the leader s%d (term %d) with a canary of each of 2 apps mid-bake: s%d leads in term %d after %s (lease 2s)",
		lead+1, term, lead2+1, term2, failover.Round(10*time.Millisecond))
	if failover > 10*time.Second {
		t.Errorf("failover took %s, want within 10s", failover)
	}
	for i, id := range ids {
		final := c.waitRollout(id, func(r rollout.Rollout) bool { return r.Phase.Final() })
		if final.Phase != rollout.PhaseSucceeded {
			t.Fatalf("after the failover %s v2 ended %s: %s", apps[i], final.Phase, final.Reason)
		}
	}
	t.Logf("both rollouts promoted %s after the kill", time.Since(killed).Round(10*time.Millisecond))
	time.Sleep(500 * time.Millisecond)
	for _, app := range apps {
		loads[app].Stop()
		if fails := loads[app].Failures(); len(fails) != 0 {
			t.Errorf("%s: %d of %d user requests failed across the failover, first %+v", app, len(fails), loads[app].Total(), fails[0])
		} else {
			t.Logf("%s: 0 of %d user requests failed", app, loads[app].Total())
		}
	}

	// Each app's two canary processes run, and nothing else.
	pids := map[string][]int{}
	for _, inst := range registered(t, c.plane) {
		if inst.Version != "v2" {
			t.Fatalf("instance %s of %s %s still runs after the rollouts", inst.ID, inst.App, inst.Version)
		}
		pids[inst.App] = append(pids[inst.App], inst.PID)
	}
	for _, app := range apps {
		slices.Sort(pids[app])
		slices.Sort(canary[app])
		if !slices.Equal(pids[app], canary[app]) {
			t.Errorf("%s: running v2 pids %v, want the canary's %v", app, pids[app], canary[app])
		}
		events := c.auditOfApp(app, "v2")
		seen := map[string]int{}
		for _, e := range events[audit.ActionStep] {
			seen[e.Data["step"]]++
		}
		if len(seen) == 0 {
			t.Errorf("%s: no step of v2 in the audit log", app)
		}
		for step, n := range seen {
			if n != 1 {
				t.Errorf("%s: step %s entered %d times in the audit log, want once", app, step, n)
			}
		}
		if len(events[audit.ActionDeploy]) != 1 || len(events[audit.ActionSucceed]) != 1 {
			t.Errorf("%s: %d deploys, %d successes of v2 in the audit log, want one each", app, len(events[audit.ActionDeploy]), len(events[audit.ActionSucceed]))
		}
	}
	chain, err := c.clients[lead2].AuditChain(ctx, 1, 1000)
	if err != nil {
		t.Fatal(err)
	}
	if err := audit.Verify(chain); err != nil {
		t.Fatalf("audit chain after the failover: %v", err)
	}
}

// configRevisionEverywhere polls every live server until each runs config
// revision rev and manages app, and returns how long that took.
func (c *haCluster) configRevisionEverywhere(rev int64, app string, within time.Duration) time.Duration {
	c.t.Helper()
	start := time.Now()
	for _, i := range c.alive() {
		for {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			st, err := c.clients[i].Status(ctx, app)
			cancel()
			if err == nil && st.ControlPlane != nil && st.ControlPlane.ConfigRevision == rev {
				break
			}
			if time.Since(start) > within {
				c.t.Fatalf("s%d does not run config revision %d with %s within %s: %+v, %v", i+1, rev, app, within, st.ControlPlane, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return time.Since(start)
}

// TestE2E_HA_ConfigApplyReachesEveryServer: three servers on one
// PostgreSQL run one config, kept as revisions in the store. The first
// server records its file as revision 1; `shipgate apply` through a
// follower adds an app: revision 2, which every server runs within a
// second or so, and the leader drives the new app (a deploy of it through
// the other follower succeeds); a config with a problem changes nothing
// anywhere; SIGHUP on a follower reloads its file as revision 3
// everywhere; each apply is audited once, not once per server. A server
// restarted with an old file runs the store's revision, not its file.
func TestE2E_HA_ConfigApplyReachesEveryServer(t *testing.T) {
	shopPort, billingPort := freePort(t), freePort(t)
	quick := "[{weight: 50, bake: 1s}]"
	shopOnly := appYAML("shop", shopPort, quick)
	t.Setenv("SHIPGATE_E2E_APPLY_SECRET", "s3cret")
	c := startHACluster(t, pgtest.Shared(t).NewDatabase(t), shopOnly, shopPort, "--lease-ttl", "2s")
	c.stopAppRouters("shop", "billing")
	ctx := context.Background()
	lead, _ := c.leader(0, 20*time.Second)
	c.configRevisionEverywhere(1, "shop", 10*time.Second)
	f1 := c.follower(lead)
	f2 := c.follower(lead, f1)

	// apply through a follower: billing added, revision 2 everywhere.
	both := shopOnly + "---\n" + appYAML("billing", billingPort, quick)
	applied := time.Now()
	res, err := c.clients[f1].ApplyConfig(ctx, api.ApplyRequest{Files: []api.ConfigFile{{Name: "apps.yaml", Content: both}}, Reason: "add billing"})
	if err != nil {
		t.Fatalf("apply through follower s%d: %v", f1+1, err)
	}
	if res.Revision != 2 || !slices.Equal(res.Added, []string{"billing"}) {
		t.Fatalf("apply = %+v; want revision 2, billing added", res)
	}
	c.configRevisionEverywhere(2, "billing", 15*time.Second)
	t.Logf("an apply through follower s%d: every server runs revision 2 (billing added) %s after it was sent", f1+1, time.Since(applied).Round(time.Millisecond))

	// The leader drives billing: a deploy through the other follower.
	r, err := c.clients[f2].Deploy(ctx, rollout.DeployRequest{App: "billing", Version: "v1"})
	if err != nil {
		t.Fatalf("deploy billing through follower s%d: %v", f2+1, err)
	}
	if r = c.waitRollout(r.ID, func(r rollout.Rollout) bool { return r.Phase.Final() }); r.Phase != rollout.PhaseSucceeded {
		t.Fatalf("billing v1 ended %s: %s", r.Phase, r.Reason)
	}

	// A config with a problem: refused, revision 2 everywhere still.
	if _, err := c.clients[f2].ApplyConfig(ctx, api.ApplyRequest{Files: []api.ConfigFile{{Name: "bad.yaml", Content: "app: shop\nstrategy: {canary: {steps: nope}}\n"}}}); err == nil {
		t.Fatal("a config with a problem was applied")
	}

	// SIGHUP on a follower: its file (now shop and billing, billing's
	// bake longer) becomes revision 3 everywhere.
	changed := shopOnly + "---\n" + appYAML("billing", billingPort, "[{weight: 50, bake: 2s}]")
	writeFile(t, c.servers[f2].cfg, changed)
	hup := time.Now()
	if err := syscall.Kill(c.servers[f2].cmd.Process.Pid, syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	c.configRevisionEverywhere(3, "billing", 15*time.Second)
	t.Logf("SIGHUP on follower s%d: every server runs revision 3 %s after the signal", f2+1, time.Since(hup).Round(time.Millisecond))
	for _, i := range c.alive() {
		st, err := c.clients[i].Status(ctx, "shop")
		if err != nil || st.ControlPlane.ConfigPending != 0 {
			t.Errorf("s%d: status %+v, %v; want no revision pending", i+1, st.ControlPlane, err)
		}
	}

	// Each apply once in the audit log, whoever applied it after. (The
	// signalled server audits its reload once done: waited for.)
	revs := map[string]int{}
	for deadline := time.Now().Add(10 * time.Second); revs["3"] == 0 && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		events, err := c.clients[lead].Audit(ctx, audit.Filter{Action: audit.ActionConfigApply})
		if err != nil {
			t.Fatal(err)
		}
		revs = map[string]int{}
		for _, e := range events {
			if e.Outcome == "ok" {
				revs[e.Data["revision"]]++
			}
		}
	}
	if revs["2"] != 1 || revs["3"] != 1 || len(revs) != 2 {
		t.Errorf("config.apply events by revision %v; want revisions 2 and 3 once each", revs)
	}

	// The same files under another name: no new revision, nothing swapped.
	if res, err = c.clients[lead].ApplyConfig(ctx, api.ApplyRequest{Files: []api.ConfigFile{{Name: "same.yaml", Content: changed}}}); err != nil || res.Revision != 3 || len(res.Changed)+len(res.Added)+len(res.Removed) != 0 {
		t.Fatalf("apply of revision 3's files under another name = %+v, %v; want revision 3, nothing changed", res, err)
	}

	// A follower restarted with the old file runs revision 3. (Its
	// environment lacks the webhook secret of the next revision.)
	old := c.servers[f1]
	old.kill9()
	old.cfg = filepath.Join(t.TempDir(), "old.yaml")
	writeFile(t, old.cfg, shopOnly)
	old.env = []string{"SHIPGATE_E2E_APPLY_SECRET="}
	old.start()
	st, err := c.clients[f1].Status(ctx, "billing")
	if err != nil || st.ControlPlane == nil || st.ControlPlane.ConfigRevision != 3 {
		t.Fatalf("s%d restarted with a file of shop alone: status of billing %+v, %v; want revision 3", f1+1, st.ControlPlane, err)
	}

	// A revision that one server cannot run (a webhook whose secret its
	// environment lacks): the others run it; that one keeps revision 3,
	// and its status says which revision it could not apply, and why.
	withHook := shopOnly + `notifications:
  webhooks:
    - {name: ops, url: "http://127.0.0.1:1/hook", secret_env: SHIPGATE_E2E_APPLY_SECRET}
---
` + appYAML("billing", billingPort, "[{weight: 50, bake: 2s}]")
	if res, err = c.clients[f2].ApplyConfig(ctx, api.ApplyRequest{Files: []api.ConfigFile{{Name: "apps.yaml", Content: withHook}}, Reason: "page ops"}); err != nil || res.Revision != 4 {
		t.Fatalf("apply of a webhook through s%d = %+v, %v; want revision 4", f2+1, res, err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		st, err = c.clients[f1].Status(ctx, "shop")
		if err == nil && st.ControlPlane.ConfigPending == 4 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("s%d's status never said revision 4 was not applied: %+v, %v", f1+1, st.ControlPlane, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if cp := st.ControlPlane; cp.ConfigRevision != 3 || !strings.Contains(cp.ConfigError, "SHIPGATE_E2E_APPLY_SECRET is not set") {
		t.Errorf("s%d: %+v; want revision 3 running and the missing secret named", f1+1, cp)
	}
	if run, pend := c.gauge(f1, "shipgate_config_revision"), c.gauge(f1, "shipgate_config_revision_pending"); run != "3" || pend != "4" {
		t.Errorf("s%d /metrics: shipgate_config_revision %s, shipgate_config_revision_pending %s; want 3 and 4", f1+1, run, pend)
	}
	for _, i := range []int{lead, f2} {
		for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			st, err := c.clients[i].Status(ctx, "shop")
			if err == nil && st.ControlPlane.ConfigRevision == 4 && st.ControlPlane.ConfigPending == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("s%d: %+v, %v; want revision 4", i+1, st.ControlPlane, err)
			}
		}
		if run, pend := c.gauge(i, "shipgate_config_revision"), c.gauge(i, "shipgate_config_revision_pending"); run != "4" || pend != "0" {
			t.Errorf("s%d /metrics: shipgate_config_revision %s, shipgate_config_revision_pending %s; want 4 and 0", i+1, run, pend)
		}
	}

	// The leader dies: the next one drives billing, the app a revision
	// added, too (its canary judged on the load's evidence).
	load := &demo.Load{URL: fmt.Sprintf("http://127.0.0.1:%d", billingPort), Rate: 100}
	load.Start(ctx)
	t.Cleanup(load.Stop)
	_, term := c.leader(0, time.Second)
	c.servers[lead].kill9()
	lead2, _ := c.leader(term, 20*time.Second)
	if r, err = c.clients[c.follower(lead2)].Deploy(ctx, rollout.DeployRequest{App: "billing", Version: "v2"}); err != nil {
		t.Fatalf("deploy billing v2 after the failover: %v", err)
	}
	if r = c.waitRollout(r.ID, func(r rollout.Rollout) bool { return r.Phase.Final() }); r.Phase != rollout.PhaseSucceeded {
		t.Fatalf("billing v2 after the failover to s%d ended %s: %s", lead2+1, r.Phase, r.Reason)
	}
	load.Stop()
	if fails := load.Failures(); len(fails) != 0 {
		t.Errorf("%d of billing's user requests failed, first %+v", len(fails), fails[0])
	}
}
