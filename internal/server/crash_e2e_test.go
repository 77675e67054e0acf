package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/shipgate/shipgate/internal/api"
	"github.com/shipgate/shipgate/internal/demo"
	"github.com/shipgate/shipgate/internal/proxy"
	"github.com/shipgate/shipgate/internal/rollout"
)

// serverProc is `shipgate server` run as a real process, as users run it.
type serverProc struct {
	t       *testing.T
	cfg     string
	data    string
	api     string
	cmd     *exec.Cmd
	logPath string
	// args are more arguments of the server command (--store ...), env
	// more variables of its environment.
	args []string
	env  []string
}

func (s *serverProc) start() {
	s.t.Helper()
	logf, err := os.OpenFile(s.logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		s.t.Fatal(err)
	}
	defer logf.Close()
	s.cmd = exec.Command(shipgateBin, append([]string{"--data", s.data, "server", "-f", s.cfg, "--listen", strings.TrimPrefix(s.api, "http://"), "--log-level", "debug"}, s.args...)...)
	s.cmd.Stdout, s.cmd.Stderr = logf, logf
	if s.env != nil {
		s.cmd.Env = append(os.Environ(), s.env...)
	}
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := s.cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := http.Get(s.api + "/healthz"); err == nil {
			resp.Body.Close()
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	b, _ := os.ReadFile(s.logPath)
	s.t.Fatalf("server did not come up:\n%s", b)
}

func (s *serverProc) kill9() {
	_ = syscall.Kill(s.cmd.Process.Pid, syscall.SIGKILL)
	_ = s.cmd.Wait()
}

// registered lists the instances in the data dir's registry whose process
// is alive.
func registered(t *testing.T, data string) []rollout.Instance {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(data, "instances", "*.json"))
	var out []rollout.Instance
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		var rec struct {
			Instance rollout.Instance `json:"instance"`
		}
		if json.Unmarshal(b, &rec) == nil && isRunning(rec.Instance.PID) {
			out = append(out, rec.Instance)
		}
	}
	return out
}

// isRunning reports whether pid is a live process: not gone, and not a
// zombie waiting for init to reap it (an instance of a killed server is
// init's child).
func isRunning(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// The state follows the command name, which is in parentheses.
	i := strings.LastIndexByte(string(b), ')')
	return i > 0 && i+2 < len(b) && b[i+2] != 'Z' && b[i+2] != 'X'
}

func TestE2E_ServerKilledMidBakeUnderLoad(t *testing.T) {
	dir := t.TempDir()
	routerPort := freePort(t)
	s := &serverProc{t: t, cfg: filepath.Join(dir, "shipgate.yaml"), data: filepath.Join(dir, "data"),
		api: fmt.Sprintf("http://127.0.0.1:%d", freePort(t)), logPath: filepath.Join(dir, "server.log")}
	yaml := fmt.Sprintf(`app: shop
`+baseVars+baseRun+`environments:
  production:
    listen: 127.0.0.1:%d
    sticky: {header: X-User-ID}
strategy:
  canary: {steps: [{weight: 20, bake: 12s}, {weight: 50, bake: 4s}], scale_down_delay: 1s}
`+baseAnalysis, shopBin, routerPort)
	client := s.launch(yaml)
	ctx := context.Background()
	r, err := client.Deploy(ctx, rollout.DeployRequest{App: "shop", Version: "v1"})
	if err != nil {
		t.Fatal(err)
	}
	s.waitRollout(client, r.ID, func(r rollout.Rollout) bool { return r.Phase == rollout.PhaseSucceeded })
	v1 := registered(t, s.data)

	load := &demo.Load{URL: fmt.Sprintf("http://127.0.0.1:%d", routerPort), Rate: 150}
	load.Start(ctx)
	defer load.Stop()
	time.Sleep(time.Second)
	r, err = client.Deploy(ctx, rollout.DeployRequest{App: "shop", Version: "v2"})
	if err != nil {
		t.Fatal(err)
	}
	r = s.waitRollout(client, r.ID, func(r rollout.Rollout) bool { return r.Weight == 20 && r.Analysis != nil })
	canaryPIDs := []int{r.New[0].PID, r.New[1].PID}

	// The control plane dies in the middle of the bake.
	s.kill9()
	time.Sleep(3 * time.Second)
	if fails := load.Failures(); len(fails) != 0 {
		t.Fatalf("%d requests failed while the server was down, first %+v", len(fails), fails[0])
	}
	if got := load.LastSent("v2"); time.Since(got) > time.Second {
		t.Fatal("the canary got no traffic while the server was down: the router lost its table")
	}

	s.start()
	final := s.waitRollout(client, r.ID, func(r rollout.Rollout) bool { return r.Phase.Final() })
	time.Sleep(500 * time.Millisecond)
	load.Stop()
	if final.Phase != rollout.PhaseSucceeded {
		t.Fatalf("after the restart the rollout ended %s: %s", final.Phase, final.Reason)
	}
	if fails := load.Failures(); len(fails) != 0 {
		t.Fatalf("%d requests failed across the crash, first %+v", len(fails), fails[0])
	}
	// The same two canary processes were adopted and promoted: nothing
	// orphaned (v1 is gone) and nothing duplicated (no third v2).
	running := registered(t, s.data)
	var pids []int
	for _, inst := range running {
		if inst.Version != "v2" {
			t.Fatalf("instance %s of %s still runs after the rollout", inst.ID, inst.Version)
		}
		pids = append(pids, inst.PID)
	}
	slices.Sort(pids)
	slices.Sort(canaryPIDs)
	if !slices.Equal(pids, canaryPIDs) {
		t.Fatalf("running v2 pids %v, want the canary's %v", pids, canaryPIDs)
	}
	for _, inst := range v1 {
		if isRunning(inst.PID) {
			t.Fatalf("v1 instance %s (pid %d) was orphaned", inst.ID, inst.PID)
		}
	}
}

// launch writes yaml as the server's config, starts the server, and
// returns an admin client; the test's cleanup kills whatever it leaves
// behind: the server, its routers, the instances.
func (s *serverProc) launch(yaml string) *api.Client {
	t := s.t
	if err := os.WriteFile(s.cfg, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if s.cmd != nil && s.cmd.ProcessState == nil {
			s.kill9()
		}
		if c, err := proxy.Dial(context.Background(), proxy.ControlSocketPath(s.data, "production")); err == nil {
			_ = c.StopProcess(context.Background())
		}
		for _, inst := range registered(t, s.data) {
			_ = syscall.Kill(-inst.PID, syscall.SIGKILL)
		}
		if t.Failed() {
			b, _ := os.ReadFile(s.logPath)
			t.Logf("server log:\n%s", b)
		}
	})
	s.start()
	token, err := os.ReadFile(filepath.Join(s.data, "token"))
	if err != nil {
		t.Fatal(err)
	}
	return api.NewClient(s.api, strings.TrimSpace(string(token)), nil)
}

// waitRollout polls rollout id through client until done holds, for at
// most 90 seconds.
func (s *serverProc) waitRollout(client *api.Client, id int64, done func(rollout.Rollout) bool) rollout.Rollout {
	s.t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for time.Now().Before(deadline) {
		if r, err := client.GetRollout(context.Background(), id); err == nil && done(r) {
			return r
		}
		time.Sleep(100 * time.Millisecond)
	}
	s.t.Fatalf("rollout %d did not get where expected", id)
	return rollout.Rollout{}
}
