package server_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/shipgate/shipgate/internal/api"
	"github.com/shipgate/shipgate/internal/listener"
	"github.com/shipgate/shipgate/internal/proxy"
	"github.com/shipgate/shipgate/internal/rollout"
)

// TestE2E_Down is item 15 of issue 10: after the server stops, its
// routers and the app's instances keep serving users (by design);
// `shipgate down` stops them cleanly, and refuses while a server runs.
func TestE2E_Down(t *testing.T) {
	dir := t.TempDir()
	routerPort := freePort(t)
	s := &serverProc{t: t, cfg: filepath.Join(dir, "shipgate.yaml"), data: filepath.Join(dir, "data"),
		api: fmt.Sprintf("http://127.0.0.1:%d", freePort(t)), logPath: filepath.Join(dir, "server.log")}
	yaml := fmt.Sprintf(`app: shop
`+baseVars+baseRun+`environments:
  production:
    listen: 127.0.0.1:%d
`+baseAnalysis, shopBin, routerPort)
	if err := os.WriteFile(s.cfg, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	startWithV1(t, s, s.data)

	down := func() (int, string) {
		cmd := exec.Command(shipgateBin, "--data", s.data, "down")
		out, _ := cmd.CombinedOutput()
		return cmd.ProcessState.ExitCode(), string(out)
	}
	if code, out := down(); code != 1 || !strings.Contains(out, "a server runs on") {
		t.Fatalf("down with the server running: exit %d, want 1 saying a server runs:\n%s", code, out)
	}
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	_ = s.cmd.Wait()
	insts := registered(t, s.data)
	if len(insts) == 0 {
		t.Fatal("no instance survived the server: the test proves nothing")
	}
	if pid, _ := listener.Holder(routerPort); pid == 0 {
		t.Fatal("no router survived the server: the test proves nothing")
	}

	code, out := down()
	if code != 0 {
		t.Fatalf("down exited %d:\n%s", code, out)
	}
	if !strings.Contains(out, "stopped the router of production") || !strings.Contains(out, "stopped instance ") {
		t.Fatalf("down did not say what it stopped:\n%s", out)
	}
	if left := registered(t, s.data); len(left) > 0 {
		t.Fatalf("instances still running after down: %+v", left)
	}
	for _, inst := range insts {
		if isRunning(inst.PID) {
			t.Fatalf("instance %s (pid %d) still runs after down", inst.ID, inst.PID)
		}
	}
	if pid, command := listener.Holder(routerPort); pid != 0 {
		t.Fatalf("the router port is still held by %d (%s) after down", pid, command)
	}
	if code, out := down(); code != 0 || !strings.Contains(out, "nothing was running") {
		t.Fatalf("a second down: exit %d:\n%s", code, out)
	}
}

// TestE2E_DownSharedPlaneDir: `shipgate down --data <plane-dir>` on the
// --plane-dir of a live server (a real process) refuses, naming it, and
// stops nothing; once that server died (kill -9: its lock file is left,
// unlocked), down stops the routers and instances of the plane dir.
func TestE2E_DownSharedPlaneDir(t *testing.T) {
	dir := t.TempDir()
	plane := filepath.Join(dir, "plane")
	routerPort := freePort(t)
	s := &serverProc{t: t, cfg: filepath.Join(dir, "shipgate.yaml"), data: filepath.Join(dir, "data"),
		api: fmt.Sprintf("http://127.0.0.1:%d", freePort(t)), logPath: filepath.Join(dir, "server.log"),
		args: []string{"--plane-dir", plane}}
	yaml := fmt.Sprintf(`app: shop
`+baseVars+baseRun+`environments:
  production:
    listen: 127.0.0.1:%d
`+baseAnalysis, shopBin, routerPort)
	if err := os.WriteFile(s.cfg, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	startWithV1(t, s, plane)
	insts := registered(t, plane)
	if len(insts) == 0 {
		t.Fatal("no instance in the plane dir: the test proves nothing")
	}
	routerPID, _ := listener.Holder(routerPort)
	if routerPID == 0 {
		t.Fatal("no router on its port: the test proves nothing")
	}

	down := func() (int, string) {
		cmd := exec.Command(shipgateBin, "--data", plane, "down")
		out, _ := cmd.CombinedOutput()
		return cmd.ProcessState.ExitCode(), string(out)
	}
	code, out := down()
	for _, want := range []string{"plane dir of a live server", fmt.Sprintf("pid %d", s.cmd.Process.Pid), s.data, "--force"} {
		if code != 1 || !strings.Contains(out, want) {
			t.Fatalf("down on the plane dir of a live server: exit %d, want 1 naming it (%q):\n%s", code, want, out)
		}
	}
	if pid, _ := listener.Holder(routerPort); pid != routerPID {
		t.Fatalf("the refused down changed the router: port held by %d, was %d", pid, routerPID)
	}
	for _, inst := range insts {
		if !isRunning(inst.PID) {
			t.Fatalf("the refused down stopped instance %s (pid %d)", inst.ID, inst.PID)
		}
	}

	s.kill9() // a dead server leaves its file in the plane dir, unlocked
	code, out = down()
	if code != 0 || !strings.Contains(out, "stopped the router of production") || !strings.Contains(out, "stopped instance ") {
		t.Fatalf("down after the server died: exit %d:\n%s", code, out)
	}
	if pid, command := listener.Holder(routerPort); pid != 0 {
		t.Fatalf("the router port is still held by %d (%s) after down", pid, command)
	}
	if left, _ := filepath.Glob(filepath.Join(plane, "server-*.plane")); len(left) != 0 {
		t.Fatalf("the dead server's plane file is still there: %v", left)
	}
}

// startWithV1 starts s, deploys v1 of shop and waits until it is live;
// when the test ends it kills s and stops the router and the instances
// it left in plane (its data dir, or the plane dir it was given).
func startWithV1(t *testing.T, s *serverProc, plane string) {
	t.Helper()
	t.Cleanup(func() {
		if s.cmd != nil && s.cmd.ProcessState == nil {
			s.kill9()
		}
		if c, err := proxy.Dial(context.Background(), proxy.ControlSocketPath(plane, "production")); err == nil {
			_ = c.StopProcess(context.Background())
		}
		for _, inst := range registered(t, plane) {
			_ = syscall.Kill(-inst.PID, syscall.SIGKILL)
		}
	})
	s.start()
	token, err := os.ReadFile(filepath.Join(s.data, "token"))
	if err != nil {
		t.Fatal(err)
	}
	client := api.NewClient(s.api, strings.TrimSpace(string(token)), nil)
	ro, err := client.Deploy(context.Background(), rollout.DeployRequest{App: "shop", Version: "v1"})
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for ro.Phase != rollout.PhaseSucceeded {
		if time.Now().After(deadline) || ro.Phase.Final() {
			t.Fatalf("v1: %s %s", ro.Phase, ro.Reason)
		}
		time.Sleep(100 * time.Millisecond)
		if ro, err = client.GetRollout(context.Background(), ro.ID); err != nil {
			t.Fatal(err)
		}
	}
}
