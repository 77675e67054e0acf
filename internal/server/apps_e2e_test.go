package server_test

// Several apps per server, and reloading them without a restart (issue
// 10, "also expected by teams coming from other tools").

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/shipgate/shipgate/internal/api"
	"github.com/shipgate/shipgate/internal/audit"
	"github.com/shipgate/shipgate/internal/config"
	"github.com/shipgate/shipgate/internal/demo"
	"github.com/shipgate/shipgate/internal/rollout"
	"github.com/shipgate/shipgate/internal/server"
)

// appYAML is one app file: both apps run the example shop, each on its
// own port, and both have an environment called production.
func appYAML(app string, port int, steps string) string {
	return fmt.Sprintf(`app: %s
`+baseVars+baseRun+`environments:
  production:
    listen: 127.0.0.1:%d
    sticky: {header: X-User-ID}
strategy:
  canary:
    steps: %s
    scale_down_delay: 1s
`+baseAnalysis, app, shopBin, port, steps)
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// startDir starts a control plane on the directory of app files dir.
func startDir(t *testing.T, dir string) (*server.ControlPlane, *syncBuffer) {
	t.Helper()
	logs := &syncBuffer{}
	cp, err := server.Start(context.Background(), server.Options{
		ConfigPath: dir, DataDir: filepath.Join(t.TempDir(), "data"), Listen: "127.0.0.1:0", Tick: 50 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("server logs:\n%s", logs.String())
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := cp.StopInstances(ctx); err != nil {
			t.Errorf("stop instances: %v", err)
		}
		_ = cp.Close(ctx)
	})
	return cp, logs
}

// waitFinal waits for a rollout to end.
func waitFinal(t *testing.T, cp *server.ControlPlane, id int64) rollout.Rollout {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for {
		r, err := cp.Apps.GetRollout(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if r.Phase.Final() {
			return r
		}
		if time.Now().After(deadline) {
			t.Fatalf("rollout %d of %s did not end in 90s: step %d", id, r.App, r.StepIndex)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// deployBoth deploys a version of each app at the same time and waits
// for both rollouts to end.
func deployBoth(t *testing.T, cp *server.ControlPlane, versions map[string]string) map[string]rollout.Rollout {
	t.Helper()
	var (
		mu  sync.Mutex
		wg  sync.WaitGroup
		out = map[string]rollout.Rollout{}
	)
	for app, version := range versions {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := cp.Apps.Deploy(context.Background(), rollout.DeployRequest{App: app, Version: version, Actor: "user:test"})
			if err != nil {
				t.Errorf("deploy %s %s: %v", app, version, err)
				return
			}
			r = waitFinal(t, cp, r.ID)
			mu.Lock()
			out[app] = r
			mu.Unlock()
		}()
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	return out
}

// apiGet sends an authenticated GET and returns the status and body.
func apiGet(t *testing.T, cp *server.ControlPlane, path string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, cp.APIURL+path, nil)
	req.Header.Set("Authorization", "Bearer "+cp.AdminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// servedBy sends n requests to router and returns the versions that
// answered them.
func servedBy(t *testing.T, router string, n int) map[string]int {
	t.Helper()
	got := map[string]int{}
	for i := range n {
		req, _ := http.NewRequest(http.MethodGet, "http://"+router+"/products", nil)
		req.Header.Set("X-User-ID", fmt.Sprintf("u-%d", i))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		got[resp.Header.Get(demo.VersionHeader)]++
	}
	return got
}

// TestE2E_TwoApps runs two apps in one server, from a directory of app
// files, both with a production environment: each is deployed, at the
// same time as the other, under its own load, through its own router;
// each app's API routes answer for it alone; an unknown app is a 404
// naming it.
func TestE2E_TwoApps(t *testing.T) {
	dir := t.TempDir()
	shopPort, billingPort := freePort(t), freePort(t)
	writeFile(t, filepath.Join(dir, "shop.yaml"), appYAML("shop", shopPort, "[{weight: 50, bake: 3s}]"))
	writeFile(t, filepath.Join(dir, "billing.yaml"), appYAML("billing", billingPort, "[{weight: 50, bake: 3s}]"))
	cp, _ := startDir(t, dir)
	if got, want := cp.Apps.AppNames(), []string{"billing", "shop"}; !slices.Equal(got, want) {
		t.Fatalf("apps %v, want %v", got, want)
	}
	for app, r := range deployBoth(t, cp, map[string]string{"shop": "s1", "billing": "b1"}) {
		if r.Phase != rollout.PhaseSucceeded {
			t.Fatalf("%s first deploy: %s (%s)", app, r.Phase, r.Reason)
		}
	}
	shopRouter, billingRouter := cp.Apps.RouterAddr("shop", "production"), cp.Apps.RouterAddr("billing", "production")
	if shopRouter != fmt.Sprintf("127.0.0.1:%d", shopPort) || billingRouter != fmt.Sprintf("127.0.0.1:%d", billingPort) {
		t.Fatalf("routers %s and %s, want each app's own port", shopRouter, billingRouter)
	}
	shopLoad := &demo.Load{URL: "http://" + shopRouter, Rate: 100}
	billingLoad := &demo.Load{URL: "http://" + billingRouter, Rate: 100}
	shopLoad.Start(context.Background())
	billingLoad.Start(context.Background())
	rs := deployBoth(t, cp, map[string]string{"shop": "s2", "billing": "b2"})
	shopLoad.Stop()
	billingLoad.Stop()
	for app, r := range rs {
		if r.Phase != rollout.PhaseSucceeded {
			t.Fatalf("%s canary: %s (%s)", app, r.Phase, r.Reason)
		}
	}
	if a, b := rs["shop"], rs["billing"]; a.FinishedAt.Before(b.CreatedAt) || b.FinishedAt.Before(a.CreatedAt) {
		t.Errorf("the two rollouts did not overlap: shop %s–%s, billing %s–%s", a.CreatedAt, a.FinishedAt, b.CreatedAt, b.FinishedAt)
	}
	for name, l := range map[string]*demo.Load{"shop": shopLoad, "billing": billingLoad} {
		if fails := l.Failures(); len(fails) != 0 {
			t.Errorf("%s: %d user requests failed, first %+v", name, len(fails), fails[0])
		}
	}
	// Each router served its own app's versions only.
	if c := shopLoad.Counts(); c["b1"].Served+c["b2"].Served != 0 || c["s2"].Served == 0 {
		t.Errorf("shop's router served %+v", c)
	}
	if c := billingLoad.Counts(); c["s1"].Served+c["s2"].Served != 0 || c["b2"].Served == 0 {
		t.Errorf("billing's router served %+v", c)
	}
	if got := servedBy(t, billingRouter, 20); got["b2"] != 20 {
		t.Errorf("billing after its rollout: %v, want b2 only", got)
	}

	// The API, per app.
	for app, version := range map[string]string{"shop": "s2", "billing": "b2"} {
		code, body := apiGet(t, cp, "/v1/apps/"+app+"/status")
		var st rollout.AppStatus
		if err := json.Unmarshal([]byte(body), &st); code != 200 || err != nil || st.App != app || st.Envs[0].State == nil || st.Envs[0].State.Stable != version {
			t.Errorf("status of %s: %d %s, want %s stable", app, code, body, version)
		}
		code, body = apiGet(t, cp, "/v1/apps/"+app+"/rollouts")
		var hist []rollout.Rollout
		if err := json.Unmarshal([]byte(body), &hist); code != 200 || err != nil || len(hist) != 2 || hist[0].App != app {
			t.Errorf("history of %s: %d %s, want its 2 rollouts", app, code, body)
		}
	}
	if code, body := apiGet(t, cp, "/v1/apps/nope/status"); code != 404 || !strings.Contains(body, `app \"nope\" is not managed by this server (it manages \"billing\", \"shop\")`) {
		t.Errorf("unknown app: %d %s, want 404 naming it and the managed apps", code, body)
	}
	if code, body := apiGet(t, cp, "/v1/status"); code != 404 || !strings.Contains(body, "several apps") {
		t.Errorf("default status with two apps: %d %s, want 404 asking for an app", code, body)
	}
	if code, body := apiGet(t, cp, "/metrics"); code != 200 || !strings.Contains(body, `app="billing"`) || !strings.Contains(body, `app="shop"`) {
		t.Errorf("metrics: %d, want both apps' routers labelled by app", code)
	}
}

// TestE2E_ApplyAndReload changes the apps of a running server: a broken
// file refuses the whole reload and changes nothing; an added app gets its
// router; a rollout in progress keeps the plan it was deployed with when
// its app's config changes; removing an app with a live rollout is
// refused; removing an app through shipgate apply stops its router.
func TestE2E_ApplyAndReload(t *testing.T) {
	dir := t.TempDir()
	shopPort, billingPort := freePort(t), freePort(t)
	shopFile, billingFile := filepath.Join(dir, "shop.yaml"), filepath.Join(dir, "billing.yaml")
	writeFile(t, shopFile, appYAML("shop", shopPort, "[{weight: 20, bake: 4s}, {weight: 50, bake: 4s}]"))
	cp, _ := startDir(t, dir)
	ctx := context.Background()
	if r := deployBoth(t, cp, map[string]string{"shop": "s1"})["shop"]; r.Phase != rollout.PhaseSucceeded {
		t.Fatalf("s1: %s (%s)", r.Phase, r.Reason)
	}

	// A broken new app refuses the whole reload.
	writeFile(t, billingFile, strings.Replace(appYAML("billing", billingPort, "[{weight: 50, bake: 3s}]"), "instances: 2", "instancez: 2", 1))
	_, err := cp.Reload(ctx, "user:test", "add billing")
	var cerr *config.Error
	if !errors.As(err, &cerr) || !strings.Contains(err.Error(), billingFile+":") || !strings.Contains(err.Error(), "run.instancez") {
		t.Fatalf("reload of a broken file: %v, want the problem with file:line and field", err)
	}
	if got := cp.Apps.AppNames(); !slices.Equal(got, []string{"shop"}) {
		t.Fatalf("apps after a refused reload: %v, want shop alone", got)
	}
	if conn, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", billingPort)); err == nil {
		conn.Close()
		t.Fatal("a router listens for billing after a refused reload")
	}

	// A router that cannot start (its port is taken) refuses the whole
	// reload too: the router already started for another new app stops.
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	takenPort, freeOne := taken.Addr().(*net.TCPAddr).Port, freePort(t)
	writeFile(t, billingFile, appYAML("billing", freeOne, "[{weight: 50, bake: 3s}]"))
	writeFile(t, filepath.Join(dir, "zzz.yaml"), appYAML("zzz", takenPort, "[{weight: 50, bake: 3s}]"))
	_, err = cp.Reload(ctx, "user:test", "add two")
	taken.Close()
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("127.0.0.1:%d", takenPort)) {
		t.Fatalf("reload with a taken port: %v, want an error naming the address", err)
	}
	if got := cp.Apps.AppNames(); !slices.Equal(got, []string{"shop"}) {
		t.Fatalf("apps after a refused reload: %v, want shop alone", got)
	}
	if conn, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", freeOne)); err == nil {
		conn.Close()
		t.Fatal("the router started for billing still listens after the reload was refused")
	}
	if err := os.Remove(filepath.Join(dir, "zzz.yaml")); err != nil {
		t.Fatal(err)
	}

	// Fixed, it is added: its router starts and it deploys.
	writeFile(t, billingFile, appYAML("billing", billingPort, "[{weight: 50, bake: 3s}]"))
	res, err := cp.Reload(ctx, "user:test", "add billing")
	if err != nil || !slices.Equal(res.Added, []string{"billing"}) || !slices.Equal(res.Unchanged, []string{"shop"}) {
		t.Fatalf("reload: %+v, %v; want billing added, shop unchanged", res, err)
	}
	if r := deployBoth(t, cp, map[string]string{"billing": "b1"})["billing"]; r.Phase != rollout.PhaseSucceeded {
		t.Fatalf("b1: %s (%s)", r.Phase, r.Reason)
	}
	if got := servedBy(t, fmt.Sprintf("127.0.0.1:%d", billingPort), 10); got["b1"] != 10 {
		t.Fatalf("billing's router after the reload served %v, want b1", got)
	}

	// A rollout in progress keeps its plan when its app's config changes.
	load := &demo.Load{URL: fmt.Sprintf("http://127.0.0.1:%d", shopPort), Rate: 100}
	load.Start(ctx)
	defer load.Stop()
	ro, err := cp.Apps.Deploy(ctx, rollout.DeployRequest{App: "shop", Version: "s2", Actor: "user:test"})
	if err != nil {
		t.Fatal(err)
	}
	// What the rollout still reads as it goes (the instance template)
	// cannot change under it.
	writeFile(t, shopFile, strings.Replace(appYAML("shop", shopPort, "[{weight: 20, bake: 4s}, {weight: 50, bake: 4s}]"), `LATENCY: "20ms"`, `LATENCY: "30ms"`, 1))
	_, err = cp.Reload(ctx, "user:test", "slower")
	if !errors.Is(err, rollout.ErrConflict) || !strings.Contains(err.Error(), fmt.Sprintf(`app "shop": vars would change under its rollout %d of s2`, ro.ID)) {
		t.Fatalf("changing vars mid-rollout: %v, want a conflict naming vars and the rollout", err)
	}
	writeFile(t, shopFile, appYAML("shop", shopPort, "[{weight: 5, bake: 1s}, {weight: 10, bake: 1s}, {weight: 90, bake: 1s}]"))
	if res, err = cp.Reload(ctx, "user:test", "new canary steps"); err != nil || !slices.Equal(res.Changed, []string{"shop"}) {
		t.Fatalf("reload during a rollout: %+v, %v; want shop changed", res, err)
	}
	// Removing the app while it rolls out is refused, naming the rollout.
	if err := os.Rename(shopFile, shopFile+".off"); err != nil {
		t.Fatal(err)
	}
	_, err = cp.Reload(ctx, "user:test", "drop shop")
	if !errors.Is(err, rollout.ErrConflict) || !strings.Contains(err.Error(), fmt.Sprintf("rollout %d of s2", ro.ID)) {
		t.Fatalf("removing an app mid-rollout: %v, want a conflict naming rollout %d", err, ro.ID)
	}
	if err := os.Rename(shopFile+".off", shopFile); err != nil {
		t.Fatal(err)
	}
	r := waitFinal(t, cp, ro.ID)
	load.Stop()
	if r.Phase != rollout.PhaseSucceeded {
		t.Fatalf("s2 after the reload: %s (%s)", r.Phase, r.Reason)
	}
	var weights []int
	for _, s := range r.Steps {
		if s.Kind == rollout.StepWeight {
			weights = append(weights, s.Weight)
		}
	}
	if !slices.Equal(weights, []int{20, 50}) {
		t.Errorf("s2 ran weights %v, want the plan it was deployed with, [20 50]", weights)
	}
	if fails := load.Failures(); len(fails) != 0 {
		t.Errorf("%d user requests failed across the reload, first %+v", len(fails), fails[0])
	}
	// The next deploy is planned with the new config.
	s3, err := cp.Apps.Deploy(ctx, rollout.DeployRequest{App: "shop", Version: "s3", Actor: "user:test"})
	if err != nil {
		t.Fatal(err)
	}
	weights = weights[:0]
	for _, s := range s3.Steps {
		if s.Kind == rollout.StepWeight {
			weights = append(weights, s.Weight)
		}
	}
	if !slices.Equal(weights, []int{5, 10, 90}) {
		t.Errorf("s3 planned weights %v, want the new config's [5 10 90]", weights)
	}

	// shipgate apply, over the API: billing removed.
	shopYAML, err := os.ReadFile(shopFile)
	if err != nil {
		t.Fatal(err)
	}
	client := api.NewClient(cp.APIURL, cp.AdminToken, nil)
	res, err = client.ApplyConfig(ctx, api.ApplyRequest{Files: []api.ConfigFile{{Name: shopFile, Content: string(shopYAML)}}, Reason: "billing moved out"})
	if err != nil || !slices.Equal(res.Removed, []string{"billing"}) || !slices.Equal(res.Apps, []string{"shop"}) {
		t.Fatalf("apply without billing: %+v, %v", res, err)
	}
	if conn, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", billingPort)); err == nil {
		conn.Close()
		t.Error("billing's router still listens after billing was removed")
	}
	if code, _ := apiGet(t, cp, "/v1/apps/billing/status"); code != 404 {
		t.Errorf("status of the removed app: %d, want 404", code)
	}
	// A broken apply is a 400 listing the problem, and changes nothing.
	_, err = client.ApplyConfig(ctx, api.ApplyRequest{Files: []api.ConfigFile{{Name: "/x/bad.yaml", Content: "app: Bad\n"}}})
	var ae *api.APIError
	if !errors.As(err, &ae) || ae.Status != 400 || !strings.Contains(ae.Message, "/x/bad.yaml:1") {
		t.Errorf("broken apply: %v, want a 400 naming /x/bad.yaml:1", err)
	}
	if got := cp.Apps.AppNames(); !slices.Equal(got, []string{"shop"}) {
		t.Errorf("apps after a broken apply: %v", got)
	}
	evs, err := cp.Store.ListAudit(ctx, audit.Filter{Action: audit.ActionConfigApply})
	if err != nil {
		t.Fatal(err)
	}
	var outcomes []string
	for i := len(evs) - 1; i >= 0; i-- {
		outcomes = append(outcomes, evs[i].Outcome)
	}
	if want := []string{"refused", "refused", "ok", "refused", "ok", "refused", "ok", "refused"}; !slices.Equal(outcomes, want) {
		t.Errorf("config.apply outcomes %v, want %v", outcomes, want)
	}
	if evs[1].Actor != "user:admin" || evs[1].Reason != "billing moved out" || evs[1].Data["removed"] != "billing" {
		t.Errorf("apply event %+v, want actor, reason and what was removed", evs[1])
	}
}

// TestE2E_SIGHUPReload adds an app to a running shipgate server process
// by editing its config directory and sending it SIGHUP.
func TestE2E_SIGHUPReload(t *testing.T) {
	dir := t.TempDir()
	apps := filepath.Join(dir, "apps")
	if err := os.Mkdir(apps, 0o700); err != nil {
		t.Fatal(err)
	}
	shopPort, billingPort := freePort(t), freePort(t)
	writeFile(t, filepath.Join(apps, "shop.yaml"), appYAML("shop", shopPort, "[{weight: 50, bake: 3s}]"))
	s := &serverProc{t: t, cfg: apps, data: filepath.Join(dir, "data"),
		api: fmt.Sprintf("http://127.0.0.1:%d", freePort(t)), logPath: filepath.Join(dir, "server.log")}
	s.cmd = nil
	cmd := exec.Command(shipgateBin, "--data", s.data, "server", "-c", apps, "--in-process-routers", "--listen", strings.TrimPrefix(s.api, "http://"))
	logf, err := os.Create(s.logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
	})
	token := waitForFile(t, filepath.Join(s.data, "token"))
	client := api.NewClient(s.api, strings.TrimSpace(token), nil)
	waitForCond(t, "the server answers", func() bool { _, err := client.Status(context.Background(), "shop"); return err == nil })

	writeFile(t, filepath.Join(apps, "billing.yaml"), appYAML("billing", billingPort, "[{weight: 50, bake: 3s}]"))
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitForCond(t, "billing managed after SIGHUP", func() bool { _, err := client.Status(context.Background(), "billing"); return err == nil })
	conn, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", billingPort))
	if err != nil {
		t.Fatalf("billing's router does not listen after SIGHUP: %v", err)
	}
	conn.Close()
	// The apply is audited once it is done, after billing is served:
	// waited for, not assumed.
	var evs []audit.Event
	waitForCond(t, "the SIGHUP audited", func() bool {
		evs, err = client.Audit(context.Background(), audit.Filter{Action: audit.ActionConfigApply})
		return err == nil && len(evs) > 0
	})
	if len(evs) != 1 || evs[0].Actor != "signal:SIGHUP" || evs[0].Data["added"] != "billing" {
		t.Fatalf("audit after SIGHUP: %+v", evs)
	}
}

func waitForFile(t *testing.T, path string) string {
	t.Helper()
	var b []byte
	waitForCond(t, path, func() bool {
		var err error
		b, err = os.ReadFile(path)
		return err == nil && len(b) > 0
	})
	return string(b)
}

func waitForCond(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 30s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestE2E_TwoAppsRouterProcesses runs two apps that both have a
// production environment with the routers as processes of their own: each
// app's router keeps its files apart (billing, added by SIGHUP, in
// <data>/apps/billing),
// both survive the server, a restarted server reuses both, and shipgate
// down stops both.
func TestE2E_TwoAppsRouterProcesses(t *testing.T) {
	dir := t.TempDir()
	apps := filepath.Join(dir, "apps")
	if err := os.Mkdir(apps, 0o700); err != nil {
		t.Fatal(err)
	}
	ports := map[string]int{"shop": freePort(t), "billing": freePort(t)}
	writeFile(t, filepath.Join(apps, "shop.yaml"), appYAML("shop", ports["shop"], "[{weight: 50, bake: 3s}]"))
	s := &serverProc{t: t, cfg: apps, data: filepath.Join(dir, "data"),
		api: fmt.Sprintf("http://127.0.0.1:%d", freePort(t)), logPath: filepath.Join(dir, "server.log")}
	down := func() (int, string) {
		cmd := exec.Command(shipgateBin, "--data", s.data, "down")
		out, _ := cmd.CombinedOutput()
		return cmd.ProcessState.ExitCode(), string(out)
	}
	t.Cleanup(func() {
		if s.cmd != nil && s.cmd.ProcessState == nil {
			s.kill9()
		}
		_, _ = down()
		if t.Failed() {
			b, _ := os.ReadFile(s.logPath)
			t.Logf("server log:\n%s", b)
		}
	})
	s.start()
	token := waitForFile(t, filepath.Join(s.data, "token"))
	client := api.NewClient(s.api, strings.TrimSpace(token), nil)
	// shop alone first, as a server of before several apps: its router's
	// files are at the top of the data dir. Then billing is added.
	if _, err := os.Stat(filepath.Join(s.data, "router-production.sock")); err != nil {
		t.Fatalf("shop's router socket: %v", err)
	}
	writeFile(t, filepath.Join(apps, "billing.yaml"), appYAML("billing", ports["billing"], "[{weight: 50, bake: 3s}]"))
	if err := s.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitForCond(t, "billing added", func() bool { _, err := client.Status(context.Background(), "billing"); return err == nil })
	versions := map[string]string{"shop": "s1", "billing": "b1"}
	for app, version := range versions {
		ro, err := client.Deploy(context.Background(), rollout.DeployRequest{App: app, Version: version})
		if err != nil {
			t.Fatal(err)
		}
		waitForCond(t, app+" deployed", func() bool {
			r, err := client.GetRollout(context.Background(), ro.ID)
			if err == nil && r.Phase.Final() && r.Phase != rollout.PhaseSucceeded {
				t.Fatalf("%s %s: %s (%s)", app, version, r.Phase, r.Reason)
			}
			return err == nil && r.Phase == rollout.PhaseSucceeded
		})
	}
	check := func(when string) {
		t.Helper()
		for app, version := range versions {
			if got := servedBy(t, fmt.Sprintf("127.0.0.1:%d", ports[app]), 10); got[version] != 10 {
				t.Fatalf("%s: %s's router served %v, want %s", when, app, got, version)
			}
		}
	}
	check("with the server")
	// Both apps have a production: billing's router keeps its files in
	// its own directory; shop's stays where it was, and a restarted
	// server finds it there by its address.
	for _, sock := range []string{filepath.Join(s.data, "router-production.sock"), filepath.Join(s.data, "apps", "billing", "router-production.sock")} {
		if _, err := os.Stat(sock); err != nil {
			t.Errorf("router socket: %v", err)
		}
	}
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	_ = s.cmd.Wait()
	check("server stopped")
	s.start()
	for app := range versions {
		st, err := client.Status(context.Background(), app)
		if err != nil || st.Envs[0].State == nil || st.Envs[0].State.Stable != versions[app] {
			t.Fatalf("status of %s after a restart: %+v, %v", app, st, err)
		}
	}
	check("server restarted")
	if b, _ := os.ReadFile(s.logPath); strings.Count(string(b), "router process already running; reusing it") != 2 {
		t.Errorf("the restarted server did not reuse both routers:\n%s", b)
	}
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	_ = s.cmd.Wait()
	code, out := down()
	// Each router named with its app when it has a directory of its own
	// (it read "stopped the router of production" twice).
	if code != 0 || strings.Count(out, "stopped the router of production (pid") != 1 || strings.Count(out, "stopped the router of billing production (pid") != 1 {
		t.Fatalf("down: exit %d, want both routers stopped, billing's named:\n%s", code, out)
	}
}
