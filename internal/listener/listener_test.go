package listener

import (
	"errors"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
)

// TestListen_InUseNamesTheHolder takes a port with another real process
// and checks that Listen's error names the address and that process.
func TestListen_InUseNamesTheHolder(t *testing.T) {
	if _, err := os.Stat("/proc/net/tcp"); err != nil {
		t.Skip("no /proc/net/tcp: the holder cannot be found on this system")
	}
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 is needed to hold a port from another process")
	}
	cmd := exec.Command(py, "-c", `import socket,sys,time
s=socket.socket(); s.bind(("127.0.0.1",0)); s.listen(1)
print(s.getsockname()[1], flush=True); time.sleep(60)`)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	buf := make([]byte, 16)
	n, err := out.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	port := strings.TrimSpace(string(buf[:n]))
	addr := "127.0.0.1:" + port

	_, err = Listen(t.Context(), "the API", addr)
	var ie *InUseError
	if !errors.As(err, &ie) {
		t.Fatalf("Listen(%s) = %v, want an *InUseError", addr, err)
	}
	if got, want := ie.PID, cmd.Process.Pid; got != want {
		t.Fatalf("holder pid = %d, want %d (python3); error: %v", got, want, err)
	}
	for _, want := range []string{"the API cannot listen on " + addr, "already in use by process " + strconv.Itoa(cmd.Process.Pid) + " (", "python3"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	}
}

// TestHolder_OwnListener finds this process as the holder of its own
// listener.
func TestHolder_OwnListener(t *testing.T) {
	if _, err := os.Stat("/proc/net/tcp"); err != nil {
		t.Skip("no /proc/net/tcp")
	}
	ln, err := Listen(t.Context(), "the API", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if pid, _ := Holder(ln.Addr().(*net.TCPAddr).Port); pid != os.Getpid() {
		t.Fatalf("Holder = %d, want this process %d", pid, os.Getpid())
	}
}
