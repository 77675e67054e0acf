package proxy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// SupervisorConfig says how to run an environment's router process.
type SupervisorConfig struct {
	// Command runs a router process when given the router flags, for
	// example the shipgate binary and "router".
	Command []string
	// Env is the environment the router routes.
	Env string
	// Listen, PreviewListen, StickyHeader and StickyCookie configure the
	// router (see ProcessConfig). A running router with other values is
	// replaced.
	Listen        string
	PreviewListen string
	StickyHeader  string
	StickyCookie  string
	// DataDir holds the router's control socket (router-<env>.sock), its
	// state file (router-<env>.json) and its log (logs/router-<env>.log).
	DataDir string
	// Logger receives the supervisor's log lines. Nil discards them.
	Logger *slog.Logger
	// StartTimeout bounds the wait for a new router to answer on its
	// control socket. Zero means 10 seconds.
	StartTimeout time.Duration
	// CheckInterval is how often the supervisor checks that a router it
	// did not start itself is still alive. Zero means 100ms.
	CheckInterval time.Duration
}

// Defaults of SupervisorConfig.
const (
	defaultStartTimeout  = 10 * time.Second
	defaultCheckInterval = 100 * time.Millisecond
	// maxRestartBackoff caps the wait between two failed restarts.
	maxRestartBackoff = 10 * time.Second
	// logTailLines is how many lines of the router's log an error quotes.
	logTailLines = 10
)

// ControlSocketPath returns the control socket of env's router in dataDir.
func ControlSocketPath(dataDir, env string) string {
	return filepath.Join(dataDir, "router-"+env+".sock")
}

// StateFilePath returns the state file of env's router in dataDir.
func StateFilePath(dataDir, env string) string {
	return filepath.Join(dataDir, "router-"+env+".json")
}

// LogPath returns the log file of env's router in dataDir.
func LogPath(dataDir, env string) string {
	return filepath.Join(dataDir, "logs", "router-"+env+".log")
}

// supervisor starts an environment's router process and starts it again
// when it dies, for as long as its client is open.
type supervisor struct {
	cfg                      SupervisorConfig
	socket, state, logPath   string
	log                      *slog.Logger
	c                        *Client
	startTimeout, checkEvery time.Duration

	mu       sync.Mutex
	pid      int
	exited   chan struct{} // closed when the process exits, if it is our child; else nil
	lastExit string        // how our last child ended
	stopping bool          // StopProcess was called: a death is expected

	stopWatch context.CancelFunc
	done      chan struct{} // closed when the watch goroutine returns
	closeOnce sync.Once
}

// EnsureProcess makes sure a router process serves cfg.Env with cfg, and
// returns a client of it that keeps it running:
//
//   - if a router answers on the environment's control socket with the
//     same configuration, it is reused: the server restarted, the router
//     kept serving;
//   - if it answers with another configuration, it is stopped gracefully
//     and a new one started, which loads the same state file;
//   - otherwise a new router is started, detached from the caller (its own
//     session, stdin from /dev/null, output to its log file) so that it
//     outlives the caller, even a kill -9 of it.
//
// It returns once the router answers on its control socket. Until the
// client is closed or ctx ends, a goroutine notices when the router
// process dies and starts it again; the new one serves the saved table.
func EnsureProcess(ctx context.Context, cfg SupervisorConfig) (*Client, error) {
	switch {
	case len(cfg.Command) == 0:
		return nil, errors.New("router process: a command is required")
	case cfg.Env == "" || strings.ContainsAny(cfg.Env, `/\`):
		return nil, fmt.Errorf("router process: invalid environment name %q", cfg.Env)
	case cfg.Listen == "":
		return nil, fmt.Errorf("router process for %s: a listen address is required", cfg.Env)
	case cfg.DataDir == "":
		return nil, fmt.Errorf("router process for %s: a data dir is required", cfg.Env)
	}
	dir, err := filepath.Abs(cfg.DataDir)
	if err != nil {
		return nil, fmt.Errorf("router process for %s: %w", cfg.Env, err)
	}
	cfg.DataDir = dir
	if err := os.MkdirAll(filepath.Join(dir, "logs"), 0o700); err != nil {
		return nil, fmt.Errorf("router process for %s: %w", cfg.Env, err)
	}
	s := &supervisor{
		cfg:          cfg,
		socket:       ControlSocketPath(dir, cfg.Env),
		state:        StateFilePath(dir, cfg.Env),
		logPath:      LogPath(dir, cfg.Env),
		log:          cfg.Logger,
		startTimeout: cfg.StartTimeout,
		checkEvery:   cfg.CheckInterval,
		done:         make(chan struct{}),
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.startTimeout <= 0 {
		s.startTimeout = defaultStartTimeout
	}
	if s.checkEvery <= 0 {
		s.checkEvery = defaultCheckInterval
	}
	if err := checkSocketPath(s.socket); err != nil {
		return nil, fmt.Errorf("router process for %s: %w", cfg.Env, err)
	}
	s.c = newClient(cfg.Env, s.socket)
	s.c.sup = s
	if err := s.ensure(ctx); err != nil {
		return nil, err
	}
	watchCtx, stop := context.WithCancel(ctx)
	s.stopWatch = stop
	go s.watch(watchCtx)
	return s.c, nil
}

// matches reports whether a running router was started with the
// supervisor's configuration.
func (s *supervisor) matches(info ProcessInfo) bool {
	return info.Env == s.cfg.Env && info.Listen == s.cfg.Listen && info.PreviewListen == s.cfg.PreviewListen &&
		info.StickyHeader == s.cfg.StickyHeader && info.StickyCookie == s.cfg.StickyCookie && info.StateFile == s.state
}

// ensure reuses the router that answers on the control socket if it has
// the right configuration, and otherwise starts one.
func (s *supervisor) ensure(ctx context.Context) error {
	probe, cancel := context.WithTimeout(ctx, 2*time.Second)
	info, err := s.c.fetchInfo(probe)
	cancel()
	if err == nil {
		if s.matches(info) {
			s.c.setInfo(info)
			s.adopt(info.PID, nil)
			s.log.Info("router process already running; reusing it", "pid", info.PID, "addr", info.Addr)
			return nil
		}
		s.log.Info("router process runs with another configuration; replacing it", "pid", info.PID,
			"listen", info.Listen, "want_listen", s.cfg.Listen)
		if err := stopPID(ctx, info.PID, nil); err != nil {
			return fmt.Errorf("router process for %s: stop the old one: %w", s.cfg.Env, err)
		}
	}
	return s.start(ctx)
}

func (s *supervisor) adopt(pid int, exited chan struct{}) {
	s.mu.Lock()
	s.pid, s.exited = pid, exited
	s.mu.Unlock()
}

// start starts a router process and waits until it answers.
func (s *supervisor) start(ctx context.Context) error {
	args := append(slices.Clone(s.cfg.Command[1:]),
		"--env", s.cfg.Env, "--listen", s.cfg.Listen, "--state", s.state, "--control", s.socket)
	if s.cfg.PreviewListen != "" {
		args = append(args, "--preview-listen", s.cfg.PreviewListen)
	}
	if s.cfg.StickyHeader != "" {
		args = append(args, "--sticky-header", s.cfg.StickyHeader)
	}
	if s.cfg.StickyCookie != "" {
		args = append(args, "--sticky-cookie", s.cfg.StickyCookie)
	}
	logFile, err := os.OpenFile(s.logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("router process for %s: open log: %w", s.cfg.Env, err)
	}
	// The child gets its own copy of the descriptor: no pipe whose reader
	// dies with the server. This process never writes to its copy.
	defer func() { _ = logFile.Close() }()
	// Not CommandContext: the router must outlive ctx and the caller.
	//nolint:gosec,noctx // Running the router command is what this is for.
	cmd := exec.Command(s.cfg.Command[0], args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// Its own session: no terminal's Ctrl-C or hangup reaches it, and it
	// is no longer in the caller's process group.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("router process for %s: %w", s.cfg.Env, err)
	}
	pid := cmd.Process.Pid
	exited := make(chan struct{})
	// The reaper is owned by the child: it returns when the child exits,
	// even after Close, so that the child never lingers as a zombie.
	go func() {
		_ = cmd.Wait()
		s.mu.Lock()
		s.lastExit = cmd.ProcessState.String()
		s.mu.Unlock()
		close(exited)
	}()
	s.log.Info("router process started", "pid", pid, "listen", s.cfg.Listen, "log", s.logPath)

	deadline := time.NewTimer(s.startTimeout)
	defer deadline.Stop()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		probe, cancel := context.WithTimeout(ctx, time.Second)
		info, err := s.c.fetchInfo(probe)
		cancel()
		if err == nil && s.matches(info) {
			s.c.setInfo(info)
			if info.PID == pid {
				s.adopt(pid, exited)
			} else {
				// Another supervisor's router got there first; ours
				// exits when it finds the lock taken.
				s.adopt(info.PID, nil)
			}
			return nil
		}
		select {
		case <-exited:
			// One last look: another router may hold the socket.
			if info, err := s.c.fetchInfo(ctx); err == nil && s.matches(info) {
				s.c.setInfo(info)
				s.adopt(info.PID, nil)
				return nil
			}
			s.mu.Lock()
			how := s.lastExit
			s.mu.Unlock()
			return fmt.Errorf("router process for %s ended (%s) before answering%s", s.cfg.Env, how, s.logTail())
		case <-deadline.C:
			_ = syscall.Kill(pid, syscall.SIGKILL)
			return fmt.Errorf("router process for %s did not answer on %s within %v; killed it%s",
				s.cfg.Env, s.socket, s.startTimeout, s.logTail())
		case <-ctx.Done():
			// Left to come up: a router serving the saved table is
			// better than none, and the next server adopts it.
			return fmt.Errorf("router process for %s: %w", s.cfg.Env, ctx.Err())
		case <-tick.C:
		}
	}
}

// logTail returns the last lines of the router's log, for an error.
func (s *supervisor) logTail() string {
	lines := tailFile(s.logPath, logTailLines)
	if len(lines) == 0 {
		return " (its log " + s.logPath + " is empty)"
	}
	return "; last lines of " + s.logPath + ":\n  " + strings.Join(lines, "\n  ")
}

// watch starts the router again whenever it dies, until ctx ends.
func (s *supervisor) watch(ctx context.Context) {
	defer close(s.done)
	tick := time.NewTicker(s.checkEvery)
	defer tick.Stop()
	for {
		s.mu.Lock()
		pid, exited := s.pid, s.exited
		s.mu.Unlock()
		select {
		case <-ctx.Done():
			return
		case <-exited: // nil, and so never ready, for a router we did not start
		case <-tick.C:
			if exited != nil || processAlive(pid) {
				continue
			}
		}
		s.mu.Lock()
		stopping, how := s.stopping, s.lastExit
		s.mu.Unlock()
		if stopping {
			return
		}
		if exited == nil {
			how = "exited"
		}
		s.log.Error("router process died; starting it again", "pid", pid, "how", how, "log", s.logPath)
		s.c.restarts.Add(1)
		for backoff := 100 * time.Millisecond; ; backoff = min(2*backoff, maxRestartBackoff) {
			err := s.ensure(ctx)
			if err == nil {
				s.restoreRoutes(ctx)
				break
			}
			if ctx.Err() != nil {
				return
			}
			s.log.Error("restart router process", "error", err, "retry_in", backoff)
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
		}
	}
}

// restoreRoutes sends the table last set through the client again if the
// restarted router does not serve it. It should: the router saved it
// before applying it. This covers a state file lost with its disk.
func (s *supervisor) restoreRoutes(ctx context.Context) {
	s.c.mu.Lock()
	last := s.c.last
	s.c.mu.Unlock()
	if last == nil {
		return
	}
	got, err := s.c.Routes(ctx)
	if err == nil && sameRoutes(got, *last) {
		return
	}
	if err := s.c.SetRoutes(ctx, *last); err != nil {
		s.log.Error("restore routes on the restarted router", "error", err)
		return
	}
	s.log.Warn("the restarted router did not serve the last routes; set them again")
}

// sameRoutes compares two tables as the control API sends them, where an
// empty list and no list are the same.
func sameRoutes(a, b any) bool {
	ja, err1 := json.Marshal(a)
	jb, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && bytes.Equal(ja, jb)
}

// close stops the watch goroutine and waits for it.
func (s *supervisor) close() {
	s.closeOnce.Do(func() {
		if s.stopWatch != nil {
			s.stopWatch()
			<-s.done
		}
	})
}

// Started reports whether the client's supervisor started the router
// process it serves, rather than reusing one that was already running.
func (c *Client) Started() bool {
	s := c.sup
	if s == nil {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.exited != nil
}

// StopProcess stops the router process gracefully, with SIGTERM, and
// waits until it is gone or ctx ends (then it kills it). A client of
// EnsureProcess stops supervising it first. The state file stays, so a
// router started later serves the same table.
func (c *Client) StopProcess(ctx context.Context) error {
	var pid int
	var exited chan struct{}
	if s := c.sup; s != nil {
		s.mu.Lock()
		s.stopping = true
		s.mu.Unlock()
		s.close()
		s.mu.Lock()
		pid, exited = s.pid, s.exited
		s.mu.Unlock()
	} else {
		info, err := c.Info(ctx)
		if err != nil {
			return fmt.Errorf("stop router: %w", err)
		}
		pid = info.PID
	}
	if err := stopPID(ctx, pid, exited); err != nil {
		return fmt.Errorf("stop router %s: %w", c.env, err)
	}
	c.http.CloseIdleConnections()
	return nil
}

// stopPID sends SIGTERM to pid and waits until it is gone; if ctx ends
// first it sends SIGKILL. exited, when not nil, closes when it is gone.
func stopPID(ctx context.Context, pid int, exited chan struct{}) error {
	if pid <= 0 {
		return fmt.Errorf("no process id")
	}
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		if errors.Is(err, syscall.ESRCH) {
			return nil
		}
		return err
	}
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-exited:
			return nil
		case <-ctx.Done():
			_ = syscall.Kill(pid, syscall.SIGKILL)
			return fmt.Errorf("process %d did not stop in time; killed it: %w", pid, ctx.Err())
		case <-tick.C:
			if exited == nil && !processAlive(pid) {
				return nil
			}
		}
	}
}

// processAlive reports whether pid is a live process: one that exists and
// is not a zombie waiting to be reaped.
func processAlive(pid int) bool {
	if pid <= 0 {
		return false
	}
	if err := syscall.Kill(pid, 0); err != nil && !errors.Is(err, syscall.EPERM) {
		return false
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		// Without /proc (not Linux), trust kill; with it, a missing entry
		// means the process just went.
		return !haveProc() || !errors.Is(err, os.ErrNotExist)
	}
	// The state follows the command name, which is in parentheses and
	// may hold anything.
	if i := bytes.LastIndexByte(b, ')'); i >= 0 && i+2 < len(b) {
		return b[i+2] != 'Z'
	}
	return true
}

// haveProc reports whether the system has a Linux-style /proc.
var haveProc = sync.OnceValue(func() bool {
	_, err := os.Stat("/proc/self/stat")
	return err == nil
})

// tailFile returns the last n lines of the file at path, or none if it
// cannot be read.
func tailFile(path string, n int) []string {
	f, err := os.Open(path) //nolint:gosec // the router's log in the data dir
	if err != nil {
		return nil
	}
	defer func() { _ = f.Close() }() // read only
	st, err := f.Stat()
	if err != nil {
		return nil
	}
	const tailBytes = 8 << 10
	off := max(0, st.Size()-tailBytes)
	buf := make([]byte, st.Size()-off)
	if _, err := f.ReadAt(buf, off); err != nil && err != io.EOF {
		return nil
	}
	text := strings.TrimRight(string(buf), "\n")
	if text == "" {
		return nil
	}
	lines := strings.Split(text, "\n")
	if off > 0 && len(lines) > 1 {
		lines = lines[1:] // the first line is cut
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return lines
}
