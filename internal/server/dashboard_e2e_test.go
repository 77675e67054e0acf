package server_test

// The dashboard end to end in a real headless Chromium: log in with a
// token, watch a live canary move from 10% to 25% without a reload, roll
// it back from the page as a deployer; a viewer's page offers no enabled
// button; a forged POST without the CSRF token is refused and changes
// nothing; a request without a session is sent to the login page.

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	cdplog "github.com/chromedp/cdproto/log"
	cdpruntime "github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/shipgate/shipgate/internal/audit"
	"github.com/shipgate/shipgate/internal/auth"
	"github.com/shipgate/shipgate/internal/rollout"
)

func chromiumPath(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("chromium is not installed: scripts/deps.sh test installs it")
	}
	t.Skip("SKIPPED: chromium is not installed (apt-get install chromium)")
	return ""
}

// dashboardConfig holds the canary at 10% until the error rate is
// known good, then at 25% long enough to roll it back by hand.
const dashboardConfig = `app: shop
vars: {PAY_FAIL_RATE: "0", LATENCY: "5ms", MERCHANT_ID: "m-1", FAIL_HEALTH: "false"}
run:
  command: [%q, "--port", "${PORT}", "--version", "${VERSION}", "--pay-fail-rate", "${PAY_FAIL_RATE}", "--latency", "${LATENCY}", "--fail-health=${FAIL_HEALTH}"]
  env: {MERCHANT_ID: "${MERCHANT_ID}"}
  instances: 1
  health: {path: /healthz, interval: 200ms, timeout: 1s}
  start_timeout: 4s
  stop_grace: 5s
environments:
  production:
    listen: 127.0.0.1:%d
    sticky: {header: X-User-ID}
strategy:
  canary:
    steps: [{weight: 10, bake: 6s}, {weight: 25, bake: 120s}]
    scale_down_delay: 1s
analysis:
  interval: 300ms
  min_requests: 20
  gates:
    - {metric: error_rate, max: 0.1}
`

func newSecret(t *testing.T, p *plane, name string, role auth.Role) string {
	t.Helper()
	secret, err := auth.NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Store.CreateToken(context.Background(), auth.Token{Name: name, Role: role}, auth.Hash(secret)); err != nil {
		t.Fatal(err)
	}
	return secret
}

// noRedirects is a client that shows redirects instead of following them.
var noRedirects = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// goLogin logs in over plain HTTP and returns the session cookie.
func goLogin(t *testing.T, base, secret string) *http.Cookie {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, base+"/ui/login", strings.NewReader(url.Values{"token": {secret}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", base)
	resp, err := noRedirects.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	for _, c := range resp.Cookies() {
		if c.Name == "shipgate_session" {
			if !c.HttpOnly || c.SameSite != http.SameSiteStrictMode {
				t.Fatalf("session cookie %+v: want HttpOnly and SameSite=Strict", c)
			}
			return c
		}
	}
	t.Fatalf("login answered %d without a session cookie", resp.StatusCode)
	return nil
}

func TestE2E_DashboardInChromium(t *testing.T) {
	exe := chromiumPath(t)
	p := startYAML(t, fmt.Sprintf(dashboardConfig, shopBin, freePort(t)))
	base := p.APIURL
	deployer := newSecret(t, p, "dana", auth.RoleDeployer)
	viewer := newSecret(t, p, "vic", auth.RoleViewer)
	if r := p.deploy(t, "v1", nil); r.Phase != rollout.PhaseSucceeded {
		t.Fatalf("v1 ended %s: %s", r.Phase, r.Reason)
	}

	// Without a session: redirected to the login page.
	resp, err := noRedirects.Get(base + "/ui/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(loc, "/ui/login") {
		t.Fatalf("GET /ui/ without a session = %d to %q, want 303 to /ui/login", resp.StatusCode, loc)
	}
	// A login posted from another site is refused.
	req, _ := http.NewRequest(http.MethodPost, base+"/ui/login", strings.NewReader(url.Values{"token": {deployer}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", "http://evil.example")
	if resp, err := noRedirects.Do(req); err != nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("cross-site login = %v %v, want 403", resp.StatusCode, err)
	}

	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(exe), chromedp.NoSandbox, chromedp.Flag("disable-gpu", true), chromedp.UserDataDir(t.TempDir()))...)
	defer cancelAlloc()
	ctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	ctx, cancelTimeout := context.WithTimeout(ctx, 3*time.Minute)
	defer cancelTimeout()
	// Every error or warning the pages log (console, exceptions, the
	// browser's log: CSP violations, failed loads).
	var (
		problemsMu sync.Mutex
		problems   []string
	)
	listen, stopListening := context.WithCancel(ctx)
	defer stopListening()
	entries, exceptions := chromedp.Events(listen, cdplog.EntryAdded), chromedp.Events(listen, cdpruntime.ExceptionThrown)
	go func() {
		for ev, err := range entries {
			if err != nil {
				return
			}
			if ev.Entry.Level == cdplog.EntryLevelError || ev.Entry.Level == cdplog.EntryLevelWarning {
				problemsMu.Lock()
				problems = append(problems, ev.Entry.URL+": "+ev.Entry.Text)
				problemsMu.Unlock()
			}
		}
	}()
	go func() {
		for ev, err := range exceptions {
			if err != nil {
				return
			}
			problemsMu.Lock()
			problems = append(problems, "exception: "+ev.ExceptionDetails.Text)
			problemsMu.Unlock()
		}
	}()
	do := func(what string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, actions...); err != nil {
			t.Fatalf("chromium: %s: %v", what, err)
		}
	}
	eval := func(js string) string {
		t.Helper()
		v, err := chromedp.Run(ctx, chromedp.Evaluate[string](js))
		if err != nil {
			t.Fatalf("chromium: %s: %v", js, err)
		}
		return v
	}
	waitPage := func(what, js, want string, timeout time.Duration) {
		t.Helper()
		deadline := time.Now().Add(timeout)
		got := ""
		for time.Now().Before(deadline) {
			if got = eval(js); got == want {
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
		t.Fatalf("page: %s = %q, want %q", what, got, want)
	}

	// The browser is sent to the login page, logs in, lands on the page.
	do("open", chromedp.Navigate(base+"/ui/"), chromedp.WaitVisible(chromedp.CSS("#token")))
	if loc, _ := chromedp.Run(ctx, chromedp.Location()); !strings.Contains(loc, "/ui/login") {
		t.Fatalf("browser at %s, want the login page", loc)
	}
	do("log in", chromedp.SendKeys(chromedp.CSS("#token"), deployer), chromedp.Click(chromedp.CSS("#login")), chromedp.WaitVisible(chromedp.CSS("#env-production")))
	if who := eval(`document.getElementById("who").textContent`); who != "dana (deployer)" {
		t.Fatalf("logged in as %q", who)
	}
	if eval(`String(document.cookie.includes("shipgate_session"))`) != "false" {
		t.Fatal("the session cookie is readable from JavaScript: it must be HttpOnly")
	}
	eval(`window.__sameDocument = "yes"`)

	// A canary starts while the page is open; the page follows it.
	load := p.load(t, 120)
	time.Sleep(500 * time.Millisecond)
	ro, err := p.Engine.Deploy(context.Background(), rollout.DeployRequest{App: "shop", Version: "v2", Actor: "user:test"})
	if err != nil {
		t.Fatal(err)
	}
	weight := `document.querySelector("#env-production .weight").textContent`
	waitPage("the canary's weight", weight, "10%", 30*time.Second)
	waitPage("the rollout's version", `document.querySelector("#env-production .version").textContent`, "v2", 10*time.Second)
	t.Cleanup(func() {
		if t.Failed() {
			r, _ := p.Engine.GetRollout(context.Background(), ro.ID)
			t.Logf("rollout %d: %s at %d%%, step %d, analysis %+v", r.ID, r.Phase, r.Weight, r.StepIndex, r.Analysis)
		}
	})
	waitPage("the canary's weight", weight, "25%", 60*time.Second)
	if eval(`window.__sameDocument || "reloaded"`) != "yes" {
		t.Fatal("the page was reloaded to show the new weight")
	}
	waitPage("the error-rate chart", `String(document.querySelectorAll("#env-production svg.err polyline").length > 0)`, "true", 10*time.Second)

	// The deployer pauses the bake from the page: the engine holds it, the
	// page says so live; resuming lets it go on.
	// (Each button posts a form: the page is reloaded, so these read
	// nothing while it loads.)
	held := `(document.querySelector("#env-production .held") || {hidden: true}).hidden ? "" : document.querySelector("#env-production .held-text").textContent`
	flash := `((document.getElementById("flash") || {}).textContent || "")`
	do("pause", chromedp.Click(chromedp.CSS("#env-production button.pause")))
	waitPage("the flash", `String(`+flash+`.startsWith("Paused v2"))`, "true", 10*time.Second)
	waitPage("the paused note", `String(`+held+`.startsWith("paused by user:dana: paused from the dashboard"))`, "true", 10*time.Second)
	if r, _ := p.Engine.GetRollout(context.Background(), ro.ID); !strings.HasPrefix(r.Paused, "paused by user:dana") {
		t.Fatalf("after Pause the rollout's paused = %q", r.Paused)
	}
	do("resume", chromedp.Click(chromedp.CSS("#env-production button.resume")))
	waitPage("the flash", `String(`+flash+`.startsWith("Resumed v2"))`, "true", 10*time.Second)
	waitPage("the paused note", held, "", 10*time.Second)
	do("reload", chromedp.Navigate(base+"/ui/"), chromedp.WaitVisible(chromedp.CSS("#env-production")))

	// A forged POST (a valid session, no CSRF token) is refused and
	// changes nothing.
	session := goLogin(t, base, deployer)
	forged, _ := http.NewRequest(http.MethodPost, base+"/ui/rollback", strings.NewReader(url.Values{"env": {"production"}, "reason": {"forged"}}.Encode()))
	forged.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	forged.AddCookie(session)
	resp, err = noRedirects.Do(forged)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("forged POST = %d, want 403", resp.StatusCode)
	}
	if r, _ := p.Engine.GetRollout(context.Background(), ro.ID); r.Phase != rollout.PhaseRunning || r.Weight != 25 {
		t.Fatalf("after the forged POST the rollout is %s at %d%%, want still running at 25%%", r.Phase, r.Weight)
	}

	// The deployer rolls it back from the page.
	do("roll back", chromedp.SendKeys(chromedp.CSS("#env-production input.reason"), "checkout looks wrong"),
		chromedp.Click(chromedp.CSS("#env-production button.rollback")), chromedp.WaitVisible(chromedp.CSS("#flash")))
	if flash := eval(`document.getElementById("flash").textContent`); !strings.Contains(flash, "Rolling back") {
		t.Fatalf("flash = %q", flash)
	}
	final := p.wait(t, ro.ID)
	load.Stop()
	if final.Phase != rollout.PhaseRolledBack {
		t.Fatalf("v2 ended %s, want rolled back", final.Phase)
	}
	ev, ok := hasAction(auditActions(t, p, "shop/production/v2"), audit.ActionRollbackManual)
	if !ok || ev.Actor != "user:dana" || ev.Reason != "checkout looks wrong" {
		t.Fatalf("manual rollback event = %+v (found %v), want by user:dana with the page's reason", ev, ok)
	}

	// A viewer sees everything and can change nothing.
	do("log out", chromedp.Click(chromedp.CSS("#logout")), chromedp.WaitVisible(chromedp.CSS("#token")))
	do("log in as viewer", chromedp.SendKeys(chromedp.CSS("#token"), viewer), chromedp.Click(chromedp.CSS("#login")), chromedp.WaitVisible(chromedp.CSS("#env-production")))
	if n := eval(`String(document.querySelectorAll("main button:not([disabled]), main input.reason:not([disabled])").length)`); n != "0" {
		t.Fatalf("the viewer's page has %s enabled controls, want 0", n)
	}
	if n := eval(`String(document.querySelectorAll("main button[disabled]").length)`); n == "0" {
		t.Fatal("the viewer's page shows no (disabled) buttons at all")
	}
	// The audit page verifies the chain; the DORA page draws its charts.
	do("audit", chromedp.Navigate(base+"/ui/audit"), chromedp.WaitVisible(chromedp.CSS("#chain")))
	if c := eval(`document.getElementById("chain").textContent`); !strings.Contains(c, "intact") {
		t.Fatalf("audit chain: %q", c)
	}
	do("dora", chromedp.Navigate(base+"/ui/dora?week=this"), chromedp.WaitVisible(chromedp.CSS("#headline")))
	if n := eval(`String(document.querySelectorAll("svg.spark").length)`); n != "5" {
		t.Fatalf("DORA page has %s sparklines, want 5", n)
	}
	// The listener works: a load that fails on purpose is seen.
	eval(`fetch("/ui/static/probe-missing.js"), "sent"`)
	deadline := time.Now().Add(10 * time.Second)
	for {
		problemsMu.Lock()
		seen := strings.Contains(strings.Join(problems, "\n"), "probe-missing.js")
		problemsMu.Unlock()
		if seen {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the browser log listener did not see the probe's failed load")
		}
		time.Sleep(20 * time.Millisecond)
	}
	problemsMu.Lock()
	defer problemsMu.Unlock()
	var others []string
	for _, p := range problems {
		if !strings.Contains(p, "probe-missing.js") {
			others = append(others, p)
		}
	}
	if len(others) > 0 {
		t.Fatalf("the pages logged errors: %q", others)
	}
}
