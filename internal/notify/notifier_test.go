package notify_test

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/shipgate/shipgate/internal/audit"
	"github.com/shipgate/shipgate/internal/notify"
	"github.com/shipgate/shipgate/internal/rollout"
	"github.com/shipgate/shipgate/internal/sqlite"
)

var downFor = flag.Duration("notify.down", 4*time.Second, "how long the receiver is down in TestNotifier_ReceiverDownAndKill (the issue's scenario: 30s)")

var secret = []byte("s3cret-for-tests")

// receiver is a real HTTP receiver that records what it got, by event id.
type receiver struct {
	mu     sync.Mutex
	got    map[string][]received
	order  []string
	hang   bool
	ln     net.Listener
	srv    *http.Server
	verify bool
	t      *testing.T
}

type received struct {
	Header http.Header
	Body   []byte
	SigErr error
}

func newReceiver(t *testing.T, addr string) *receiver {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	return receiverOn(t, ln)
}

func receiverOn(t *testing.T, ln net.Listener) *receiver {
	r := &receiver{got: map[string][]received{}, t: t, verify: true}
	r.start(ln)
	t.Cleanup(r.stop)
	return r
}

func (r *receiver) start(ln net.Listener) {
	r.ln = ln
	r.srv = &http.Server{Handler: http.HandlerFunc(r.serve), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = r.srv.Serve(ln) }()
}

func (r *receiver) stop() { _ = r.srv.Close() }

// downReceiver is a receiver that is down: its loopback port is bound but
// not listened on, so connections to it are refused, and no other process
// can take the port before the receiver comes back up on it. (A port
// closed and bound again later may have been taken in between.)
type downReceiver struct {
	fd   int
	addr string
}

func newDownReceiver(t *testing.T) *downReceiver {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		_ = syscall.Close(fd)
		t.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		_ = syscall.Close(fd)
		t.Fatal(err)
	}
	d := &downReceiver{fd: fd, addr: fmt.Sprintf("127.0.0.1:%d", sa.(*syscall.SockaddrInet4).Port)}
	t.Cleanup(func() {
		if d.fd >= 0 {
			_ = syscall.Close(d.fd)
		}
	})
	return d
}

func (d *downReceiver) url() string { return "http://" + d.addr + "/hook" }

// up starts listening on the port: the receiver is back.
func (d *downReceiver) up(t *testing.T) *receiver {
	t.Helper()
	if err := syscall.Listen(d.fd, 128); err != nil {
		t.Fatal(err)
	}
	f := os.NewFile(uintptr(d.fd), d.addr)
	d.fd = -1
	ln, err := net.FileListener(f) // a duplicate of the descriptor
	_ = f.Close()
	if err != nil {
		t.Fatal(err)
	}
	return receiverOn(t, ln)
}

func (r *receiver) url() string { return "http://" + r.ln.Addr().String() + "/hook" }

func (r *receiver) serve(w http.ResponseWriter, req *http.Request) {
	if r.hang {
		<-req.Context().Done()
		return
	}
	body, _ := io.ReadAll(req.Body)
	var sigErr error
	if r.verify {
		sigErr = notify.Verify(secret, req.Header.Get(notify.HeaderTimestamp), req.Header.Get(notify.HeaderSignature), body, time.Now(), 5*time.Minute)
	}
	id := req.Header.Get(notify.HeaderEventID)
	r.mu.Lock()
	if len(r.got[id]) == 0 {
		r.order = append(r.order, id)
	}
	r.got[id] = append(r.got[id], received{Header: req.Header.Clone(), Body: body, SigErr: sigErr})
	r.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

func (r *receiver) snapshot() map[string][]received {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string][]received, len(r.got))
	for k, v := range r.got {
		out[k] = append([]received(nil), v...)
	}
	return out
}

func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func openStore(t *testing.T, path string) *sqlite.Store {
	t.Helper()
	st, err := sqlite.Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st
}

var _ notify.Store = (*sqlite.Store)(nil)

// rolledBack appends what the engine writes when a canary is convicted:
// the rollback decision with its evidence, then the rollback's end.
func rolledBack(t *testing.T, st *sqlite.Store, rolloutID int64, version string) {
	t.Helper()
	subject := "shop/production/" + version
	id := fmt.Sprint(rolloutID)
	err := st.Commit(t.Context(), rollout.Change{Audit: []audit.Event{
		{Actor: "shipgate", Action: audit.ActionRollbackAuto, Subject: subject, Reason: "error_rate 0.12 > 0.01 at 10%", Outcome: "ok",
			Data: map[string]string{"rollout": id, "gate": "error_rate", "value": "0.12", "threshold": "0.01", "step": "3"}},
		{Actor: "shipgate", Action: audit.ActionRolledBack, Subject: subject, Reason: "traffic back on 1.4.0; " + version + " stopped", Outcome: "ok",
			Data: map[string]string{"rollout": id, "seconds_to_restore_traffic": "0.004"}},
	}})
	if err != nil {
		t.Fatal(err)
	}
}

func deployed(t *testing.T, st *sqlite.Store, n int) {
	t.Helper()
	for i := range n {
		err := st.Commit(t.Context(), rollout.Change{Audit: []audit.Event{{Actor: "user:ci", Action: audit.ActionDeploy,
			Subject: fmt.Sprintf("shop/production/1.%d.0", i), Reason: "deploy", Outcome: "ok", Data: map[string]string{"rollout": fmt.Sprint(100 + i)}}}})
		if err != nil {
			t.Fatal(err)
		}
	}
}

func run(t *testing.T, n *notify.Notifier) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { defer close(done); _ = n.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
}

func TestNotifier_RolledBackSignedInEveryFormat(t *testing.T) {
	st := openStore(t, filepath.Join(t.TempDir(), "shipgate.db"))
	// Something happened before notifications were set up: not sent.
	deployed(t, st, 1)
	recv := map[string]*receiver{}
	var hooks []notify.Webhook
	for _, f := range []string{notify.FormatJSON, notify.FormatCDEvents, notify.FormatSlack, notify.FormatTeams} {
		recv[f] = newReceiver(t, "127.0.0.1:0")
		hooks = append(hooks, notify.Webhook{Name: f, URL: recv[f].url(), Format: f, Secret: secret})
	}
	n, err := notify.New(notify.Options{Store: st, Webhooks: hooks, Poll: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Collect(t.Context()); err != nil { // sets the cursor at the end of the log
		t.Fatal(err)
	}
	run(t, n)
	rolledBack(t, st, 7, "1.5.0")

	for f, r := range recv {
		waitFor(t, f+" receiver", 10*time.Second, func() bool { return len(r.snapshot()) == 1 })
		got := r.snapshot()
		if len(got) != 1 {
			t.Fatalf("%s got %d events, want only the rollback (not the earlier deploy)", f, len(got))
		}
		for id, rs := range got {
			if len(rs) != 1 {
				t.Fatalf("%s got %s %d times", f, id, len(rs))
			}
			rec := rs[0]
			if rec.SigErr != nil {
				t.Fatalf("%s: signature: %v", f, rec.SigErr)
			}
			if got := rec.Header.Get(notify.HeaderEventType); got != notify.RolloutRolledBack {
				t.Fatalf("%s: event type header %q", f, got)
			}
			var body map[string]any
			if err := json.Unmarshal(rec.Body, &body); err != nil {
				t.Fatalf("%s: body is not JSON: %v", f, err)
			}
			s := string(rec.Body)
			switch f {
			case notify.FormatJSON:
				var ev struct {
					Schema string
					notify.Event
				}
				_ = json.Unmarshal(rec.Body, &ev)
				if ev.Schema != notify.SchemaVersion || ev.Type != notify.RolloutRolledBack || ev.App != "shop" || ev.Version != "1.5.0" ||
					ev.Rollout != 7 || ev.Data["gate"] != "error_rate" || ev.Data["value"] != "0.12" || ev.Data["threshold"] != "0.01" ||
					ev.Reason != "error_rate 0.12 > 0.01 at 10%" {
					t.Fatalf("json payload = %s", s)
				}
			case notify.FormatCDEvents:
				ctx := body["context"].(map[string]any)
				if ctx["type"] != "dev.cdevents.service.rolledback.0.2.0" || ctx["id"] != id || ctx["specversion"] != "0.4.1" {
					t.Fatalf("cdevents payload = %s", s)
				}
			case notify.FormatSlack:
				att := body["attachments"].([]any)[0].(map[string]any)
				if body["text"] != "shop 1.5.0 was rolled back in production" || att["color"] != "danger" || !strings.Contains(s, `"title":"gate","value":"error_rate"`) {
					t.Fatalf("slack payload = %s", s)
				}
			case notify.FormatTeams:
				att := body["attachments"].([]any)[0].(map[string]any)
				card := att["content"].(map[string]any)
				if body["type"] != "message" || att["contentType"] != "application/vnd.microsoft.card.adaptive" || card["type"] != "AdaptiveCard" ||
					!strings.Contains(s, `"title":"threshold","value":"0.01"`) {
					t.Fatalf("teams payload = %s", s)
				}
			}
		}
	}
	// A forged body fails verification.
	for _, rs := range recv[notify.FormatJSON].snapshot() {
		h := rs[0].Header
		if err := notify.Verify(secret, h.Get(notify.HeaderTimestamp), h.Get(notify.HeaderSignature), append(rs[0].Body, ' '), time.Now(), time.Minute); err == nil {
			t.Fatal("a changed body verified")
		}
		if err := notify.Verify(secret, h.Get(notify.HeaderTimestamp), h.Get(notify.HeaderSignature), rs[0].Body, time.Now().Add(time.Hour), time.Minute); err == nil {
			t.Fatal("an hour-old delivery verified")
		}
	}
}

// TestHelperNotifier is not a test: TestNotifier_ReceiverDownAndKill runs
// the test binary again with SHIPGATE_NOTIFY_HELPER set, as the server
// process whose notifier it kills with SIGKILL.
func TestHelperNotifier(t *testing.T) {
	db, url := os.Getenv("SHIPGATE_NOTIFY_DB"), os.Getenv("SHIPGATE_NOTIFY_URL")
	if os.Getenv("SHIPGATE_NOTIFY_HELPER") != "1" {
		t.Skip("helper process of TestNotifier_ReceiverDownAndKill")
	}
	st, err := sqlite.Open(context.Background(), db)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	n, err := notify.New(notify.Options{Store: st, Poll: 20 * time.Millisecond, MinBackoff: 100 * time.Millisecond, MaxBackoff: time.Second,
		Webhooks: []notify.Webhook{{Name: "ops", URL: url, Secret: secret, Timeout: time.Second}}})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	_ = n.Run(context.Background()) // until killed
}

func startHelper(t *testing.T, db, url string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperNotifier$", "-test.count=1")
	cmd.Env = append(os.Environ(), "SHIPGATE_NOTIFY_HELPER=1", "SHIPGATE_NOTIFY_DB="+db, "SHIPGATE_NOTIFY_URL="+url)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	return cmd
}

// TestNotifier_ReceiverDownAndKill: the receiver is down; the notifier
// process queues and retries, is killed with SIGKILL in the middle, more
// happens while it is dead, a new one starts, the receiver comes back up:
// every notification arrives exactly once by event id, signed.
func TestNotifier_ReceiverDownAndKill(t *testing.T) {
	db := filepath.Join(t.TempDir(), "shipgate.db")
	st := openStore(t, db)
	// The receiver is down, on an address reserved for it.
	down := newDownReceiver(t)
	url := down.url()
	downAt := time.Now()

	// Notifications start at the end of the log.
	n0, err := notify.New(notify.Options{Store: st, Webhooks: []notify.Webhook{{Name: "ops", URL: url}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := n0.Collect(t.Context()); err != nil {
		t.Fatal(err)
	}

	first := startHelper(t, db, url)
	deployed(t, st, 12)
	rolledBack(t, st, 7, "1.5.0")
	// The first process queued everything and retried at least twice.
	waitFor(t, "retries while the receiver is down", 20*time.Second, func() bool {
		ds, err := st.ListNotifications(t.Context(), "", 100)
		if err != nil || len(ds) != 13 {
			return false
		}
		for _, d := range ds {
			if d.Attempts < 2 || d.State != notify.StatePending || d.LastError == "" {
				return false
			}
		}
		return true
	})
	time.Sleep(*downFor / 2)
	if err := first.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = first.Wait()
	t.Logf("notifier killed with SIGKILL %v after the receiver went down", time.Since(downAt).Round(time.Millisecond))

	// Meanwhile more happens, with no notifier running.
	rolledBack(t, st, 8, "1.6.0")
	startHelper(t, db, url)
	if d := *downFor - time.Since(downAt); d > 0 {
		time.Sleep(d)
	}
	back := down.up(t)
	t.Logf("receiver back up after %v", time.Since(downAt).Round(time.Millisecond))

	waitFor(t, "every notification", 30*time.Second, func() bool { return len(back.snapshot()) == 14 })
	// The receiver answers before the notifier records a delivery as
	// sent: wait for the outbox to say so too.
	sent := 0
	waitFor(t, "every delivery recorded as sent", 10*time.Second, func() bool {
		ds, err := st.ListNotifications(t.Context(), notify.StateSent, 100)
		if err != nil {
			t.Fatal(err)
		}
		sent = len(ds)
		return sent == 14
	})
	// Let a few more poll rounds pass: nothing may come twice.
	time.Sleep(500 * time.Millisecond)
	for id, rs := range back.snapshot() {
		if len(rs) != 1 {
			t.Errorf("%s delivered %d times", id, len(rs))
		}
		if rs[0].SigErr != nil {
			t.Errorf("%s: %v", id, rs[0].SigErr)
		}
	}
	ds, err := st.ListNotifications(t.Context(), notify.StateSent, 100)
	if err != nil || len(ds) != 14 {
		t.Fatalf("sent deliveries in the outbox = %d (%v), want 14 (and %d before)", len(ds), err, sent)
	}
}

// TestNotifier_HangingReceiver: a receiver that never answers holds up
// only its own deliveries; the attempt times out and is retried.
func TestNotifier_HangingReceiver(t *testing.T) {
	st := openStore(t, filepath.Join(t.TempDir(), "shipgate.db"))
	hung, ok := newReceiver(t, "127.0.0.1:0"), newReceiver(t, "127.0.0.1:0")
	hung.hang = true
	n, err := notify.New(notify.Options{Store: st, Poll: 20 * time.Millisecond, MinBackoff: 50 * time.Millisecond, Webhooks: []notify.Webhook{
		{Name: "hung", URL: hung.url(), Secret: secret, Timeout: 30 * time.Second},
		{Name: "ok", URL: ok.url(), Secret: secret},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Collect(t.Context()); err != nil {
		t.Fatal(err)
	}
	run(t, n)
	rolledBack(t, st, 1, "1.5.0")
	deployed(t, st, 3)
	// The healthy receiver gets all four while the other hangs on the first.
	// The receiver has an answer before the notifier records it as sent,
	// so wait for both.
	pending := -1
	waitFor(t, "the healthy receiver", 10*time.Second, func() bool {
		ds, err := st.ListNotifications(t.Context(), notify.StatePending, 100)
		if err != nil {
			t.Fatal(err)
		}
		pending = len(ds)
		return len(ok.snapshot()) == 4 && pending == 4
	})
	if pending != 4 {
		t.Fatalf("pending deliveries = %d, want the hung receiver's 4", pending)
	}
}

func TestNotifier_WeeklyReportOncePerWeek(t *testing.T) {
	st := openStore(t, filepath.Join(t.TempDir(), "shipgate.db"))
	r := newReceiver(t, "127.0.0.1:0")
	paris, _ := time.LoadLocation("Europe/Paris")
	// Monday 30 November 2026, 09:05 in Paris: five minutes after "Mon 09:00".
	now := time.Date(2026, 11, 30, 9, 5, 0, 0, paris)
	builds := 0
	opts := notify.Options{Store: st, Now: func() time.Time { return now }, Webhooks: []notify.Webhook{{Name: "team", URL: r.url(), Format: notify.FormatSlack}},
		Schedule: &notify.Schedule{Day: time.Monday, At: 9 * time.Hour, Location: paris, To: []string{"team"},
			Report: func(context.Context) (notify.Event, error) {
				builds++
				return notify.Event{ID: "report-2026-W48", Type: notify.ReportWeekly, Time: now, Title: "Week 2026-W48: deploy success rate 66.7% (4 of 6 deploys)"}, nil
			}}}
	for range 2 { // a restart builds it again, but it is queued once
		n, err := notify.New(opts)
		if err != nil {
			t.Fatal(err)
		}
		for range 3 {
			if err := n.ScheduleReport(t.Context()); err != nil {
				t.Fatal(err)
			}
		}
	}
	ds, err := st.ListNotifications(t.Context(), "", 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(ds) != 1 || ds[0].EventID != "report-2026-W48" || builds != 2 {
		t.Fatalf("queued %d (%v), built %d times; want one report-2026-W48, built once per process", len(ds), ds, builds)
	}
	// Sunday evening: the last delivery time was six days ago, too late
	// to catch up; nothing new.
	now = time.Date(2026, 12, 6, 20, 0, 0, 0, paris)
	n, _ := notify.New(opts)
	if err := n.ScheduleReport(t.Context()); err != nil {
		t.Fatal(err)
	}
	if builds != 2 {
		t.Fatalf("built a report %d days after its time", 6)
	}
}

// TestNotifier_WebhookOfOneApp: a webhook of one app gets that app's
// events only; a webhook of the server gets every app's.
func TestNotifier_WebhookOfOneApp(t *testing.T) {
	st := openStore(t, filepath.Join(t.TempDir(), "shipgate.db"))
	server, billing := newReceiver(t, "127.0.0.1:0"), newReceiver(t, "127.0.0.1:0")
	n, err := notify.New(notify.Options{Store: st, Poll: 20 * time.Millisecond, Webhooks: []notify.Webhook{
		{Name: "ops", URL: server.url()},
		{Name: "billing-team", URL: billing.url(), Apps: []string{"billing"}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Collect(t.Context()); err != nil {
		t.Fatal(err)
	}
	run(t, n)
	for i, subject := range []string{"shop/production/1.0.0", "billing/production/2.0.0", "shop/production/1.1.0"} {
		if err := st.Commit(t.Context(), rollout.Change{Audit: []audit.Event{{Actor: "user:ci", Action: audit.ActionDeploy,
			Subject: subject, Reason: "deploy", Outcome: "ok", Data: map[string]string{"rollout": fmt.Sprint(i + 1)}}}}); err != nil {
			t.Fatal(err)
		}
	}
	// The last event is recorded as sent to the server's webhook once the
	// ones before it are (one delivery loop, in order of the log): then
	// billing's webhook has had its chance at every event.
	waitFor(t, "every event sent to ops", 10*time.Second, func() bool {
		ds, err := st.ListNotifications(t.Context(), notify.StateSent, 100)
		if err != nil {
			t.Fatal(err)
		}
		sent := 0
		for _, d := range ds {
			if d.Webhook == "ops" {
				sent++
			}
		}
		return sent == 3
	})
	waitFor(t, "billing's event sent to billing-team", 10*time.Second, func() bool { return len(billing.snapshot()) == 1 })
	ds, err := st.ListNotifications(t.Context(), "", 100)
	if err != nil {
		t.Fatal(err)
	}
	queued := 0
	for _, d := range ds {
		if d.Webhook == "billing-team" {
			queued++
			if !strings.Contains(string(d.Payload), `"app":"billing"`) {
				t.Fatalf("billing-team was queued another app's event: %s", d.Payload)
			}
		}
	}
	if queued != 1 {
		t.Fatalf("billing-team was queued %d events, want billing's one", queued)
	}
	for _, rs := range billing.snapshot() {
		if !strings.Contains(string(rs[0].Body), `"app":"billing"`) {
			t.Fatalf("billing-team got %s", rs[0].Body)
		}
	}
}
