package server_test

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/shipgate/shipgate/internal/listener"
)

// twoEnvConfig is an app with two environments, so that one router may
// start before the other fails.
const twoEnvConfig = `app: shop
run:
  command: [%q, "--port", "${PORT}", "--version", "${VERSION}"]
  instances: 1
environments:
  staging:
    listen: 127.0.0.1:%d
  production:
    listen: 127.0.0.1:%d
`

// TestServer_PortTaken is defect 7 of issue 10: with its API or router
// port taken, `shipgate server` panicked (a nil ControlPlane in a deferred
// Close), exited 2 as if the input were invalid, and left a detached
// router process listening. It must exit 1 with an error naming the
// address and the process that holds it, and leave nothing running.
func TestServer_PortTaken(t *testing.T) {
	for _, taken := range []string{"api", "production router"} {
		t.Run(taken, func(t *testing.T) {
			hold, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer hold.Close()
			heldAddr := hold.Addr().String()
			apiAddr, staging, production := "127.0.0.1:"+strconv.Itoa(freePort(t)), freePort(t), freePort(t)
			if taken == "api" {
				apiAddr = heldAddr
			} else {
				production = hold.Addr().(*net.TCPAddr).Port
			}
			dir := t.TempDir()
			cfg := filepath.Join(dir, "shipgate.yaml")
			if err := os.WriteFile(cfg, []byte(fmt.Sprintf(twoEnvConfig, shopBin, staging, production)), 0o600); err != nil {
				t.Fatal(err)
			}
			data := filepath.Join(dir, "data")
			cmd := exec.Command(shipgateBin, "--data", data, "server", "-f", cfg, "--listen", apiAddr)
			out, err := cmd.CombinedOutput()
			code := cmd.ProcessState.ExitCode()
			if err == nil || code != 1 {
				t.Fatalf("shipgate server exited %d (%v), want 1:\n%s", code, err, out)
			}
			for _, bad := range []string{"panic:", "goroutine 1 ["} {
				if strings.Contains(string(out), bad) {
					t.Fatalf("output has %q:\n%s", bad, out)
				}
			}
			for _, want := range []string{"cannot listen on " + heldAddr, fmt.Sprintf("already in use by process %d", os.Getpid())} {
				if !strings.Contains(string(out), want) {
					t.Errorf("output does not say %q:\n%s", want, out)
				}
			}
			// Nothing left running: no router listens on any of the ports
			// (the held one is held by this test), and no router process
			// answers on a control socket.
			deadline := time.Now().Add(5 * time.Second)
			for _, port := range []int{staging, production} {
				for {
					pid, command := listener.Holder(port)
					if pid == 0 || pid == os.Getpid() {
						break
					}
					if time.Now().After(deadline) {
						t.Fatalf("port %d is still held by process %d (%s) after the server exited", port, pid, command)
					}
					time.Sleep(50 * time.Millisecond)
				}
			}
			socks, _ := filepath.Glob(filepath.Join(data, "router-*.sock"))
			if len(socks) > 0 {
				t.Errorf("router control sockets left behind: %v", socks)
			}
		})
	}
}
