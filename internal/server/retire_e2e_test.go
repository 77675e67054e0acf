package server_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shipgate/shipgate/internal/audit"
	"github.com/shipgate/shipgate/internal/cli"
	"github.com/shipgate/shipgate/internal/config"
	"github.com/shipgate/shipgate/internal/flags"
	"github.com/shipgate/shipgate/internal/retire"
	"github.com/shipgate/shipgate/internal/server"
)

// startRetirePlane starts a control plane whose config sits in a git
// work tree with a file that names a route and a flag, with a retire
// section of a 1s cycle and a 2s watch.
func startRetirePlane(t *testing.T) (*server.ControlPlane, *plane, string) {
	dir := t.TempDir()
	git := func(args ...string) {
		t.Helper()
		cmd := exec.Command("git", args...)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	if err := os.MkdirAll(filepath.Join(dir, "web"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "web", "app.js"), []byte("const url = '/api/old/orders';\nif (flags.get('old-checkout')) {}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	git("init", "-q")
	git("add", "web/app.js")

	yaml := fmt.Sprintf(`app: shop
`+baseVars+baseRun+`environments:
  production:
    listen: 127.0.0.1:%d
retire:
  cycle: 1s
  watch: 2s
  backup_command: [sh, -c, 'test -s "$SHIPGATE_BACKUP_DIR/audit.json" && test -s "$SHIPGATE_BACKUP_DIR/rollouts.json" && test ! -e fail-backup']
smoke: [{path: /healthz}]
`, shopBin, freePort(t))
	path := filepath.Join(dir, "shipgate.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	cp, err := server.Start(context.Background(), server.Options{
		Config: cfg, DataDir: filepath.Join(dir, "data"), Listen: "127.0.0.1:0", Tick: 50 * time.Millisecond, RetirePoll: 50 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	if err != nil {
		t.Fatal(err)
	}
	p := &plane{ControlPlane: cp, dataDir: filepath.Join(dir, "data"), logs: logs, router: "http://" + cp.Routers["production"].Addr()}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		_ = cp.StopInstances(ctx)
		_ = cp.Close(ctx)
	})
	return cp, p, dir
}

// TestE2E_RetireRoute retires routes of the builtin router end to end,
// with a real control plane, a real shop process and real requests: a
// route with traffic refuses, a failed backup stops, a request in the
// watch window re-enables, a quiet window deletes and lists the
// references git grep finds, and every stage is in the audit log.
func TestE2E_RetireRoute(t *testing.T) {
	cp, p, dir := startRetirePlane(t)
	ctx := context.Background()
	status := func(path string) int {
		t.Helper()
		resp, err := http.Get(p.router + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	retireRoute := func(route string) retire.Retirement {
		t.Helper()
		r, err := cp.Retirements.Retire(ctx, server.RetireRequest{Kind: retire.KindRoute, Env: "production", Subject: route, Reason: "v2 replaces it", Actor: "user:ana"})
		if err != nil {
			t.Fatalf("retire %s: %v", route, err)
		}
		return r
	}
	waitFinal := func(id int64) retire.Retirement {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for time.Now().Before(deadline) {
			r, err := cp.Retirements.Get(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			if r.Stage.Final() {
				return r
			}
			time.Sleep(20 * time.Millisecond)
		}
		t.Fatalf("retirement %d did not end", id)
		return retire.Retirement{}
	}

	// Counting began when the server started: less than a cycle ago.
	if r := retireRoute("/api/legacy"); r.Stage != retire.StageRefused || !strings.Contains(r.Detail, "counted only since") {
		t.Fatalf("too early: %s %s", r.Stage, r.Detail)
	}
	if r := p.deploy(t, "v1", nil); r.Phase != "succeeded" {
		t.Fatalf("deploy: %s %s", r.Phase, r.Reason)
	}
	time.Sleep(1100 * time.Millisecond) // a cycle since counting began

	// A route with traffic refuses to retire.
	if got := status("/products"); got != http.StatusOK {
		t.Fatalf("GET /products: %d", got)
	}
	if r := retireRoute("/products"); r.Stage != retire.StageRefused || !strings.Contains(r.Detail, "requests in the last 1s") {
		t.Fatalf("route with traffic: %s %s", r.Stage, r.Detail)
	}
	if got := status("/products"); got != http.StatusOK {
		t.Fatalf("a refused retirement changed the route: %d", got)
	}

	// The backup command fails: nothing is disabled.
	if err := os.WriteFile(filepath.Join(dir, "fail-backup"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	r := retireRoute("/api/legacy")
	if r.Stage != retire.StageFailed || !strings.Contains(r.Detail, "backup failed, nothing was disabled: backup command sh -c") {
		t.Fatalf("failed backup: %s %s", r.Stage, r.Detail)
	}
	if got := status("/api/legacy"); got == http.StatusGone {
		t.Fatal("the route was disabled after a failed backup")
	}
	if err := os.Remove(filepath.Join(dir, "fail-backup")); err != nil {
		t.Fatal(err)
	}

	// A request in the watch window enables the route again.
	time.Sleep(1100 * time.Millisecond) // the request just above is a cycle old
	r = retireRoute("/api/legacy")
	if r.Stage != retire.StageWatch || r.Backup == "" {
		t.Fatalf("retire /api/legacy: %s %s", r.Stage, r.Detail)
	}
	for _, f := range []string{"shipgate.yaml", "rollouts.json", "audit.json"} {
		if _, err := os.Stat(filepath.Join(r.Backup, f)); err != nil {
			t.Errorf("backup: %v", err)
		}
	}
	if got := status("/api/legacy/orders"); got != http.StatusGone {
		t.Fatalf("disabled route answered %d, want 410", got)
	}
	r = waitFinal(r.ID)
	if r.Stage != retire.StageReenabled || !strings.Contains(r.Detail, "was used 1 times while retired") {
		t.Fatalf("after a request in the window: %s %s", r.Stage, r.Detail)
	}
	if got := status("/api/legacy/orders"); got == http.StatusGone {
		t.Fatal("the route still answers 410 after it was enabled again")
	}
	if !strings.Contains(p.logs.String(), "retired subject used: enabled again") {
		t.Error("no alert in the log")
	}

	// A quiet window: deleted, and the references are listed.
	r = retireRoute("/api/old")
	if r.Stage != retire.StageWatch {
		t.Fatalf("retire /api/old: %s %s", r.Stage, r.Detail)
	}
	r = waitFinal(r.ID)
	if r.Stage != retire.StageDeleted || len(r.References) != 1 || r.References[0] != "web/app.js:1:const url = '/api/old/orders';" {
		t.Fatalf("after a quiet window: %s %s, references %q", r.Stage, r.Detail, r.References)
	}
	if got := status("/api/old/orders"); got != http.StatusGone {
		t.Fatalf("deleted route answered %d, want 410", got)
	}

	// The same through the command line and the API.
	shipgate := func(args ...string) (int, string, string) {
		var stdout, stderr strings.Builder
		code := cli.Main(ctx, append([]string{"--server", cp.APIURL, "--token", cp.AdminToken}, args...), strings.NewReader(""), &stdout, &stderr)
		return code, stdout.String(), stderr.String()
	}
	status("/products")
	if code, out, _ := shipgate("retire", "route", "/products", "--reason", "unused?"); code != cli.ExitGate || !strings.Contains(out, "stage       refused") {
		t.Fatalf("retire route /products: exit %d\n%s", code, out)
	}
	if code, out, _ := shipgate("retire", "show", fmt.Sprint(r.ID)); code != 0 || !strings.Contains(out, "reference left: web/app.js:1:const url = '/api/old/orders';") {
		t.Fatalf("retire show: exit %d\n%s", code, out)
	}
	if code, _, errOut := shipgate("retire", "undo", fmt.Sprint(r.ID), "--reason", "too late"); code != cli.ExitFailure || !strings.Contains(errOut, "is deleted: the retirement is over") {
		t.Fatalf("undo after the deletion: exit %d: %s", code, errOut)
	}

	var actions []string
	for _, route := range []string{"/products", "/api/legacy", "/api/old"} {
		events, err := cp.Store.ListAudit(ctx, audit.Filter{Subject: "retire/route" + route, Limit: 100})
		if err != nil {
			t.Fatal(err)
		}
		for i := len(events) - 1; i >= 0; i-- {
			if strings.TrimPrefix(events[i].Subject, "retire/route") == route {
				actions = append(actions, route+" "+events[i].Action)
			}
		}
	}
	want := []string{
		"/products retire.start", "/products retire.refuse",
		"/products retire.start", "/products retire.refuse", // through the command line
		"/api/legacy retire.start", "/api/legacy retire.refuse", // too early
		"/api/legacy retire.start", "/api/legacy retire.fail", // backup
		"/api/legacy retire.start", "/api/legacy retire.backup", "/api/legacy retire.disable", "/api/legacy retire.reenable",
		"/api/old retire.start", "/api/old retire.backup", "/api/old retire.disable", "/api/old retire.delete", "/api/old retire.references",
	}
	if strings.Join(actions, "\n") != strings.Join(want, "\n") {
		t.Fatalf("audit:\n%s\nwant:\n%s", strings.Join(actions, "\n"), strings.Join(want, "\n"))
	}
}

// TestE2E_RetireFlag retires a flag: refused while evaluated, disabled
// (clients fall back to the off variant) and enabled again by an
// evaluation in the watch window, then deleted after a quiet one, with the
// references git grep finds.
func TestE2E_RetireFlag(t *testing.T) {
	cp, _, _ := startRetirePlane(t)
	ctx := context.Background()
	if _, err := cp.Flags.Create(ctx, flags.NewBooleanFlag("old-checkout", "team-pay", "the old checkout", time.Time{}, time.Now()), flags.Who{Actor: "user:ana"}); err != nil {
		t.Fatal(err)
	}
	retireFlag := func() retire.Retirement {
		t.Helper()
		r, err := cp.Retirements.Retire(ctx, server.RetireRequest{Kind: retire.KindFlag, Subject: "old-checkout", Reason: "new checkout is at 100%", Actor: "user:ana"})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	waitFinal := func(id int64) retire.Retirement {
		t.Helper()
		for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			if r, err := cp.Retirements.Get(ctx, id); err != nil || r.Stage.Final() {
				if err != nil {
					t.Fatal(err)
				}
				return r
			}
		}
		t.Fatalf("retirement %d did not end", id)
		return retire.Retirement{}
	}
	state := func() flags.State {
		f, ok := cp.Flags.Snapshot().Flag("old-checkout")
		if !ok {
			return "gone"
		}
		return f.State
	}

	time.Sleep(1100 * time.Millisecond) // a cycle since the flag was created
	cp.Flags.Evaluate("old-checkout", nil)
	if r := retireFlag(); r.Stage != retire.StageRefused || !strings.Contains(r.Detail, "1 evaluations in the last 1s") {
		t.Fatalf("evaluated flag: %s %s", r.Stage, r.Detail)
	}
	time.Sleep(1100 * time.Millisecond)
	r := retireFlag()
	if r.Stage != retire.StageWatch || state() != flags.Disabled {
		t.Fatalf("retire: %s %s, flag %s", r.Stage, r.Detail, state())
	}
	cp.Flags.Evaluate("old-checkout", nil)
	if r = waitFinal(r.ID); r.Stage != retire.StageReenabled || state() != flags.Enabled {
		t.Fatalf("after an evaluation in the window: %s %s, flag %s", r.Stage, r.Detail, state())
	}
	time.Sleep(1100 * time.Millisecond)
	r = retireFlag()
	if r = waitFinal(r.ID); r.Stage != retire.StageDeleted || state() != "gone" {
		t.Fatalf("after a quiet window: %s %s, flag %s", r.Stage, r.Detail, state())
	}
	if len(r.References) != 1 || r.References[0] != "web/app.js:2:if (flags.get('old-checkout')) {}" {
		t.Fatalf("references %q", r.References)
	}
}
