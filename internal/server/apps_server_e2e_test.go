package server_test

// What a server does for all its apps, shown for an app that is not the
// first: the dashboard, the webhooks, DORA and the weekly report, and
// route retirements.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/shipgate/shipgate/internal/auth"
	"github.com/shipgate/shipgate/internal/cli"
	"github.com/shipgate/shipgate/internal/notify"
	"github.com/shipgate/shipgate/internal/report"
	"github.com/shipgate/shipgate/internal/retire"
	"github.com/shipgate/shipgate/internal/rollout"
	"github.com/shipgate/shipgate/internal/server"
	"github.com/shipgate/shipgate/internal/sqlite"
)

// TestE2E_TwoAppsServerFeatures runs billing (the first app, whose file
// holds the server's notifications and retire sections) and shop, which
// gets a webhook of its own by a reload, and deploys both: shop's events
// reach the server's webhook and its own, which gets none of billing's;
// its DORA numbers and weekly report are there, its dashboard page follows
// it, its routes are counted and one is retired on its router alone; the
// route counters of a server of before several apps are billing's.
func TestE2E_TwoAppsServerFeatures(t *testing.T) {
	ctx := context.Background()
	hook, shopHook := startReceiver(t, "127.0.0.1:0", false), startReceiver(t, "127.0.0.1:0", false)
	dir, data := t.TempDir(), filepath.Join(t.TempDir(), "data")
	shopPort, billingPort := freePort(t), freePort(t)
	writeFile(t, filepath.Join(dir, "shop.yaml"), appYAML("shop", shopPort, "[{weight: 50, bake: 1s}]"))
	writeFile(t, filepath.Join(dir, "billing.yaml"), appYAML("billing", billingPort, "[{weight: 50, bake: 1s}]")+fmt.Sprintf(`notifications:
  webhooks:
    - {name: ops, url: %q}
retire:
  cycle: 1s
  watch: 60s
`, hook.url()))

	// The counters of a server of before several apps: by environment.
	legacy := time.Now().Add(-48 * time.Hour).UTC()
	if err := os.MkdirAll(data, 0o700); err != nil {
		t.Fatal(err)
	}
	st, err := sqlite.Open(ctx, filepath.Join(data, "shipgate.db"))
	if err != nil {
		t.Fatal(err)
	}
	if err := st.TrackRoutes(ctx, "production", legacy); err != nil {
		t.Fatal(err)
	}
	if err := st.AddRouteUsage(ctx, "production", map[string]retire.RouteCount{"/old": {Count: 3, Last: legacy}}); err != nil {
		t.Fatal(err)
	}
	// And a route it retired, of no app.
	gone := retire.Retirement{Kind: retire.KindRoute, Env: "production", Subject: "/gone", Actor: "user:ana", Stage: retire.StageDeleted, StartedAt: legacy}
	if err := st.Save(ctx, &gone, "user:ana", "retire.delete", "deleted"); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}

	logs := &syncBuffer{}
	cp, err := server.Start(ctx, server.Options{
		ConfigPath: dir, DataDir: data, Listen: "127.0.0.1:0", Tick: 50 * time.Millisecond, RetirePoll: 50 * time.Millisecond,
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
		_ = cp.StopInstances(ctx)
		_ = cp.Close(ctx)
	})
	if got, want := cp.Apps.AppNames(), []string{"billing", "shop"}; !slices.Equal(got, want) {
		t.Fatalf("apps %v, want %v", got, want)
	}
	started := time.Now()
	// shop declares a webhook of its own (the reload starts it) and a
	// test level of its own.
	writeFile(t, filepath.Join(dir, "shop.yaml"), appYAML("shop", shopPort, "[{weight: 50, bake: 1s}]")+fmt.Sprintf(`notifications:
  webhooks:
    - {name: shop-team, url: %q}
tests:
  levels:
    contract: ["*pact*"]
`, shopHook.url()))
	if res, err := cp.Reload(ctx, "user:test", "shop's own webhook"); err != nil || !slices.Equal(res.Changed, []string{"shop"}) {
		t.Fatalf("reload: %+v, %v", res, err)
	}
	for app, r := range deployBoth(t, cp, map[string]string{"shop": "s1", "billing": "b1"}) {
		if r.Phase != rollout.PhaseSucceeded {
			t.Fatalf("%s: %s (%s)", app, r.Phase, r.Reason)
		}
	}
	shopRouter, billingRouter := "http://"+cp.Apps.RouterAddr("shop", "production"), "http://"+cp.Apps.RouterAddr("billing", "production")

	// Notifications: every app's rollout reaches the server's webhook,
	// shop's only shop's own.
	succeeded := func(h *hookReceiver, app string) bool {
		return slices.ContainsFunc(h.byType(notify.RolloutSucceeded), func(ev notify.Event) bool { return ev.App == app })
	}
	waitUntil(t, "the server's webhook gets both apps' rollout.succeeded", 20*time.Second, func() bool {
		return succeeded(hook, "shop") && succeeded(hook, "billing")
	})
	waitUntil(t, "shop's webhook gets shop's rollout.succeeded", 20*time.Second, func() bool { return succeeded(shopHook, "shop") })
	ds, err := cp.Store.ListNotifications(ctx, "", 1000)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range ds {
		if d.Webhook == "shop-team" && !strings.Contains(string(d.Payload), `"app":"shop"`) {
			t.Fatalf("shop's webhook was queued %s", d.Payload)
		}
	}

	// DORA and the weekly report, for shop named, through the API and
	// the command line.
	code, body := apiGet(t, cp, "/v1/dora?app=shop&env=production")
	var v report.View
	if err := json.Unmarshal([]byte(body), &v); code != 200 || err != nil || len(v.Summaries) != 1 || v.Summaries[0].App != "shop" || v.Summaries[0].Keys.Frequency.Deploys != 1 {
		t.Fatalf("GET /v1/dora?app=shop: %d %s, want shop's one deploy", code, body)
	}
	var out, errOut strings.Builder
	if c := cli.Main(ctx, []string{"--server", cp.APIURL, "--token", cp.AdminToken, "dora", "--app", "shop", "-o", "json"}, strings.NewReader(""), &out, &errOut); c != 0 ||
		!strings.Contains(out.String(), `"app": "shop"`) || strings.Contains(out.String(), `"app": "billing"`) {
		t.Fatalf("shipgate dora --app shop: exit %d\n%s%s", c, out.String(), errOut.String())
	}
	code, body = apiGet(t, cp, "/v1/report?week=this")
	var rep report.Report
	if err := json.Unmarshal([]byte(body), &rep); code != 200 || err != nil || !slices.ContainsFunc(rep.Apps, func(a report.AppWeek) bool { return a.App == "shop" && a.Keys.Frequency.Deploys == 1 }) {
		t.Fatalf("GET /v1/report: %d %s, want shop's week", code, body)
	}

	// Test results of shop's CI, classified by shop's own levels.
	junit := `<testsuite name="orders" tests="1"><testcase classname="shop.pact.Orders" name="creates" time="0.1"/></testsuite>`
	upload, _ := json.Marshal(map[string]any{"commit": "sha-s1", "reports": []string{junit}})
	req, _ := http.NewRequest(http.MethodPost, cp.APIURL+"/v1/apps/shop/releases/s1/tests", strings.NewReader(string(upload)))
	req.Header.Set("Authorization", "Bearer "+cp.AdminToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(b), `"contract":{"total":1`) {
		t.Fatalf("shop's test upload: %d %s, want its one test at shop's contract level", resp.StatusCode, b)
	}
	if code, body := apiGet(t, cp, "/v1/apps/nope/tests/flaky"); code != http.StatusNotFound || !strings.Contains(body, `it manages \"billing\", \"shop\"`) {
		t.Fatalf("flaky tests of an unknown app: %d %s", code, body)
	}

	// The dashboard: shop's page, reachable by its URL.
	secret, err := auth.NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	if err := cp.Store.CreateToken(ctx, auth.Token{Name: "vic", Role: auth.RoleViewer}, auth.Hash(secret)); err != nil {
		t.Fatal(err)
	}
	cookie := goLogin(t, cp.APIURL, secret)
	page := func(path string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, cp.APIURL+path, nil)
		req.AddCookie(cookie)
		resp, err := noRedirects.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := page("/ui/?app=shop"); code != 200 || !strings.Contains(body, `<strong class="stable">s1</strong>`) || !strings.Contains(body, `href="/ui/?app=billing"`) {
		t.Fatalf("shop's dashboard page: %d\n%s", code, body)
	}
	if code, body := page("/ui/"); code != 200 || !strings.Contains(body, `data-app="billing"`) || !strings.Contains(body, `<strong class="stable">b1</strong>`) {
		t.Fatalf("the first app's dashboard page: %d\n%s", code, body)
	}

	// Retirements: shop's routes are counted under shop; a route of shop
	// is retired on shop's router only; billing has the old counters.
	if resp, err := http.Get(shopRouter + "/products"); err == nil {
		resp.Body.Close()
	}
	waitUntil(t, "shop's /products counted", 10*time.Second, func() bool {
		u, err := cp.Store.RouteUsage(ctx, "shop/production", "/products", started.Add(-time.Hour))
		return err == nil && u.Total > 0
	})
	if u, err := cp.Store.RouteUsage(ctx, "billing/production", "/old", legacy.Add(-time.Hour)); err != nil || u.Total != 3 || u.TrackedSince.Unix() != legacy.Unix() {
		t.Fatalf("billing's counters from before several apps: %+v, %v", u, err)
	}
	if _, err := cp.Retirements.Retire(ctx, server.RetireRequest{Kind: retire.KindRoute, Subject: "/api/legacy", Reason: "gone", Actor: "user:ana"}); err == nil || !strings.Contains(err.Error(), `is required: this server manages "billing", "shop"`) {
		t.Fatalf("retire without an app on a server of two: %v", err)
	}
	time.Sleep(time.Until(started.Add(1100 * time.Millisecond))) // a cycle since shop was first counted
	out.Reset()
	errOut.Reset()
	if c := cli.Main(ctx, []string{"--server", cp.APIURL, "--token", cp.AdminToken, "retire", "route", "/api/legacy", "--app", "shop", "--reason", "v2 replaces it", "-o", "json"},
		strings.NewReader(""), &out, &errOut); c != 0 {
		t.Fatalf("shipgate retire route /api/legacy --app shop: exit %d\n%s%s", c, out.String(), errOut.String())
	}
	var ret retire.Retirement
	if err := json.Unmarshal([]byte(out.String()), &ret); err != nil || ret.Stage != retire.StageWatch || ret.App != "shop" || ret.Env != "production" {
		t.Fatalf("retire shop's /api/legacy: %s (%v)", out.String(), err)
	}
	if b, err := os.ReadFile(filepath.Join(ret.Backup, "shipgate.yaml")); err != nil || !strings.HasPrefix(string(b), "app: shop\n") {
		t.Fatalf("the backup holds %q (%v), want shop's config", b, err)
	}
	status := func(url string) int {
		t.Helper()
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if got := status(shopRouter + "/api/legacy/orders"); got != http.StatusGone {
		t.Fatalf("shop's retired route answered %d, want 410", got)
	}
	if got := status(billingRouter + "/api/legacy/orders"); got == http.StatusGone {
		t.Fatal("billing's router answers 410 for a route retired of shop")
	}
	// The route retired before several apps is the first app's.
	if got := status(billingRouter + "/gone/x"); got != http.StatusGone {
		t.Fatalf("billing's route retired before several apps answered %d, want 410", got)
	}
	if got := status(shopRouter + "/gone/x"); got == http.StatusGone {
		t.Fatal("shop's router answers 410 for a route billing retired before several apps")
	}
	if r, err := cp.Retirements.Get(ctx, gone.ID); err != nil || r.App != "billing" {
		t.Fatalf("the retirement of before several apps: %+v, %v; want it given to billing", r, err)
	}

	// The same page in a real browser: shop's page streams shop's status.
	t.Run("chromium", func(t *testing.T) {
		exe := chromiumPath(t)
		actx, cancelAlloc := chromedp.NewExecAllocator(ctx, append(chromedp.DefaultExecAllocatorOptions[:],
			chromedp.ExecPath(exe), chromedp.NoSandbox, chromedp.Flag("disable-gpu", true), chromedp.UserDataDir(t.TempDir()))...)
		defer cancelAlloc()
		bctx, cancel := chromedp.NewContext(actx)
		defer cancel()
		bctx, cancelTimeout := context.WithTimeout(bctx, 2*time.Minute)
		defer cancelTimeout()
		if err := chromedp.Do(bctx, chromedp.Navigate(cp.APIURL+"/ui/?app=shop"), chromedp.WaitVisible(chromedp.CSS("#token")),
			chromedp.SendKeys(chromedp.CSS("#token"), secret), chromedp.Click(chromedp.CSS("#login")), chromedp.WaitVisible(chromedp.CSS("#env-production"))); err != nil {
			t.Fatalf("chromium: log in to shop's page: %v", err)
		}
		deadline := time.Now().Add(30 * time.Second)
		got := ""
		for time.Now().Before(deadline) {
			got, err = chromedp.Run(bctx, chromedp.Evaluate[string](`document.body.dataset.app + " " + document.querySelector("#env-production .stable").textContent + " " + String(Number(document.body.dataset.updates || 0) > 0) + " " + document.querySelector("#apps .current").textContent`))
			if err != nil {
				t.Fatalf("chromium: %v", err)
			}
			if got == "shop s1 true shop" {
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
		t.Fatalf("shop's page in the browser: %q, want %q (app, stable, streamed, current app)", got, "shop s1 true shop")
	})
}

// waitUntil polls cond until it holds, or fails the test after timeout.
func waitUntil(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
