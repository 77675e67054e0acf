package dashboard_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shipgate/shipgate/internal/api"
	"github.com/shipgate/shipgate/internal/audit"
	"github.com/shipgate/shipgate/internal/auth"
	"github.com/shipgate/shipgate/internal/dashboard"
	"github.com/shipgate/shipgate/internal/flags"
	"github.com/shipgate/shipgate/internal/rollout"
	"github.com/shipgate/shipgate/internal/sqlite"
)

// engine stands in for the rollout engine, which needs processes and a
// router; the tokens are in a real store.
type engine struct {
	mu        sync.Mutex
	weight    int
	rollbacks []rollout.RollbackRequest
	// calls records promote, pause and resume as "verb actor reason".
	calls []string
	// statusOf records the apps whose status was asked.
	statusOf []string
	// images gives the releases images (Kubernetes): v1 and v2 get
	// registry.example/shop:<version>.
	images bool
}

// image is version's image; called with e.mu held.
func (e *engine) image(version string) string {
	if !e.images {
		return ""
	}
	return "registry.example/shop:" + version
}

func (e *engine) record(verb, actor, reason string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.calls = append(e.calls, verb+" "+actor+" "+reason)
}

func (e *engine) Promote(_ context.Context, req rollout.PromoteRequest) (rollout.Rollout, error) {
	e.record("promote", req.Actor, req.Reason)
	return rollout.Rollout{ID: 2, Env: req.Env, Version: "v2"}, nil
}

func (e *engine) Pause(_ context.Context, req rollout.PauseRequest) (rollout.Rollout, error) {
	e.record("pause", req.Actor, req.Reason)
	return rollout.Rollout{ID: 2, Env: req.Env, Version: "v2"}, nil
}

func (e *engine) Resume(_ context.Context, req rollout.PauseRequest) (rollout.Rollout, error) {
	e.record("resume", req.Actor, req.Reason)
	return rollout.Rollout{}, fmt.Errorf("rollout 2 of v2 in production is not paused: %w", rollout.ErrConflict)
}

func (e *engine) Status(_ context.Context, app string) (rollout.AppStatus, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.statusOf = append(e.statusOf, app)
	active := &rollout.Rollout{ID: 2, App: "shop", Env: "production", Version: "v2", Phase: rollout.PhaseRunning, Weight: e.weight,
		Steps: []rollout.Step{{Kind: rollout.StepWeight, Weight: e.weight, Duration: time.Minute}}, Image: e.image("v2")}
	return rollout.AppStatus{App: app, Envs: []rollout.EnvStatus{{Env: "staging"}, {Env: "production",
		State: &rollout.EnvState{App: app, Env: "production", Stable: "v1"}, Active: active, Image: e.image("v1")}}}, nil
}

func (e *engine) History(context.Context, string, string, int) ([]rollout.Rollout, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	at := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	return []rollout.Rollout{ // newest first
		{ID: 4, Env: "production", Kind: rollout.KindDeploy, Version: "v2", Phase: rollout.PhaseRunning, CreatedAt: at.Add(3 * time.Hour), Image: e.image("v2")},
		{ID: 3, Env: "staging", Kind: rollout.KindDeploy, Version: "v2", Phase: rollout.PhaseSucceeded, CreatedAt: at.Add(2 * time.Hour)},
		{ID: 2, Env: "staging", Kind: rollout.KindDeploy, Version: "v2", Phase: rollout.PhaseRolledBack, CreatedAt: at.Add(time.Hour)},
		{ID: 1, Env: "production", Kind: rollout.KindDeploy, Version: "v1", Phase: rollout.PhaseSucceeded, CreatedAt: at},
	}, nil
}

func (e *engine) Rollback(_ context.Context, req rollout.RollbackRequest) (rollout.Rollout, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.rollbacks = append(e.rollbacks, req)
	return rollout.Rollout{ID: 2, Env: "production", Version: "v2"}, nil
}

func (e *engine) Approve(context.Context, rollout.ApproveRequest) (rollout.Rollout, error) {
	return rollout.Rollout{}, rollout.ErrConflict
}

func (e *engine) Audit(context.Context, audit.Filter) ([]audit.Event, error) { return nil, nil }

type fixture struct {
	srv   *httptest.Server
	store *sqlite.Store
	eng   *engine
	flags *flags.Service
}

func start(t *testing.T) *fixture { t.Helper(); return startWith(t, nil) }

// startWith starts the dashboard with its options changed by edit.
func startWith(t *testing.T, edit func(*dashboard.Options)) *fixture {
	t.Helper()
	st, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "shipgate.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	eng := &engine{weight: 10}
	done := make(chan struct{})
	fs, err := flags.NewService(t.Context(), flags.Options{Store: st})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(fs.Close)
	if _, err := fs.Import(t.Context(), []byte(`{"flags": {"new-checkout": {"state": "ENABLED", "variants": {"on": true, "off": false},
		"defaultVariant": "off", "targeting": {"if": [{"in": ["@shop.test", {"var": "email"}]}, "on", null]}, "metadata": {"owner": "ana"}}}}`),
		flags.Who{Actor: "user:ana"}); err != nil {
		t.Fatal(err)
	}
	opts := dashboard.Options{App: "shop", Service: eng, Tokens: st, Chain: st, Flags: fs, Poll: 10 * time.Millisecond, Done: done}
	if edit != nil {
		edit(&opts)
	}
	h, err := dashboard.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(func() { close(done); srv.Close() })
	return &fixture{srv: srv, store: st, eng: eng, flags: fs}
}

func (f *fixture) token(t *testing.T, name string, role auth.Role) string {
	t.Helper()
	secret, _ := auth.NewSecret()
	if err := f.store.CreateToken(t.Context(), auth.Token{Name: name, Role: role}, auth.Hash(secret)); err != nil {
		t.Fatal(err)
	}
	return secret
}

var client = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

func (f *fixture) post(t *testing.T, path string, form url.Values, cookie *http.Cookie, origin string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, f.srv.URL+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if origin != "" {
		req.Header.Set("Origin", origin)
	}
	if cookie != nil {
		req.AddCookie(cookie)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

func (f *fixture) get(t *testing.T, path string, cookie *http.Cookie) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, f.srv.URL+path, nil)
	if cookie != nil {
		req.AddCookie(cookie)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// login returns the session cookie and the page's CSRF token.
func (f *fixture) login(t *testing.T, secret string) (*http.Cookie, string) {
	t.Helper()
	resp := f.post(t, "/ui/login", url.Values{"token": {secret}}, nil, f.srv.URL)
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("login = %d, want 303", resp.StatusCode)
	}
	var c *http.Cookie
	for _, k := range resp.Cookies() {
		if k.Name == dashboard.CookieName {
			c = k
		}
	}
	if c == nil || !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Path != "/ui/" {
		t.Fatalf("session cookie = %+v", c)
	}
	_, page := f.get(t, "/ui/", c)
	i := strings.Index(page, `name="csrf" value="`)
	if i < 0 {
		t.Fatalf("no CSRF token in the page:\n%s", page)
	}
	rest := page[i+len(`name="csrf" value="`):]
	return c, rest[:strings.IndexByte(rest, '"')]
}

func TestDashboard_SessionsCSRFAndRoles(t *testing.T) {
	f := start(t)
	deployer, viewer := f.token(t, "dana", auth.RoleDeployer), f.token(t, "vic", auth.RoleViewer)

	if resp, _ := f.get(t, "/ui/audit", nil); resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/ui/login?next=%2Fui%2Faudit" {
		t.Fatalf("no session: %d to %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	if resp := f.post(t, "/ui/login", url.Values{"token": {"sgt_wrong"}}, nil, f.srv.URL); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("wrong token login = %d", resp.StatusCode)
	}
	if resp := f.post(t, "/ui/login", url.Values{"token": {deployer}}, nil, "https://evil.example"); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("cross-site login = %d", resp.StatusCode)
	}

	dc, dcsrf := f.login(t, deployer)
	vc, vcsrf := f.login(t, viewer)
	form := func(csrf string) url.Values {
		return url.Values{"env": {"production"}, "reason": {"bad"}, "csrf": {csrf}}
	}
	tests := []struct {
		name   string
		cookie *http.Cookie
		csrf   string
		want   int
	}{
		{"deployer without csrf", dc, "", http.StatusForbidden},
		{"deployer with the viewer's csrf", dc, vcsrf, http.StatusForbidden},
		{"viewer with its csrf", vc, vcsrf, http.StatusForbidden},
		{"no session", nil, dcsrf, http.StatusUnauthorized},
		{"deployer with its csrf", dc, dcsrf, http.StatusSeeOther},
	}
	for _, tt := range tests {
		if resp := f.post(t, "/ui/rollback", form(tt.csrf), tt.cookie, ""); resp.StatusCode != tt.want {
			t.Errorf("%s: rollback = %d, want %d", tt.name, resp.StatusCode, tt.want)
		}
	}
	if n := len(f.eng.rollbacks); n != 1 || f.eng.rollbacks[0].Actor != "user:dana" {
		t.Fatalf("rollbacks = %+v, want dana's only", f.eng.rollbacks)
	}
	// The viewer's page has its buttons disabled.
	_, page := f.get(t, "/ui/", vc)
	if !strings.Contains(page, `class="rollback danger" disabled`) {
		t.Fatalf("viewer's rollback button is not disabled:\n%s", page)
	}
	// Revoking the token ends its session.
	if err := f.store.DeleteToken(t.Context(), "dana"); err != nil {
		t.Fatal(err)
	}
	if resp, _ := f.get(t, "/ui/", dc); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("revoked token's session: GET /ui/ = %d, want a redirect to the login", resp.StatusCode)
	}
	// Logging out ends the session.
	if resp := f.post(t, "/ui/logout", url.Values{"csrf": {vcsrf}}, vc, ""); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("logout = %d", resp.StatusCode)
	}
	if resp, _ := f.get(t, "/ui/", vc); resp.StatusCode != http.StatusSeeOther {
		t.Fatal("the session outlived its logout")
	}
}

// TestDashboard_PromotePauseResume: the deployer's buttons reach the
// engine with the person and the reason, a promotion without a reason
// changes nothing, a refusal is shown, and a viewer can do none of it.
func TestDashboard_PromotePauseResume(t *testing.T) {
	f := start(t)
	dc, dcsrf := f.login(t, f.token(t, "dana", auth.RoleDeployer))
	vc, vcsrf := f.login(t, f.token(t, "vic", auth.RoleViewer))
	_, page := f.get(t, "/ui/", dc)
	for _, b := range []string{`class="pause"`, `class="resume"`, `class="promote"`} {
		if !strings.Contains(page, b) {
			t.Fatalf("the deployer's page has no %s button", b)
		}
	}
	post := func(path, reason string, c *http.Cookie, csrf string) *http.Response {
		return f.post(t, path, url.Values{"env": {"production"}, "reason": {reason}, "csrf": {csrf}}, c, "")
	}
	flash := func(resp *http.Response) string {
		t.Helper()
		loc, err := url.Parse(resp.Header.Get("Location"))
		if resp.StatusCode != http.StatusSeeOther || err != nil {
			t.Fatalf("answer %d to %q, want 303 back to the page", resp.StatusCode, resp.Header.Get("Location"))
		}
		return loc.Query().Get("flash")
	}
	if msg := flash(post("/ui/promote", " ", dc, dcsrf)); !strings.Contains(msg, "say why") {
		t.Fatalf("promote without a reason: flash %q", msg)
	}
	if msg := flash(post("/ui/promote", "the numbers are clear", dc, dcsrf)); !strings.Contains(msg, "Promoted v2 in production") {
		t.Fatalf("promote: flash %q", msg)
	}
	if msg := flash(post("/ui/pause", "paused from the dashboard", dc, dcsrf)); !strings.Contains(msg, "Paused v2") {
		t.Fatalf("pause: flash %q", msg)
	}
	if msg := flash(post("/ui/resume", "resumed from the dashboard", dc, dcsrf)); !strings.Contains(msg, "refused: rollout 2 of v2 in production is not paused") {
		t.Fatalf("resume: flash %q", msg)
	}
	for _, path := range []string{"/ui/promote", "/ui/pause", "/ui/resume"} {
		if resp := post(path, "x", vc, vcsrf); resp.StatusCode != http.StatusForbidden {
			t.Fatalf("viewer %s = %d, want 403", path, resp.StatusCode)
		}
		if resp := post(path, "x", dc, ""); resp.StatusCode != http.StatusForbidden {
			t.Fatalf("%s without the CSRF token = %d, want 403", path, resp.StatusCode)
		}
	}
	want := []string{"promote user:dana the numbers are clear", "pause user:dana paused from the dashboard", "resume user:dana resumed from the dashboard"}
	if strings.Join(f.eng.calls, "|") != strings.Join(want, "|") {
		t.Fatalf("engine calls = %q, want %q", f.eng.calls, want)
	}
}

func TestDashboard_EventStream(t *testing.T) {
	f := start(t)
	c, _ := f.login(t, f.token(t, "vic", auth.RoleViewer))
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, f.srv.URL+"/ui/events", nil)
	req.AddCookie(c)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("content type %q", ct)
	}
	lines := bufio.NewScanner(resp.Body)
	next := func() string {
		for lines.Scan() {
			if l := lines.Text(); strings.HasPrefix(l, "data: ") {
				return l
			}
		}
		t.Fatal("stream ended")
		return ""
	}
	if d := next(); !strings.Contains(d, `"weight":10`) || !strings.Contains(d, `"stable":"v1"`) {
		t.Fatalf("first event %s", d)
	}
	f.eng.mu.Lock()
	f.eng.weight = 25
	f.eng.mu.Unlock()
	if d := next(); !strings.Contains(d, `"weight":25`) {
		t.Fatalf("second event %s, want the new weight", d)
	}
}

func TestDashboard_FlagsKillSwitchAndPipeline(t *testing.T) {
	f := start(t)
	vc, vcsrf := f.login(t, f.token(t, "vic", auth.RoleViewer))
	dc, dcsrf := f.login(t, f.token(t, "dana", auth.RoleDeployer))

	// The pipeline: v2 succeeded in staging (its latest rollout there) and
	// runs in production; v1 never went to staging.
	_, page := f.get(t, "/ui/", dc)
	for _, want := range []string{
		`<tr><td>v2</td><td><span class="phase-succeeded">succeeded</span> <small>#3 2026-11-24 12:00</small></td><td><span class="phase-running">running</span> <small>#4`,
		`<tr><td>v1</td><td>-</td><td><span class="phase-succeeded">succeeded</span>`,
	} {
		if !strings.Contains(page, want) {
			t.Fatalf("pipeline lacks %q:\n%s", want, page)
		}
	}

	_, page = f.get(t, "/ui/flags", vc)
	if !strings.Contains(page, `id="flag-new-checkout"`) || !strings.Contains(page, "@shop.test") || !strings.Contains(page, `class="kill danger" disabled`) {
		t.Fatalf("viewer's flags page:\n%s", page)
	}
	if resp := f.post(t, "/ui/flags/disable", url.Values{"key": {"new-checkout"}, "csrf": {vcsrf}}, vc, ""); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("viewer's kill switch = %d, want 403", resp.StatusCode)
	}
	if resp := f.post(t, "/ui/flags/disable", url.Values{"key": {"new-checkout"}}, dc, ""); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("kill switch without CSRF = %d, want 403", resp.StatusCode)
	}
	if fl, _ := f.flags.Snapshot().Flag("new-checkout"); fl.State != flags.Enabled {
		t.Fatal("a refused kill switch changed the flag")
	}
	if resp := f.post(t, "/ui/flags/disable", url.Values{"key": {"new-checkout"}, "csrf": {dcsrf}, "reason": {"checkout errors"}}, dc, ""); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("kill switch = %d", resp.StatusCode)
	}
	if fl, _ := f.flags.Snapshot().Flag("new-checkout"); fl.State != flags.Disabled {
		t.Fatal("the kill switch did not disable the flag")
	}
	events, err := f.store.ListAudit(t.Context(), audit.Filter{Subject: "flag/new-checkout", Action: flags.ActionDisable})
	if err != nil || len(events) != 1 || events[0].Actor != "user:dana" || events[0].Reason != "checkout errors" {
		t.Fatalf("audit of the kill switch = %+v (%v)", events, err)
	}
}

// TestDashboard_SeveralApps: with several apps every page names the app
// it shows and links to the others; the live page, its event stream and
// its buttons reach the app the URL (or the form) names, the first by
// default; an app the server does not manage is not found.
func TestDashboard_SeveralApps(t *testing.T) {
	f := startWith(t, func(o *dashboard.Options) {
		o.App = ""
		o.Apps = func() []string { return []string{"shop", "billing"} }
	})
	dc, csrf := f.login(t, f.token(t, "dana", auth.RoleDeployer))

	_, page := f.get(t, "/ui/?app=billing", dc)
	for _, want := range []string{`data-app="billing"`, `<title>billing · Shipgate</title>`, `href="/ui/?app=shop" data-app="shop"`,
		`href="/ui/?app=billing" data-app="billing" class="current"`, `name="app" value="billing"`} {
		if !strings.Contains(page, want) {
			t.Fatalf("billing's page has no %s:\n%s", want, page)
		}
	}
	if _, page := f.get(t, "/ui/", dc); !strings.Contains(page, `data-app="shop"`) {
		t.Fatalf("/ui/ does not show the first app, shop:\n%s", page)
	}
	f.eng.mu.Lock()
	asked := strings.Join(f.eng.statusOf, ",")
	f.eng.mu.Unlock()
	if !strings.Contains(asked, "billing") {
		t.Fatalf("status asked of %s, never billing", asked)
	}

	resp := f.post(t, "/ui/rollback", url.Values{"app": {"billing"}, "env": {"production"}, "reason": {"bad"}, "csrf": {csrf}}, dc, "")
	if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(loc, "/ui/?app=billing&") {
		t.Fatalf("rollback of billing = %d to %q, want 303 back to billing's page", resp.StatusCode, loc)
	}
	if n := len(f.eng.rollbacks); n != 1 || f.eng.rollbacks[0].App != "billing" {
		t.Fatalf("rollbacks = %+v, want one of billing", f.eng.rollbacks)
	}
	resp = f.post(t, "/ui/rollback", url.Values{"app": {"nope"}, "env": {"production"}, "reason": {"bad"}, "csrf": {csrf}}, dc, "")
	if loc, _ := url.Parse(resp.Header.Get("Location")); !strings.Contains(loc.Query().Get("flash"), `app "nope" is not managed by this server; it manages shop, billing`) {
		t.Fatalf("rollback of an unknown app: %d to %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	if n := len(f.eng.rollbacks); n != 1 {
		t.Fatalf("a rollback of an unknown app reached the engine: %+v", f.eng.rollbacks)
	}
	for _, path := range []string{"/ui/?app=nope", "/ui/events?app=nope"} {
		if resp, body := f.get(t, path, dc); resp.StatusCode != http.StatusNotFound || !strings.Contains(body, "it manages shop, billing") {
			t.Fatalf("GET %s = %d %q, want 404 naming the apps", path, resp.StatusCode, body)
		}
	}

	// The event stream of billing carries billing's status.
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, f.srv.URL+"/ui/events?app=billing", nil)
	req.AddCookie(dc)
	sresp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer sresp.Body.Close()
	sc := bufio.NewScanner(sresp.Body)
	seen := false
	for !seen && sc.Scan() {
		if line := sc.Text(); strings.HasPrefix(line, "data:") {
			if !strings.Contains(line, `"app":"billing"`) {
				t.Fatalf("billing's stream sent %s", line)
			}
			seen = true
		}
	}
	if !seen {
		t.Fatalf("billing's stream ended without a status: %v", sc.Err())
	}
}

// TestDashboard_Images: where the home page shows a release, it shows its
// image when it has one (releases on Kubernetes): the live release, the
// one rolling out, an image column in the history ("-" for a rollout
// without one), and the event stream carries both for the page's
// updates. Without images, none of it shows.
func TestDashboard_Images(t *testing.T) {
	for _, images := range []bool{false, true} {
		t.Run(fmt.Sprint("images=", images), func(t *testing.T) {
			f := start(t)
			f.eng.mu.Lock()
			f.eng.images = images
			f.eng.mu.Unlock()
			c, _ := f.login(t, f.token(t, "vic", auth.RoleViewer))
			_, body := f.get(t, "/ui/", c)
			checks := []string{
				`<code class="stable-image" >registry.example/shop:v1</code>`,
				`<code class="version-image" >registry.example/shop:v2</code>`,
				`<th>version</th><th>image</th><th>from</th>`,
				`<td>v2</td><td class="image">registry.example/shop:v2</td>`,
				`<td>v1</td><td class="image">-</td>`,
			}
			for _, want := range checks {
				if got := strings.Contains(body, want); got != images {
					t.Errorf("home page has %q: %v, want %v", want, got, images)
				}
			}
			if !images && (!strings.Contains(body, `<code class="stable-image" hidden></code>`) || !strings.Contains(body, "<th>version</th><th>from</th>")) {
				t.Errorf("home page without images: want the hidden image slots and no image column")
			}
			snap := api.SnapshotOf(mustStatus(t, f.eng), time.Now())
			var env api.EnvSnapshot
			for _, e := range snap.Envs {
				if e.Env == "production" {
					env = e
				}
			}
			if got, want := env.StableImage, map[bool]string{true: "registry.example/shop:v1"}[images]; got != want {
				t.Errorf("snapshot stable_image = %q, want %q", got, want)
			}
			if got, want := env.Rollout.Image, map[bool]string{true: "registry.example/shop:v2"}[images]; got != want {
				t.Errorf("snapshot rollout image = %q, want %q", got, want)
			}
		})
	}
}

func mustStatus(t *testing.T, e *engine) rollout.AppStatus {
	t.Helper()
	st, err := e.Status(t.Context(), "shop")
	if err != nil {
		t.Fatal(err)
	}
	return st
}
