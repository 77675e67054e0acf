package process

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/shipgate/shipgate/internal/rollout"
)

// The real example shop and a tiny test app, built once for all tests.
var shopBin, appBin string

func TestMain(m *testing.M) {
	os.Exit(buildAndRun(m))
}

func buildAndRun(m *testing.M) int {
	dir, err := os.MkdirTemp("", "process-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	shopBin = filepath.Join(dir, "shop")
	appBin = filepath.Join(dir, "app")
	for bin, pkg := range map[string]string{shopBin: "../../examples/shop", appBin: "./testdata/app"} {
		if out, err := exec.Command("go", "build", "-o", bin, pkg).CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "go build %s: %v\n%s", pkg, err, out)
			return 1
		}
	}
	return m.Run()
}

// logBuffer holds what a runtime logged.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

var startedRe = regexp.MustCompile(`msg="instance started" .*pid=(\d+)`)

// startedPIDs returns the PIDs of the instances the runtime logged as
// started, including those of a failed Start that never returned them.
func (l *logBuffer) startedPIDs(t *testing.T) []int {
	t.Helper()
	var pids []int
	for _, m := range startedRe.FindAllStringSubmatch(l.String(), -1) {
		pid, err := strconv.Atoi(m[1])
		if err != nil {
			t.Fatal(err)
		}
		pids = append(pids, pid)
	}
	return pids
}

func newRuntime(t *testing.T) (*Runtime, *logBuffer) {
	t.Helper()
	logs := &logBuffer{}
	r := New(Config{
		DataDir: t.TempDir(),
		Logger:  slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	t.Cleanup(r.Close)
	return r, logs
}

func spec(t *testing.T, command ...string) rollout.InstanceSpec {
	return rollout.InstanceSpec{
		App:              "shop",
		Env:              "test",
		Version:          "v1",
		Command:          command,
		Environ:          map[string]string{"MERCHANT_ID": "m-test"},
		Dir:              t.TempDir(),
		Count:            1,
		HealthPath:       "/healthz",
		HealthInterval:   100 * time.Millisecond,
		HealthTimeout:    5 * time.Second, // a check judges the app, not how soon it got a core
		FailureThreshold: 2,
		StartTimeout:     10 * time.Second,
		StopGrace:        5 * time.Second,
	}
}

func shopSpec(t *testing.T, args ...string) rollout.InstanceSpec {
	return spec(t, append([]string{shopBin, "--port", "${PORT}", "--version", "v1", "--latency", "0"}, args...)...)
}

func appSpec(t *testing.T, args ...string) rollout.InstanceSpec {
	return spec(t, append([]string{appBin}, args...)...)
}

// start starts s and stops its instances when the test ends.
func start(t *testing.T, r *Runtime, s rollout.InstanceSpec) []rollout.Instance {
	t.Helper()
	ins, err := r.Start(context.Background(), s)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := r.Stop(context.Background(), ins); err != nil {
			t.Error(err)
		}
	})
	return ins
}

// waitFor polls cond until it holds, failing the test after d.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not %s after %v", what, d)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// getAccepted sends GET url in the background, returns once the server
// process has accepted its connection, and sends the response's status
// (or the error) on the channel it returns. A fixed sleep instead would
// not do on a busy machine: a connection still in the listen queue when
// the server gets SIGTERM is reset, not served.
func getAccepted(t *testing.T, url string) <-chan string {
	t.Helper()
	conns := make(chan net.Conn, 1)
	tr := &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		if err == nil {
			conns <- c
		}
		return c, err
	}}
	t.Cleanup(tr.CloseIdleConnections)
	status := make(chan string, 1)
	go func() {
		resp, err := (&http.Client{Transport: tr}).Get(url)
		if err != nil {
			status <- err.Error()
			return
		}
		resp.Body.Close()
		status <- resp.Status
	}()
	var c net.Conn
	select {
	case c = <-conns:
	case <-time.After(10 * time.Second):
		t.Fatalf("GET %s: no connection after 10s", url)
	}
	waitFor(t, 10*time.Second, "the connection accepted by the server", func() bool {
		return accepted(t, c.LocalAddr().(*net.TCPAddr).Port, c.RemoteAddr().(*net.TCPAddr).Port)
	})
	return status
}

// accepted reports whether the server end of the loopback TCP connection
// from port client to port server is held by a process: /proc/net/tcp
// lists a connection still in the listen queue with inode 0.
func accepted(t *testing.T, client, server int) bool {
	t.Helper()
	b, err := os.ReadFile("/proc/net/tcp")
	if err != nil {
		t.Fatal(err)
	}
	port := func(addr string) int {
		_, hex, _ := strings.Cut(addr, ":")
		n, _ := strconv.ParseInt(hex, 16, 32)
		return int(n)
	}
	for _, line := range strings.Split(string(b), "\n")[1:] {
		f := strings.Fields(line)
		if len(f) > 9 && port(f[1]) == server && port(f[2]) == client {
			return f[9] != "0"
		}
	}
	return false
}

func assertGone(t *testing.T, pids []int) {
	t.Helper()
	for _, pid := range pids {
		if alive(pid) {
			t.Errorf("process %d is still running", pid)
		}
	}
}

func get(t *testing.T, url string) (*http.Response, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

func readLog(t *testing.T, r *Runtime, inst rollout.Instance) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(r.dataDir, "logs", inst.App, inst.Env, inst.ID+".log"))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestRuntime_Start(t *testing.T) {
	r, _ := newRuntime(t)
	s := shopSpec(t)
	s.Count = 2
	ins := start(t, r, s)

	if got, want := len(ins), 2; got != want {
		t.Fatalf("%d instances, want %d", got, want)
	}
	idRe := regexp.MustCompile(`^shop-test-v1-[12]-[0-9a-f]{4}$`)
	if ins[0].Addr == ins[1].Addr {
		t.Errorf("both instances on %s", ins[0].Addr)
	}
	for _, inst := range ins {
		if !idRe.MatchString(inst.ID) {
			t.Errorf("instance ID %q, want it to match %s", inst.ID, idRe)
		}
		if inst.App != "shop" || inst.Env != "test" || inst.Version != "v1" {
			t.Errorf("instance %+v does not carry the spec's app, env and version", inst)
		}
		resp, body := get(t, "http://"+inst.Addr+"/products")
		if resp.StatusCode != http.StatusOK || !strings.Contains(body, `"products"`) {
			t.Errorf("GET /products on %s: %d %s", inst.Addr, resp.StatusCode, body)
		}
		if got, want := resp.Header.Get("X-Shop-Version"), "v1"; got != want {
			t.Errorf("X-Shop-Version %q, want %q", got, want)
		}
		if got, want := r.Status(context.Background(), inst).State, rollout.InstanceRunning; got != want {
			t.Errorf("state %q, want %q", got, want)
		}
		// Its own process group keeps the terminal's signals away from it.
		if pgid, err := syscall.Getpgid(inst.PID); err != nil || pgid != inst.PID {
			t.Errorf("process group %d (%v), want the instance's own, %d", pgid, err, inst.PID)
		}
		if got, want := readLog(t, r, inst), "shop listening"; !strings.Contains(got, want) {
			t.Errorf("log %q, want it to contain the app's output %q", got, want)
		}
	}
	if ins[0].ID[:len("shop-test-v1-1")] != "shop-test-v1-1" || ins[1].ID[:len("shop-test-v1-2")] != "shop-test-v1-2" {
		t.Errorf("instance IDs %s, %s are not numbered 1, 2", ins[0].ID, ins[1].ID)
	}
}

func TestRuntime_Start_environment(t *testing.T) {
	t.Setenv("TZ", "UTC")
	t.Setenv("SHIPGATE_TEST_SERVER_SECRET", "server-only")
	r, logs := newRuntime(t)
	s := appSpec(t, "--tag=p${PORT}")
	s.Environ = map[string]string{"MERCHANT_ID": "m-secret-4711", "SELF_URL": "http://127.0.0.1:${PORT}/"}
	inst := start(t, r, s)[0]
	_, port, _ := net.SplitHostPort(inst.Addr)

	out := readLog(t, r, inst)
	dir, err := filepath.EvalSymlinks(s.Dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"arg --tag=p" + port,
		"cwd " + dir,
		"env PORT=" + port,
		"env SELF_URL=http://127.0.0.1:" + port + "/",
		"env MERCHANT_ID=m-secret-4711",
		"env TZ=UTC",
	} {
		if !strings.Contains(out, want+"\n") {
			t.Errorf("instance output lacks %q:\n%s", want, out)
		}
	}
	allowed := map[string]bool{"PATH": true, "HOME": true, "LANG": true, "TZ": true, "TMPDIR": true,
		"PORT": true, "MERCHANT_ID": true, "SELF_URL": true}
	for _, m := range regexp.MustCompile(`(?m)^env ([^=]*)=`).FindAllStringSubmatch(out, -1) {
		if !allowed[m[1]] {
			t.Errorf("instance got the server's variable %s", m[1])
		}
	}

	if got := logs.String(); strings.Contains(got, "m-secret-4711") || !strings.Contains(got, "MERCHANT_ID") {
		t.Errorf("runtime log must name MERCHANT_ID but not its value:\n%s", got)
	}
}

func TestRuntime_Start_exitsBeforeHealthy(t *testing.T) {
	r, logs := newRuntime(t)
	s := shopSpec(t)
	s.Count = 2
	s.Environ = nil // the release forgot MERCHANT_ID

	ins, err := r.Start(context.Background(), s)
	if err == nil {
		t.Fatalf("Start succeeded with %v", ins)
	}
	for _, want := range []string{
		"start shop v1 in test: instance shop-test-v1-",
		"exited before becoming healthy: exit status 1",
		"last lines of its log",
		"shop: MERCHANT_ID is not set",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q\nwant it to contain %q", err, want)
		}
	}
	pids := logs.startedPIDs(t)
	if got, want := len(pids), 2; got != want {
		t.Fatalf("%d instances started, want %d", got, want)
	}
	assertGone(t, pids)
}

func TestRuntime_Start_neverHealthy(t *testing.T) {
	r, logs := newRuntime(t)
	s := shopSpec(t, "--fail-health")
	s.Count = 2
	// Long enough for the shop to start and answer 503 on a busy machine:
	// the error must be its health check's, not a refused connection.
	s.StartTimeout = 3 * time.Second

	begin := time.Now()
	_, err := r.Start(context.Background(), s)
	if err == nil {
		t.Fatal("Start succeeded with instances that fail their health check")
	}
	if took := time.Since(begin); took < s.StartTimeout {
		t.Errorf("Start gave up after %v, before StartTimeout %v", took, s.StartTimeout)
	}
	for _, want := range []string{
		"not healthy after 3s: last check: GET /healthz: 503 Service Unavailable",
		"shop listening",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q\nwant it to contain %q", err, want)
		}
	}
	pids := logs.startedPIDs(t)
	if got, want := len(pids), 2; got != want {
		t.Fatalf("%d instances started, want %d", got, want)
	}
	assertGone(t, pids)
}

func TestRuntime_Start_cancel(t *testing.T) {
	r, logs := newRuntime(t)
	s := shopSpec(t, "--fail-health")
	s.StartTimeout = time.Minute
	before := runtime.NumGoroutine()

	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(300*time.Millisecond, cancel)
	_, err := r.Start(ctx, s)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Start error %v, want context.Canceled", err)
	}
	assertGone(t, logs.startedPIDs(t))
	r.client.CloseIdleConnections()
	waitFor(t, 10*time.Second, "back to the goroutines from before Start", func() bool {
		return runtime.NumGoroutine() <= before
	})
}

func TestRuntime_Start_invalid(t *testing.T) {
	r, logs := newRuntime(t)
	tests := []struct {
		name   string
		modify func(*rollout.InstanceSpec)
		field  string
	}{
		{"no command", func(s *rollout.InstanceSpec) { s.Command = nil }, "command"},
		{"no instances", func(s *rollout.InstanceSpec) { s.Count = 0 }, "count"},
		{"app with a slash", func(s *rollout.InstanceSpec) { s.App = "../shop" }, "app"},
		{"no env", func(s *rollout.InstanceSpec) { s.Env = "" }, "env"},
		{"relative health path", func(s *rollout.InstanceSpec) { s.HealthPath = "healthz" }, "health_path"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := shopSpec(t)
			tt.modify(&s)
			_, err := r.Start(context.Background(), s)
			var fe *rollout.FieldError
			if !errors.As(err, &fe) || !errors.Is(err, rollout.ErrInvalid) {
				t.Fatalf("error %v, want a FieldError", err)
			}
			if got, want := fe.Field, tt.field; got != want {
				t.Errorf("field %q, want %q", got, want)
			}
		})
	}
	if pids := logs.startedPIDs(t); len(pids) != 0 {
		t.Errorf("invalid specs started processes %v", pids)
	}
}

func TestRuntime_Start_missingProgram(t *testing.T) {
	r, _ := newRuntime(t)
	_, err := r.Start(context.Background(), spec(t, filepath.Join(t.TempDir(), "no-such-program")))
	if err == nil || !strings.Contains(err.Error(), "no such file or directory") {
		t.Errorf("error %v, want one saying the program does not exist", err)
	}
}

func TestRuntime_Status(t *testing.T) {
	t.Run("unknown", func(t *testing.T) {
		r, _ := newRuntime(t)
		st := r.Status(context.Background(), rollout.Instance{ID: "shop-test-v1-1-abcd", PID: os.Getpid()})
		if got, want := st.State, rollout.InstanceUnknown; got != want {
			t.Errorf("state %q, want %q", got, want)
		}
	})

	t.Run("killed", func(t *testing.T) {
		r, _ := newRuntime(t)
		inst := start(t, r, shopSpec(t))[0]
		if err := syscall.Kill(inst.PID, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 10*time.Second, "exited", func() bool {
			return r.Status(context.Background(), inst).State == rollout.InstanceExited
		})
		if got, want := r.Status(context.Background(), inst).Reason, "signal: killed"; got != want {
			t.Errorf("reason %q, want %q", got, want)
		}
		assertGone(t, []int{inst.PID})
	})

	t.Run("unhealthy then healthy", func(t *testing.T) {
		r, _ := newRuntime(t)
		flagFile := filepath.Join(t.TempDir(), "fail")
		inst := start(t, r, shopSpec(t, "--fail-health-file", flagFile))[0]

		if err := os.WriteFile(flagFile, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 10*time.Second, "unhealthy", func() bool {
			return r.Status(context.Background(), inst).State == rollout.InstanceUnhealthy
		})
		if got, want := r.Status(context.Background(), inst).Reason, "2 health checks failed in a row; last: GET /healthz: 503"; !strings.HasPrefix(got, want) {
			t.Errorf("reason %q, want it to start with %q", got, want)
		}

		if err := os.Remove(flagFile); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 10*time.Second, "running again", func() bool {
			return r.Status(context.Background(), inst).State == rollout.InstanceRunning
		})
	})
}

func TestRuntime_Stop(t *testing.T) {
	t.Run("graceful", func(t *testing.T) {
		r, logs := newRuntime(t)
		inst := start(t, r, shopSpec(t, "--latency", "1s"))[0]

		inFlight := getAccepted(t, "http://"+inst.Addr+"/pay") // the request now waits out its latency

		if err := r.Stop(context.Background(), []rollout.Instance{inst}); err != nil {
			t.Fatal(err)
		}
		if got, want := <-inFlight, "200 OK"; got != want {
			t.Errorf("request in flight during Stop: %s, want %s", got, want)
		}
		st := r.Status(context.Background(), inst)
		if got, want := st, (rollout.InstanceStatus{State: rollout.InstanceExited, Reason: "stopped: exit status 0"}); got != want {
			t.Errorf("status %+v, want %+v", got, want)
		}
		assertGone(t, []int{inst.PID})
		if strings.Contains(logs.String(), "killing it") {
			t.Errorf("a graceful stop needed SIGKILL:\n%s", logs)
		}

		// Again, and with an instance this runtime never saw.
		unknown := rollout.Instance{ID: "shop-test-v0-1-0000", PID: os.Getpid()}
		if err := r.Stop(context.Background(), []rollout.Instance{inst, unknown}); err != nil {
			t.Errorf("second Stop: %v", err)
		}
	})

	t.Run("kill after grace", func(t *testing.T) {
		r, _ := newRuntime(t)
		s := appSpec(t, "--ignore-term")
		s.StopGrace = 500 * time.Millisecond
		inst := start(t, r, s)[0]

		begin := time.Now()
		if err := r.Stop(context.Background(), []rollout.Instance{inst}); err != nil {
			t.Fatal(err)
		}
		if took := time.Since(begin); took < s.StopGrace {
			t.Errorf("Stop returned after %v, before the grace period %v", took, s.StopGrace)
		}
		if got, want := r.Status(context.Background(), inst).Reason, "stopped: signal: killed"; got != want {
			t.Errorf("reason %q, want %q", got, want)
		}
		assertGone(t, []int{inst.PID})
	})

	t.Run("in parallel", func(t *testing.T) {
		r, _ := newRuntime(t)
		s := appSpec(t, "--ignore-term")
		s.Count = 2
		s.StopGrace = 3 * time.Second // leaves a busy machine 3s of slack below two periods
		ins := start(t, r, s)

		// One after the other would take two grace periods at least.
		begin := time.Now()
		if err := r.Stop(context.Background(), ins); err != nil {
			t.Fatal(err)
		}
		if took := time.Since(begin); took >= 2*s.StopGrace {
			t.Errorf("stopping 2 instances took %v, want less than 2 grace periods of %v", took, s.StopGrace)
		}
		assertGone(t, []int{ins[0].PID, ins[1].PID})
	})

	t.Run("whole process group", func(t *testing.T) {
		r, logs := newRuntime(t)
		inst := start(t, r, appSpec(t, "--spawn-sleeper"))[0]
		m := regexp.MustCompile(`sleeper (\d+)`).FindStringSubmatch(readLog(t, r, inst))
		if m == nil {
			t.Fatal("app did not report its sleeper")
		}
		sleeper, _ := strconv.Atoi(m[1])

		if err := r.Stop(context.Background(), []rollout.Instance{inst}); err != nil {
			t.Fatal(err)
		}
		// Stop returns once the whole group is gone, and SIGTERM to the
		// group reached the sleeper: it did not need SIGKILL.
		if alive(sleeper) {
			t.Errorf("sleeper %d still running after Stop", sleeper)
		}
		if strings.Contains(logs.String(), "killing it") {
			t.Errorf("the group needed SIGKILL:\n%s", logs)
		}
	})
}

func TestRuntime_Close(t *testing.T) {
	r, _ := newRuntime(t)
	inst := start(t, r, shopSpec(t))[0]
	r.Close()
	r.Close()

	if !alive(inst.PID) {
		t.Fatal("Close stopped the instance; instances must outlive the control plane")
	}
	if resp, _ := get(t, "http://"+inst.Addr+"/version"); resp.StatusCode != http.StatusOK {
		t.Errorf("GET /version after Close: %d", resp.StatusCode)
	}
	if _, err := r.Start(context.Background(), shopSpec(t)); err == nil {
		t.Error("Start after Close succeeded")
	}
}

func TestRuntime_Adopt(t *testing.T) {
	// adopted starts an instance with one runtime, closes it as a server
	// that exits would, and adopts the instance with a second runtime.
	adopted := func(t *testing.T) (*Runtime, rollout.Instance) {
		t.Helper()
		first, _ := newRuntime(t)
		s := shopSpec(t, "--latency", "300ms")
		inst := start(t, first, s)[0]
		first.Close()

		second, _ := newRuntime(t)
		if err := second.Adopt(context.Background(), inst, s); err != nil {
			t.Fatal(err)
		}
		if err := second.Adopt(context.Background(), inst, s); err != nil {
			t.Fatalf("second Adopt: %v", err)
		}
		return second, inst
	}

	t.Run("notices exit", func(t *testing.T) {
		r, inst := adopted(t)
		if got, want := r.Status(context.Background(), inst).State, rollout.InstanceRunning; got != want {
			t.Fatalf("state %q, want %q", got, want)
		}
		if err := syscall.Kill(inst.PID, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 10*time.Second, "exited", func() bool {
			return r.Status(context.Background(), inst).State == rollout.InstanceExited
		})
	})

	t.Run("stops", func(t *testing.T) {
		r, inst := adopted(t)
		inFlight := getAccepted(t, "http://"+inst.Addr+"/pay")

		if err := r.Stop(context.Background(), []rollout.Instance{inst}); err != nil {
			t.Fatal(err)
		}
		if got, want := <-inFlight, "200 OK"; got != want {
			t.Errorf("request in flight during Stop: %s, want %s", got, want)
		}
		assertGone(t, []int{inst.PID})
		if got, want := r.Status(context.Background(), inst).State, rollout.InstanceExited; got != want {
			t.Errorf("state %q, want %q", got, want)
		}
	})

	t.Run("gone", func(t *testing.T) {
		r, _ := newRuntime(t)
		done := exec.Command("true")
		if err := done.Run(); err != nil {
			t.Fatal(err)
		}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		closedAddr := ln.Addr().String()
		ln.Close()

		tests := []struct {
			name string
			pid  int
			want string
		}{
			{"exited process", done.Process.Pid, "is gone"},
			{"no pid", 0, "is gone"},
			// A live process that does not serve the instance's address
			// got the PID by reuse; it must not be adopted, nor signalled.
			{"reused pid", os.Getpid(), "nothing listens on " + closedAddr},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				inst := rollout.Instance{ID: "shop-test-v1-1-dead", App: "shop", Env: "test", Version: "v1", Addr: closedAddr, PID: tt.pid}
				err := r.Adopt(context.Background(), inst, shopSpec(t))
				if !errors.Is(err, rollout.ErrNotFound) || !strings.Contains(err.Error(), tt.want) {
					t.Fatalf("error %v, want ErrNotFound saying %q", err, tt.want)
				}
				if got, want := r.Status(context.Background(), inst).State, rollout.InstanceUnknown; got != want {
					t.Errorf("state %q, want %q", got, want)
				}
			})
		}
	})
}

func TestTail(t *testing.T) {
	dir := t.TempDir()
	long := strings.Repeat("x", tailBytes)
	tests := []struct {
		name    string
		content string
		want    []string
	}{
		{"empty", "", nil},
		{"few lines", "a\nb\n", []string{"a", "b"}},
		{"no final newline", "a\nb", []string{"a", "b"}},
		{"many lines", strings.Repeat("line\n", 20) + "last\n", append(strings.Split(strings.Repeat("line\n", 9), "\n")[:9], "last")},
		{"cut first line", long + "\nend\n", []string{"end"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(dir, tt.name)
			if err := os.WriteFile(path, []byte(tt.content), 0o600); err != nil {
				t.Fatal(err)
			}
			got, err := tail(path, 10)
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("tail = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestParseStat(t *testing.T) {
	tests := []struct {
		stat      string
		wantState byte
		wantPgrp  int
		wantOK    bool
	}{
		{"42 (shop) S 1 42 42 0 -1", 'S', 42, true},
		{"43 (my (odd) app) Z 1 40 40 0", 'Z', 40, true},
		{"44 (a) b) R 2 7 7", 'R', 7, true},
		{"45 (cut", 0, 0, false},
		{"46 (x) S 1", 0, 0, false},
	}
	for _, tt := range tests {
		state, pgrp, ok := parseStat([]byte(tt.stat))
		if state != tt.wantState || pgrp != tt.wantPgrp || ok != tt.wantOK {
			t.Errorf("parseStat(%q) = %q, %d, %v; want %q, %d, %v", tt.stat, state, pgrp, ok, tt.wantState, tt.wantPgrp, tt.wantOK)
		}
	}
}
