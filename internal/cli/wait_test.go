package cli

import (
	"bytes"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shipgate/shipgate/internal/api"
	"github.com/shipgate/shipgate/internal/auth"
)

// lockedBuffer is a bytes.Buffer that a running command writes to while
// the test reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestCLI_DeployWaitRidesOutServerRestart is defect 14 of issue 10:
// deploy --wait gave up after 20 failed polls (exit 1) while the server
// restarted, although the rollout then succeeded. It must keep polling
// until --timeout and say that it reconnected.
func TestCLI_DeployWaitRidesOutServerRestart(t *testing.T) {
	secret, err := auth.NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	svc := newScriptedService()
	// The rollout stays at its second step until the test ends it.
	svc.scripts["1.3.0"] = svc.scripts["9.9.9"]
	handler := api.NewHandler(svc, tokenMap{auth.Hash(secret): {Name: "ci", Role: auth.RoleDeployer}}, api.HandlerOptions{App: "shop"})
	serve := func(addr string) (*http.Server, string) {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		srv := &http.Server{Handler: handler, ReadHeaderTimeout: time.Second}
		go func() { _ = srv.Serve(ln) }()
		return srv, ln.Addr().String()
	}
	srv, addr := serve("127.0.0.1:0")

	var stdout, stderr lockedBuffer
	done := make(chan int, 1)
	go func() {
		done <- run(t.Context(), []string{"--server", "http://" + addr, "--token", secret, "--data", t.TempDir(),
			"deploy", "shop", "1.3.0", "--wait", "--timeout", "1m"}, deps{
			stdin: strings.NewReader(""), stdout: &stdout, stderr: &stderr,
			getenv: func(string) string { return "" }, now: time.Now,
			pollInterval: 5 * time.Millisecond, progressEvery: time.Minute,
		})
	}()
	// The server goes down as soon as the rollout is under way.
	waitFor(t, func() bool { return strings.Contains(stderr.String(), "step 2/5") })
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	// It stays down for well over 20 polls once the CLI noticed, or until
	// the CLI gave up.
	var code int
	exited := false
	waitFor(t, func() bool {
		select {
		case code = <-done:
			exited = true
			return true
		default:
			return strings.Contains(stderr.String(), "lost the server")
		}
	})
	if exited {
		t.Fatalf("deploy --wait ended with %d while the server was down; want it to wait\nstdout:\n%s\nstderr:\n%s", code, stdout.String(), stderr.String())
	}
	time.Sleep(50 * 5 * time.Millisecond) // the downtime: 50 polls
	srv, _ = serve(addr)
	defer srv.Close()
	svc.mu.Lock()
	good := svc.scripts["1.1.0"]
	svc.rollouts[1] = append(svc.rollouts[1], good[len(good)-1])
	svc.rollouts[1][len(svc.rollouts[1])-1].ID = 1
	svc.polls[1] = len(svc.rollouts[1]) - 2
	svc.mu.Unlock()
	select {
	case code = <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("deploy --wait did not end after the server came back")
	}
	if code != ExitOK {
		t.Fatalf("exit code = %d, want 0\nstdout:\n%s\nstderr:\n%s", code, stdout.String(), stderr.String())
	}
	for _, want := range []string{"lost the server at http://" + addr, "reconnected to the server at http://" + addr} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("stderr does not say %q:\n%s", want, stderr.String())
		}
	}
	if want := "rollout 1 succeeded"; !strings.Contains(stdout.String(), want) {
		t.Errorf("stdout does not say %q:\n%s", want, stdout.String())
	}
}

// waitFor polls cond until it holds, or fails the test after 20 seconds.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 20s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
