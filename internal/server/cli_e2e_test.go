package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shipgate/shipgate/internal/audit"
	"github.com/shipgate/shipgate/internal/cli"
	"github.com/shipgate/shipgate/internal/rollout"
	"github.com/shipgate/shipgate/internal/server"
)

// runCLI runs the shipgate command line against the plane's API, the way a
// user or a CI job would, and returns its exit code and output.
func runCLI(t *testing.T, p *plane, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	full := append([]string{"--server", p.APIURL, "--token", p.AdminToken}, args...)
	code = cli.Main(context.Background(), full, strings.NewReader(""), &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestE2E_CLIAgainstRealServer(t *testing.T) {
	p := startPlane(t, quickSteps)

	if code, _, stderr := runCLI(t, p, "deploy", "shop", "v1", "--wait"); code != 0 {
		t.Fatalf("deploy v1 --wait exited %d: %s", code, stderr)
	}
	load := p.load(t, 200)
	time.Sleep(time.Second)

	// A release that fails 40% of payments: --wait exits 3, the code CI
	// reads as "rolled back".
	code, stdout, stderr := runCLI(t, p, "deploy", "shop", "v2", "--var", "PAY_FAIL_RATE=0.4", "--wait")
	if code != 3 {
		t.Fatalf("deploy of a bad release exited %d, want 3\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
	if !strings.Contains(stdout+stderr, "error_rate") {
		t.Fatalf("output does not say which gate failed:\n%s%s", stdout, stderr)
	}
	// The live progress showed the canary's weight while it waited.
	if !strings.Contains(stderr, "20%") {
		t.Fatalf("no live progress with the canary weight on stderr:\n%s", stderr)
	}

	code, stdout, stderr = runCLI(t, p, "deploy", "shop", "v3", "--wait", "-o", "json")
	if code != 0 {
		t.Fatalf("deploy v3 exited %d: %s", code, stderr)
	}
	var r rollout.Rollout
	if err := json.Unmarshal([]byte(stdout), &r); err != nil {
		t.Fatalf("-o json output is not a rollout: %v\n%s", err, stdout)
	}
	if r.Version != "v3" || (r.Phase != rollout.PhaseSucceeded && r.PromotedAt.IsZero()) {
		t.Fatalf("rollout = %s %s, want v3 live", r.Version, r.Phase)
	}
	_ = p.Engine.Wait(context.Background(), "production")

	code, stdout, _ = runCLI(t, p, "status", "-o", "json")
	var st rollout.AppStatus
	if err := json.Unmarshal([]byte(stdout), &st); code != 0 || err != nil {
		t.Fatalf("status exited %d, %v: %s", code, err, stdout)
	}
	if got := st.Envs[0].State.Stable; got != "v3" {
		t.Fatalf("status says stable %s, want v3", got)
	}

	if code, _, stderr := runCLI(t, p, "rollback", "shop"); code != 2 || !strings.Contains(stderr, "--reason") {
		t.Fatalf("rollback without --reason exited %d (%s), want 2 naming --reason", code, stderr)
	}
	if code, _, stderr := runCLI(t, p, "rollback", "shop", "--reason", "checkout button missing", "--wait"); code != 0 {
		t.Fatalf("rollback exited %d: %s", code, stderr)
	}
	load.Stop()
	_ = p.Engine.Wait(context.Background(), "production") // the old release drains
	if fails := load.Failures(); len(fails) > 30 {
		t.Fatalf("%d user requests failed; only the bad canary may fail a few", len(fails))
	}
	for _, f := range load.Failures() {
		if f.Version != "v2" {
			t.Fatalf("a request failed on %s: %+v; only the bad release may fail requests", f.Version, f)
		}
	}
	p.onlyVersion(t, "v1", 10)

	code, stdout, _ = runCLI(t, p, "history", "shop", "-o", "json")
	var hist []rollout.Rollout
	if err := json.Unmarshal([]byte(stdout), &hist); code != 0 || err != nil {
		t.Fatalf("history exited %d, %v: %s", code, err, stdout)
	}
	var phases []string
	for _, h := range hist {
		phases = append(phases, h.Version+":"+string(h.Phase))
	}
	if got, want := strings.Join(phases, " "), "v1:succeeded v3:succeeded v2:rolled_back v1:succeeded"; got != want {
		t.Fatalf("history = %s, want %s", got, want)
	}
	code, stdout, _ = runCLI(t, p, "history", "shop")
	if code != 0 || !strings.Contains(stdout, "rolled_back") {
		t.Fatalf("history table exited %d:\n%s", code, stdout)
	}

	code, stdout, _ = runCLI(t, p, "audit", "--limit", "500", "-o", "json")
	var events []audit.Event
	if err := json.Unmarshal([]byte(stdout), &events); code != 0 || err != nil {
		t.Fatalf("audit exited %d, %v", code, err)
	}
	for i, j := 0, len(events)-1; i < j; i, j = i+1, j-1 {
		events[i], events[j] = events[j], events[i]
	}
	if err := audit.Verify(events); err != nil {
		t.Fatalf("audit chain from the API does not verify: %v", err)
	}
	var manual, auto bool
	for _, e := range events {
		manual = manual || (e.Action == audit.ActionRollbackManual && e.Reason == "checkout button missing" && e.Actor == "user:admin")
		auto = auto || (e.Action == audit.ActionRollbackAuto && e.Data["gate"] != "")
	}
	if !manual || !auto {
		t.Fatalf("audit has manual rollback with reason and actor: %v, automatic rollback with gate: %v", manual, auto)
	}
}

func TestE2E_MetricsAndAuth(t *testing.T) {
	p := startPlane(t, quickSteps)
	p.deploy(t, "v1", nil)
	p.onlyVersion(t, "v1", 5)

	get := func(token string) (int, string) {
		req, _ := http.NewRequest(http.MethodGet, p.APIURL+"/metrics", nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, _ := get(""); code != http.StatusUnauthorized {
		t.Fatalf("/metrics without a token: %d, want 401", code)
	}
	code, body := get(p.AdminToken)
	if code != 200 {
		t.Fatalf("/metrics: %d", code)
	}
	for _, want := range []string{`shipgate_router_requests_total{`, `version="v1"`, `shipgate_router_request_duration_seconds_bucket{`} {
		if !strings.Contains(body, want) {
			t.Fatalf("/metrics lacks %s", want)
		}
	}
	if strings.Contains(body, p.AdminToken) {
		t.Fatal("/metrics shows the admin token")
	}
}

func TestServer_SecretsStayPrivate(t *testing.T) {
	p := startPlane(t, quickSteps)
	if !strings.HasPrefix(p.APIURL, "http://127.0.0.1:") || server.DefaultListen != "127.0.0.1:7070" {
		t.Fatalf("API at %s (default %s), want loopback", p.APIURL, server.DefaultListen)
	}
	fi, err := os.Stat(filepath.Join(p.dataDir, server.TokenFile))
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != 0o600 {
		t.Fatalf("token file mode %o, want 600", got)
	}
	// Use the token a few times, then look for it in the logs.
	for range 3 {
		if code, _, stderr := runCLI(t, p, "status"); code != 0 {
			t.Fatalf("status exited %d: %s", code, stderr)
		}
	}
	if code, _, _ := runCLI(t, p, "deploy", "shop", "v1", "--wait"); code != 0 {
		t.Fatalf("deploy exited %d", code)
	}
	logs := p.logs.String()
	if !strings.Contains(logs, "rollout") {
		t.Fatalf("the server logged nothing about the rollout; the check below would prove nothing:\n%s", logs)
	}
	if strings.Contains(logs, p.AdminToken) || strings.Contains(logs, p.AdminToken[4:]) {
		t.Fatal("the admin token appears in the server's logs")
	}
	code, stdout, _ := runCLI(t, p, "audit", "-o", "json")
	if code != 0 || strings.Contains(stdout, p.AdminToken) {
		t.Fatalf("audit exited %d or shows the token", code)
	}
	// A wrong token is refused.
	var out, errOut bytes.Buffer
	if code := cli.Main(context.Background(), []string{"--server", p.APIURL, "--token", "sgt_wrong", "status"}, strings.NewReader(""), &out, &errOut); code != 1 {
		t.Fatalf("a wrong token exited %d, want 1", code)
	}
}
