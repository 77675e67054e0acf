package server_test

// End-to-end tests of webhooks: a real control plane rolls a real canary
// back while real HTTP receivers listen, hang, go down, and the server is
// killed with SIGKILL.

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shipgate/shipgate/internal/audit"
	"github.com/shipgate/shipgate/internal/demo"
	"github.com/shipgate/shipgate/internal/notify"
	"github.com/shipgate/shipgate/internal/rollout"
)

var receiverDown = flag.Duration("webhook.down", 30*time.Second, "how long the receiver is down in TestE2E_WebhooksExactlyOnceAcrossKill9")

const hookSecret = "e2e-webhook-secret"

// hookReceiver is a real webhook receiver. A hanging one never answers.
type hookReceiver struct {
	mu      sync.Mutex
	got     map[string]int
	bodies  map[string][]byte
	sigErrs []string
	firstAt time.Time // when the first request arrived
	hang    bool
	ln      net.Listener
	srv     *http.Server
}

func startReceiver(t *testing.T, addr string, hang bool) *hookReceiver {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	r := &hookReceiver{got: map[string]int{}, bodies: map[string][]byte{}, hang: hang, ln: ln}
	r.srv = &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.mu.Lock()
		if r.firstAt.IsZero() {
			r.firstAt = time.Now()
		}
		r.mu.Unlock()
		if r.hang {
			<-req.Context().Done()
			return
		}
		body, _ := io.ReadAll(req.Body)
		id := req.Header.Get(notify.HeaderEventID)
		err := notify.Verify([]byte(hookSecret), req.Header.Get(notify.HeaderTimestamp), req.Header.Get(notify.HeaderSignature), body, time.Now(), 5*time.Minute)
		r.mu.Lock()
		r.got[id]++
		r.bodies[id] = body
		if err != nil {
			r.sigErrs = append(r.sigErrs, id+": "+err.Error())
		}
		r.mu.Unlock()
		w.WriteHeader(http.StatusOK)
	})}
	go func() { _ = r.srv.Serve(ln) }()
	t.Cleanup(func() { _ = r.srv.Close() })
	return r
}

func (r *hookReceiver) url() string { return "http://" + r.ln.Addr().String() + "/hook" }

// byType returns the payloads received of one trigger.
func (r *hookReceiver) byType(typ string) []notify.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []notify.Event
	for _, b := range r.bodies {
		var ev notify.Event
		if json.Unmarshal(b, &ev) == nil && ev.Type == typ {
			out = append(out, ev)
		}
	}
	return out
}

// TestE2E_WebhookRolledBackWhileAnotherHangs: the failing-payments canary
// is rolled back as fast as without webhooks while one receiver hangs on
// every request; the other gets the signed rolled-back notification with
// the gate that convicted the canary.
func TestE2E_WebhookRolledBackWhileAnotherHangs(t *testing.T) {
	t.Setenv("SHIPGATE_E2E_HOOK_SECRET", hookSecret)
	ok, hung := startReceiver(t, "127.0.0.1:0", false), startReceiver(t, "127.0.0.1:0", true)
	yaml := fmt.Sprintf(testConfig, shopBin, freePort(t), tenPercent) + fmt.Sprintf(`notifications:
  webhooks:
    - {name: ops, url: %q, secret_env: SHIPGATE_E2E_HOOK_SECRET}
    - {name: stuck, url: %q, timeout: 60s}
`, ok.url(), hung.url())
	p := startYAML(t, yaml)
	// The webhooks in force are on the record, without their URLs' paths
	// (a chat webhook's path is its secret).
	cfgEv, found := hasAction(auditActions(t, p, "notifications"), audit.ActionNotifyConfig)
	if !found || !strings.Contains(cfgEv.Reason, "ops (json, http://127.0.0.1:") || strings.Contains(cfgEv.Reason, "/hook") {
		t.Fatalf("notify.config event = %+v (found %v)", cfgEv, found)
	}
	p.deploy(t, "v1", nil)
	load := p.load(t, 120)
	time.Sleep(time.Second)
	r := p.deploy(t, "v3", map[string]string{"PAY_FAIL_RATE": "0.4"})
	load.Stop()
	if r.Phase != rollout.PhaseRolledBack {
		t.Fatalf("v3 ended %s, want rolled back: %s", r.Phase, r.Reason)
	}
	// The hung receiver was holding a request (v1's rollout.started) from
	// before v3 began until after its traffic was restored.
	hung.mu.Lock()
	hungSince := hung.firstAt
	hung.mu.Unlock()
	if hungSince.IsZero() || !hungSince.Before(r.CreatedAt) {
		t.Fatalf("the hanging receiver got its first request at %v, want before v3 began at %v", hungSince, r.CreatedAt)
	}
	// The rollback itself, from the decision to all traffic on stable,
	// is the one step a notifier could delay: it is a weight change. (How
	// soon the canary is convicted depends on the analysis and the
	// machine's load, not on webhooks.)
	toStable := r.TrafficRestoredAt.Sub(r.FirstTrafficAt)
	if restore := r.TrafficRestoredAt.Sub(r.RollbackStartedAt); restore > 2*time.Second {
		t.Fatalf("traffic back on stable %v after the rollback decision, want within 2s while a receiver hangs", restore)
	}
	t.Logf("v3 rolled back: traffic on stable %.2fs after its first request, decision to restore %v, while a receiver hung",
		toStable.Seconds(), r.TrafficRestoredAt.Sub(r.RollbackStartedAt))

	var got []notify.Event
	deadline := time.Now().Add(20 * time.Second)
	for len(got) == 0 && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
		got = ok.byType(notify.RolloutRolledBack)
	}
	if len(got) != 1 {
		t.Fatalf("ops got %d rolled-back notifications, want 1", len(got))
	}
	ev := got[0]
	if ev.Version != "v3" || ev.Rollout != r.ID || !strings.HasPrefix(ev.Data["gate"], "error_rate") || ev.Data["threshold"] != "0.02" || ev.Data["value"] == "" {
		t.Fatalf("rolled-back notification = %+v", ev)
	}
	ok.mu.Lock()
	defer ok.mu.Unlock()
	if len(ok.sigErrs) > 0 {
		t.Fatalf("bad signatures: %v", ok.sigErrs)
	}
}

// TestE2E_WebhooksExactlyOnceAcrossKill9: the receiver is down for 30 s;
// meanwhile `shipgate server` deploys, is killed with SIGKILL in the
// middle of a rollout and restarted. When the receiver is back it gets
// every notification exactly once by event id, signed.
func TestE2E_WebhooksExactlyOnceAcrossKill9(t *testing.T) {
	t.Setenv("SHIPGATE_E2E_HOOK_SECRET", hookSecret)
	dir := t.TempDir()
	routerPort := freePort(t)
	hookAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t)) // nobody listens yet: the receiver is down
	downAt := time.Now()
	s := &serverProc{t: t, cfg: filepath.Join(dir, "shipgate.yaml"), data: filepath.Join(dir, "data"),
		api: fmt.Sprintf("http://127.0.0.1:%d", freePort(t)), logPath: filepath.Join(dir, "server.log")}
	yaml := fmt.Sprintf(`app: shop
`+baseVars+baseRun+`environments:
  production:
    listen: 127.0.0.1:%d
    sticky: {header: X-User-ID}
strategy:
  canary: {steps: [{weight: 20, bake: 6s}, {weight: 50, bake: 2s}], scale_down_delay: 1s}
`+baseAnalysis+`notifications:
  webhooks:
    - {name: ops, url: "http://%s/hook", secret_env: SHIPGATE_E2E_HOOK_SECRET, events: [rollout.started, rollout.step, rollout.succeeded, rollout.rolled_back], timeout: 2s}
`, shopBin, routerPort, hookAddr)
	client := s.launch(yaml)
	ctx := context.Background()
	r, err := client.Deploy(ctx, rollout.DeployRequest{App: "shop", Version: "v1"})
	if err != nil {
		t.Fatal(err)
	}
	s.waitRollout(client, r.ID, func(r rollout.Rollout) bool { return r.Phase == rollout.PhaseSucceeded })
	// v2's canary is to be at 20% (and the server killed) halfway through
	// the receiver's downtime.
	if d := *receiverDown/2 - 4*time.Second - time.Since(downAt); d > 0 {
		time.Sleep(d)
	}
	// The canary's gates pass only on evidence: users.
	load := &demo.Load{URL: fmt.Sprintf("http://127.0.0.1:%d", routerPort), Rate: 150}
	load.Start(ctx)
	defer load.Stop()
	time.Sleep(time.Second)
	r, err = client.Deploy(ctx, rollout.DeployRequest{App: "shop", Version: "v2"})
	if err != nil {
		t.Fatal(err)
	}
	s.waitRollout(client, r.ID, func(r rollout.Rollout) bool { return r.Weight == 20 })
	// Deliveries are failing and being retried.
	pending, err := client.Notifications(ctx, notify.StatePending, 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(pending) == 0 {
		t.Fatal("nothing pending while the receiver is down")
	}
	s.kill9()
	t.Logf("server killed with SIGKILL %v after the receiver went down, %d deliveries pending", time.Since(downAt).Round(time.Millisecond), len(pending))
	s.start()
	final := s.waitRollout(client, r.ID, func(r rollout.Rollout) bool { return r.Phase.Final() })
	load.Stop()
	if final.Phase != rollout.PhaseSucceeded {
		t.Fatalf("v2 ended %s after the restart: %s", final.Phase, final.Reason)
	}

	if d := *receiverDown - time.Since(downAt); d > 0 {
		time.Sleep(d)
	}
	recv := startReceiver(t, hookAddr, false)
	t.Logf("receiver back up after %v", time.Since(downAt).Round(time.Millisecond))

	// Everything is delivered: no delivery left pending.
	deadline := time.Now().Add(60 * time.Second)
	var sent []notify.Delivery
	for {
		left, err := client.Notifications(ctx, notify.StatePending, 1000)
		if err == nil && len(left) == 0 {
			if sent, err = client.Notifications(ctx, notify.StateSent, 1000); err == nil {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("deliveries still pending 60s after the receiver came back: %+v", left)
		}
		time.Sleep(200 * time.Millisecond)
	}
	time.Sleep(time.Second) // a few more delivery rounds: nothing may come twice
	recv.mu.Lock()
	defer recv.mu.Unlock()
	if len(sent) != len(recv.got) {
		t.Fatalf("the outbox sent %d events, the receiver got %d distinct ones", len(sent), len(recv.got))
	}
	for _, d := range sent {
		if n := recv.got[d.EventID]; n != 1 {
			t.Errorf("%s (%s) received %d times, want once", d.EventID, d.EventType, n)
		}
	}
	if len(recv.sigErrs) > 0 {
		t.Fatalf("bad signatures: %v", recv.sigErrs)
	}
	// Both rollouts' start and success, and v2's steps, were among them.
	types := map[string]int{}
	for _, d := range sent {
		types[d.EventType]++
	}
	if types[notify.RolloutStarted] != 2 || types[notify.RolloutSucceeded] != 2 || types[notify.RolloutStep] == 0 {
		t.Fatalf("delivered triggers = %v, want 2 started, 2 succeeded and some steps", types)
	}
	t.Logf("%d notifications delivered exactly once: %v", len(sent), types)
}
