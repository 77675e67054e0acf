// Package listener opens the TCP listeners of the server and of its
// routers: when an address is already taken it says which process holds
// it, so that "address already in use" comes with what to stop, and it
// bounds how many connections a listener holds open at once.
package listener

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

// InUseError is a listen that failed because another socket holds the
// address. PID and Command name the process that holds it when it could
// be found (Linux, with the right to read its /proc entries).
type InUseError struct {
	// What the address is for, such as "the API" or "the production router".
	What string
	Addr string
	// PID is 0 when the holder could not be found.
	PID     int
	Command string
	Err     error
}

func (e *InUseError) Error() string {
	who := "another process"
	if e.PID > 0 {
		who = fmt.Sprintf("process %d (%s)", e.PID, e.Command)
	}
	return fmt.Sprintf("%s cannot listen on %s: address already in use by %s; stop it or choose another address", e.What, e.Addr, who)
}

// Unwrap returns the listen error.
func (e *InUseError) Unwrap() error { return e.Err }

// Listen listens on the TCP address addr for what (used in errors). When
// the address is taken it returns an *InUseError naming the holder.
func Listen(ctx context.Context, what, addr string) (net.Listener, error) {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err == nil {
		return ln, nil
	}
	if !errors.Is(err, syscall.EADDRINUSE) {
		return nil, fmt.Errorf("%s cannot listen on %s: %w", what, addr, err)
	}
	ie := &InUseError{What: what, Addr: addr, Err: err}
	if _, port, perr := net.SplitHostPort(addr); perr == nil {
		if p, perr := strconv.Atoi(port); perr == nil {
			ie.PID, ie.Command = Holder(p)
		}
	}
	return nil, ie
}

// Holder returns the process that listens on TCP port, IPv4 or IPv6, and
// its command line, or 0 and "" when none can be found.
func Holder(port int) (pid int, command string) {
	inodes := map[string]bool{}
	for _, table := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		for _, ino := range listeningInodes(table, port) {
			inodes[ino] = true
		}
	}
	if len(inodes) == 0 {
		return 0, ""
	}
	procs, err := os.ReadDir("/proc")
	if err != nil {
		return 0, ""
	}
	for _, p := range procs {
		id, err := strconv.Atoi(p.Name())
		if err != nil {
			continue
		}
		fdDir := filepath.Join("/proc", p.Name(), "fd")
		fds, err := os.ReadDir(fdDir)
		if err != nil {
			continue // gone, or not ours to read
		}
		for _, fd := range fds {
			link, err := os.Readlink(filepath.Join(fdDir, fd.Name()))
			if err != nil || !strings.HasPrefix(link, "socket:[") {
				continue
			}
			if inodes[strings.TrimSuffix(strings.TrimPrefix(link, "socket:["), "]")] {
				return id, commandLine(id)
			}
		}
	}
	return 0, ""
}

// listeningInodes returns the socket inodes of the table's sockets that
// listen on port.
func listeningInodes(table string, port int) []string {
	f, err := os.Open(table) //nolint:gosec // a fixed /proc path
	if err != nil {
		return nil
	}
	defer func() { _ = f.Close() }() // read only
	want := fmt.Sprintf(":%04X", port)
	var out []string
	sc := bufio.NewScanner(f)
	sc.Scan() // the header
	for sc.Scan() {
		// sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode
		fields := strings.Fields(sc.Text())
		if len(fields) < 10 || fields[3] != "0A" || !strings.HasSuffix(fields[1], want) {
			continue
		}
		out = append(out, fields[9])
	}
	return out
}

// commandLine returns the command line of pid, or its name.
func commandLine(pid int) string {
	dir := filepath.Join("/proc", strconv.Itoa(pid))
	if b, err := os.ReadFile(filepath.Join(dir, "cmdline")); err == nil && len(b) > 0 { //nolint:gosec // a /proc path
		s := strings.TrimSpace(strings.NewReplacer("\x00", " ", "\n", " ").Replace(strings.TrimRight(string(b), "\x00")))
		if len(s) > 120 {
			s = s[:117] + "..."
		}
		if s != "" {
			return s
		}
	}
	if b, err := os.ReadFile(filepath.Join(dir, "comm")); err == nil { //nolint:gosec // a /proc path
		return strings.TrimSpace(string(b))
	}
	return "unknown"
}

// Limit returns a listener that holds at most n connections of ln open
// at once: Accept waits while n are open, and the connections beyond wait
// in the kernel's backlog instead of taking file descriptors. n <= 0 means
// no limit.
func Limit(ln net.Listener, n int) net.Listener {
	if n <= 0 {
		return ln
	}
	return &limitListener{Listener: ln, sem: make(chan struct{}, n), done: make(chan struct{})}
}

type limitListener struct {
	net.Listener
	sem       chan struct{}
	closeOnce sync.Once
	done      chan struct{}
}

func (l *limitListener) Accept() (net.Conn, error) {
	select {
	case l.sem <- struct{}{}:
	case <-l.done:
		return nil, net.ErrClosed
	}
	c, err := l.Listener.Accept()
	if err != nil {
		<-l.sem
		return nil, err
	}
	return &limitConn{Conn: c, release: func() { <-l.sem }}, nil
}

func (l *limitListener) Close() error {
	l.closeOnce.Do(func() { close(l.done) })
	return l.Listener.Close()
}

type limitConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}
