package ha

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/shipgate/shipgate/internal/audit"
	"github.com/shipgate/shipgate/internal/pgtest"
	"github.com/shipgate/shipgate/internal/postgres"
	"github.com/shipgate/shipgate/internal/rollout"
)

// helperEnv, set, makes the test binary a helper process: an Elector on
// the store at its value that, while leading, writes one audit event per
// tick and prints what happens to it.
const helperEnv = "SHIPGATE_HA_HELPER_DSN"

func TestMain(m *testing.M) {
	if dsn := os.Getenv(helperEnv); dsn != "" {
		os.Exit(helperMain(dsn, os.Getenv("SHIPGATE_HA_HELPER_ID")))
	}
	os.Exit(pgtest.Main(m))
}

// helperMain is one "server": it leads when it can; while leading it
// commits an audit event every 50ms, reason "<id> term <n>". It prints
// "leading <term>", "refused <term>" and "stepped down <term>".
func helperMain(dsn, id string) int {
	ctx := context.Background()
	s, err := postgres.Open(ctx, dsn)
	if err != nil {
		fmt.Println("open:", err)
		return 1
	}
	var mu sync.Mutex
	say := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Printf(format+"\n", args...)
	}
	e := &Elector{Store: s, ID: id, TTL: helperTTL, Lead: func(ctx context.Context, term int64) {
		say("leading %d", term)
		defer say("stepped down %d", term)
		for ctx.Err() == nil {
			err := s.Commit(ctx, rollout.Change{Audit: []audit.Event{{Actor: "shipgate", Action: audit.ActionStep, Subject: "rollout/1", Reason: fmt.Sprintf("%s term %d", id, term)}}})
			if errors.Is(err, postgres.ErrStaleTerm) {
				say("refused %d", term)
			}
			sleep(ctx, 50*time.Millisecond)
		}
	}}
	e.Run(ctx)
	return 0
}

// helperTTL is the helpers' lease. A leader steps down when it could not
// renew within 4/5 of it: shorter, and a busy machine that holds a
// leader back for a moment starts a term the test did not ask for.
const helperTTL = 3 * time.Second

// helper is a running helper process and the lines it printed.
type helper struct {
	id    string
	cmd   *exec.Cmd
	lines chan string
}

func startHelper(t *testing.T, dsn, id string) *helper {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"="+dsn, "SHIPGATE_HA_HELPER_ID="+id)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	h := &helper{id: id, cmd: cmd, lines: make(chan string, 100)}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			h.lines <- sc.Text()
		}
		_, _ = io.Copy(io.Discard, out)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGCONT)
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	return h
}

// awaitLeader waits for one of hs to print "leading" and returns it with
// its term.
func awaitLeader(t *testing.T, within time.Duration, hs ...*helper) (*helper, int64) {
	t.Helper()
	timeout := time.After(within)
	for {
		for _, h := range hs {
			select {
			case l := <-h.lines:
				if term, ok := strings.CutPrefix(l, "leading "); ok {
					n, _ := strconv.ParseInt(term, 10, 64)
					return h, n
				}
			default:
			}
		}
		select {
		case <-timeout:
			t.Fatalf("no leader within %s", within)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

func awaitLine(t *testing.T, h *helper, want string, within time.Duration) {
	t.Helper()
	timeout := time.After(within)
	for {
		select {
		case l := <-h.lines:
			if l == want {
				return
			}
		case <-timeout:
			t.Fatalf("%s did not print %q within %s", h.id, want, within)
		}
	}
}

// TestElector_FailoverAndFencing runs three real processes on one real
// PostgreSQL: one leads; kill -9 of it, and another leads within the
// lease (measured); SIGSTOP of that one, another takes over, SIGCONT: the
// stale leader's writes are refused and it steps down. The audit chain
// verifies, and no event of a term is written after a later term's first.
func TestElector_FailoverAndFencing(t *testing.T) {
	dsn := pgtest.Shared(t).NewDatabase(t)
	s, err := postgres.Open(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	hs := []*helper{startHelper(t, dsn, "s1"), startHelper(t, dsn, "s2"), startHelper(t, dsn, "s3")}

	first, term1 := awaitLeader(t, 20*time.Second, hs...)
	awaitEventOfTerm(t, s, term1) // it writes events
	killed := time.Now()
	if err := first.cmd.Process.Kill(); err != nil { // SIGKILL
		t.Fatal(err)
	}
	rest := without(hs, first)
	second, term2 := awaitLeader(t, 20*time.Second, rest...)
	t.Logf("kill -9 of the leader %s (term %d): %s leads in term %d after %s (lease %s)",
		first.id, term1, second.id, term2, time.Since(killed).Round(time.Millisecond), helperTTL)
	if term2 <= term1 {
		t.Fatalf("new term %d is not above %d", term2, term1)
	}

	awaitEventOfTerm(t, s, term2)
	if err := second.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	stopped := time.Now()
	third, term3 := awaitLeader(t, 20*time.Second, without(rest, second)...)
	t.Logf("SIGSTOP of the leader %s: %s leads in term %d after %s", second.id, third.id, term3, time.Since(stopped).Round(time.Millisecond))
	awaitEventOfTerm(t, s, term3)
	if err := second.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	awaitLine(t, second, fmt.Sprintf("stepped down %d", term2), 10*time.Second)

	chain, err := s.AuditChain(t.Context(), 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := audit.Verify(chain); err != nil {
		t.Fatalf("audit chain: %v", err)
	}
	// Terms appear in order: once a term wrote, no earlier term writes.
	last := int64(0)
	counts := map[int64]int{}
	for _, e := range chain {
		var id string
		var term int64
		if _, err := fmt.Sscanf(e.Reason, "%s term %d", &id, &term); err != nil {
			t.Fatalf("event %d reason %q", e.Seq, e.Reason)
		}
		if term < last {
			t.Fatalf("event %d of term %d written after term %d began: a stale leader committed", e.Seq, term, last)
		}
		last = term
		counts[term]++
	}
	for _, term := range []int64{term1, term2, term3} {
		if counts[term] == 0 {
			t.Errorf("no event of term %d in the chain (%v)", term, counts)
		}
	}
	if last != term3 {
		t.Errorf("last event of term %d, want the live leader's %d", last, term3)
	}
	l, err := s.Leader(t.Context())
	if err != nil || l.Holder != third.id || l.Term != term3 {
		t.Errorf("lease = %+v, %v; want %s in term %d", l, err, third.id, term3)
	}
}

// awaitEventOfTerm waits until the audit chain holds an event written in
// term (a leader writes its first event some time after it prints
// "leading": on a busy machine, a fixed sleep may not cover it).
func awaitEventOfTerm(t *testing.T, s *postgres.Store, term int64) {
	t.Helper()
	suffix := fmt.Sprintf(" term %d", term)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		chain, err := s.AuditChain(t.Context(), 1)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range chain {
			if strings.HasSuffix(e.Reason, suffix) {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no event of term %d in the audit chain within 10s (%d events)", term, len(chain))
		}
	}
}

func without(hs []*helper, h *helper) []*helper {
	var out []*helper
	for _, x := range hs {
		if x != h {
			out = append(out, x)
		}
	}
	return out
}
