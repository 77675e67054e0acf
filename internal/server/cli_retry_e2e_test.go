package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/shipgate/shipgate/internal/api"
	"github.com/shipgate/shipgate/internal/audit"
	"github.com/shipgate/shipgate/internal/cli"
	"github.com/shipgate/shipgate/internal/rollout"
)

// losingProxy forwards requests to a server and passes its answers on,
// except for the next request that carries an Idempotency-Key once armed:
// that one it forwards, waits for the server's answer, and closes the
// client's connection without it, as a load balancer in front of a dying
// server would. Every answer closes its connection, so that Go's HTTP
// transport never sends a request again by itself on a reused one.
type losingProxy struct {
	*httptest.Server
	mu    sync.Mutex
	armed bool
	keys  []string
}

func newLosingProxy(t *testing.T, target string) *losingProxy {
	t.Helper()
	p := &losingProxy{}
	p.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key := r.Header.Get(api.IdempotencyKeyHeader)
		p.mu.Lock()
		lose := key != "" && p.armed
		if key != "" {
			p.keys = append(p.keys, r.Method+" "+r.URL.Path+" "+key)
			p.armed = false
		}
		p.mu.Unlock()
		out, err := http.NewRequestWithContext(r.Context(), r.Method, target+r.URL.RequestURI(), r.Body)
		if err != nil {
			t.Error(err)
			return
		}
		out.Header = r.Header.Clone()
		resp, err := http.DefaultTransport.RoundTrip(out)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		if lose {
			conn, _, err := http.NewResponseController(w).Hijack()
			if err == nil {
				_ = conn.Close()
			}
			return
		}
		for k, v := range resp.Header {
			w.Header()[k] = v
		}
		w.Header().Set("Connection", "close")
		w.WriteHeader(resp.StatusCode)
		_, _ = w.Write(body)
	}))
	t.Cleanup(p.Close)
	return p
}

func (p *losingProxy) arm() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.armed = true
}

func (p *losingProxy) sent() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.keys...)
}

// TestE2E_CLIRetriesALostAnswerOnce runs `shipgate deploy` and `shipgate
// rollback` through a proxy that loses the server's answer to the first
// attempt, after the server has carried it out. The CLI sends the request
// again with the same Idempotency-Key, says so, gets the first answer and
// prints the result: one rollout of the deploy, one rollback (a second
// one would have gone back one more release, or been refused).
func TestE2E_CLIRetriesALostAnswerOnce(t *testing.T) {
	p := startPlane(t, "[{weight: 50, bake: 2s}]")
	ctx := context.Background()
	proxy := newLosingProxy(t, p.APIURL)
	cliVia := func(args ...string) (int, string, string) {
		t.Helper()
		var out, errOut bytes.Buffer
		full := append([]string{"--server", proxy.URL, "--token", p.AdminToken}, args...)
		code := cli.Main(ctx, full, strings.NewReader(""), &out, &errOut)
		return code, out.String(), errOut.String()
	}
	client := api.NewClient(p.APIURL, p.AdminToken, nil)
	if code, _, stderr := runCLI(t, p, "deploy", "shop", "v1", "--wait"); code != 0 {
		t.Fatalf("deploy v1 exited %d: %s", code, stderr)
	}
	p.load(t, 100)

	// deploy v2, its first answer lost.
	proxy.arm()
	code, stdout, stderr := cliVia("deploy", "shop", "v2", "--wait", "-o", "json")
	if code != 0 {
		t.Fatalf("deploy v2 through a lost answer exited %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
	if !strings.Contains(stderr, "attempt 1 failed") || !strings.Contains(stderr, "same Idempotency-Key") {
		t.Errorf("the CLI did not say it sent the deploy again:\n%s", stderr)
	}
	var r rollout.Rollout
	if err := json.Unmarshal([]byte(stdout), &r); err != nil || r.Version != "v2" || (r.Phase != rollout.PhaseSucceeded && r.PromotedAt.IsZero()) {
		t.Fatalf("deploy v2 printed %q (%v), want v2 live", stdout, err)
	}
	_ = p.Engine.Wait(ctx, "production")
	keys := proxy.sent()
	if len(keys) != 2 || keys[0] != keys[1] || !strings.HasPrefix(keys[0], "POST /v1/deploys ") {
		t.Errorf("keyed requests %q, want the deploy twice with one key", keys)
	}
	hist, err := client.History(ctx, "shop", "production", 10)
	if err != nil {
		t.Fatal(err)
	}
	if got := versions(hist); got != "v2 v1" {
		t.Fatalf("rollouts after the deploy = %s, want v2 v1: the deploy carried out once", got)
	}

	// rollback, its first answer lost: once, back to v1.
	proxy.arm()
	code, stdout, stderr = cliVia("rollback", "shop", "--reason", "checkout button missing", "--wait")
	if code != 0 {
		t.Fatalf("rollback through a lost answer exited %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
	if !strings.Contains(stderr, "attempt 1 failed") {
		t.Errorf("the CLI did not say it sent the rollback again:\n%s", stderr)
	}
	if hist, err = client.History(ctx, "shop", "production", 10); err != nil {
		t.Fatal(err)
	}
	if got := versions(hist); got != "v1 v2 v1" {
		t.Fatalf("rollouts after the rollback = %s, want v1 v2 v1: one rollback", got)
	}
	if hist[0].Kind != rollout.KindRollback {
		t.Errorf("the last rollout is a %s, want a rollback", hist[0].Kind)
	}
	events, err := client.Audit(ctx, audit.Filter{Action: audit.ActionRollbackManual})
	if err != nil || len(events) != 1 {
		t.Errorf("rollback.manual events = %d (%v), want 1", len(events), err)
	}
	st, err := client.Status(ctx, "shop")
	if err != nil || st.Envs[0].State.Stable != "v1" {
		t.Errorf("stable after the rollback = %+v (%v), want v1", st.Envs, err)
	}
}

func versions(hist []rollout.Rollout) string {
	var v []string
	for _, r := range hist {
		v = append(v, r.Version)
	}
	return strings.Join(v, " ")
}
