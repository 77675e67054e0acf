// Package process runs app instances as local processes on this machine:
// it starts them on free ports, waits until they are healthy, watches them,
// and stops them gracefully. It is the Runtime of a one-machine Shipgate.
//
// Instances do not depend on the control plane: each runs in its own
// process group, with its output appended to a file under
// DataDir/logs/<app>/<env>/, so it keeps serving when the server exits, and
// a restarted server takes it back with Adopt.
package process

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/shipgate/shipgate/internal/rollout"
)

// Defaults for the zero fields of an InstanceSpec. They match the
// documented defaults of shipgate.yaml.
const (
	defaultHealthPath       = "/healthz"
	defaultHealthInterval   = time.Second
	defaultHealthTimeout    = time.Second
	defaultFailureThreshold = 3
	defaultStartTimeout     = 30 * time.Second
	defaultStopGrace        = 10 * time.Second
)

// startPollInterval is the time between two health checks of an instance
// that is starting: short, so that a deploy does not wait for nothing.
const startPollInterval = 100 * time.Millisecond

// forgetAfter is how long the runtime remembers an instance that exited,
// so that Status can still say why.
const forgetAfter = time.Hour

// logTailLines is how many lines of an instance's log a start error quotes.
const logTailLines = 10

// inheritedEnv names the only variables of the server's environment that
// instances get, besides their own and PORT: enough to find programs and
// format text, and nothing that could leak the server's secrets.
var inheritedEnv = []string{"PATH", "HOME", "LANG", "TZ", "TMPDIR"}

// errClosed is returned by calls made after Close.
var errClosed = errors.New("process runtime is closed")

// Config configures a Runtime.
type Config struct {
	// DataDir is the server's data directory. The output of each instance
	// is appended to DataDir/logs/<app>/<env>/<instance-id>.log.
	DataDir string
	// Logger receives what the runtime does. Nil discards it.
	Logger *slog.Logger
	// HTTPClient sends the health checks. Nil means a client of the
	// runtime's own.
	HTTPClient *http.Client
}

// Runtime runs instances as child processes of the server and supervises
// them. It is safe for concurrent use.
type Runtime struct {
	dataDir string
	log     *slog.Logger
	client  *http.Client

	// ctx ends the supervision goroutines, counted by wg, when Close is
	// called.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu        sync.Mutex
	closed    bool
	instances map[string]*instance // by instance ID
}

// New returns a Runtime. Call Close when done with it.
func New(cfg Config) *Runtime {
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	client := cfg.HTTPClient
	if client == nil {
		// No proxy: health checks go straight to 127.0.0.1.
		client = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1, IdleConnTimeout: time.Minute}}
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Runtime{
		dataDir:   cfg.DataDir,
		log:       logger,
		client:    client,
		ctx:       ctx,
		cancel:    cancel,
		instances: map[string]*instance{},
	}
}

// Close stops health-checking instances and waits for the supervision
// goroutines to return. It does not stop the instances: they outlive the
// control plane, and the next server adopts them. The goroutine that reaps
// each child keeps waiting for the child to exit, so that no child of this
// server is ever left a zombie. Calling Close twice is fine.
func (r *Runtime) Close() {
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
	r.cancel()
	r.wg.Wait()
}

// Start starts spec.Count instances on free ports of 127.0.0.1 and returns
// once all answer their health check. If one exits or is not healthy
// within spec.StartTimeout, or ctx is cancelled, Start stops every instance
// it started and returns an error that names the instance and says why,
// quoting the end of its log.
func (r *Runtime) Start(ctx context.Context, spec rollout.InstanceSpec) ([]rollout.Instance, error) {
	if err := validate(spec); err != nil {
		return nil, err
	}
	spec = withDefaults(spec)
	if r.isClosed() {
		return nil, errClosed
	}
	r.forgetOld()

	ports, err := freePorts(ctx, spec.Count)
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", describe(spec), err)
	}
	started := make([]*instance, 0, spec.Count)
	fail := func(err error) ([]rollout.Instance, error) {
		// The instances must go even when ctx is what failed, but not
		// wait forever on one stuck in the kernel.
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), spec.StopGrace+10*time.Second)
		defer cancel()
		stopErr := r.stopAll(sctx, started)
		r.forget(started)
		return nil, errors.Join(fmt.Errorf("start %s: %w", describe(spec), err), stopErr)
	}
	for i, port := range ports {
		in, err := r.launch(spec, i+1, port)
		if err != nil {
			return fail(err)
		}
		started = append(started, in)
	}
	if err := r.awaitHealthy(ctx, spec.StartTimeout, started); err != nil {
		return fail(err)
	}

	out := make([]rollout.Instance, len(started))
	for i, in := range started {
		in.setRunning()
		r.supervise(in)
		out[i] = in.inst
	}
	r.log.Info("instances healthy", "app", spec.App, "env", spec.Env, "version", spec.Version, "count", len(out))
	return out, nil
}

// Stop stops instances in parallel: SIGTERM to each one's process group,
// then SIGKILL to the group if it is not gone after spec.StopGrace.
// Stopping an instance that already exited, or that this runtime never
// started nor adopted, does nothing.
func (r *Runtime) Stop(ctx context.Context, instances []rollout.Instance) error {
	errs := make([]error, len(instances))
	var wg sync.WaitGroup
	for i, inst := range instances {
		in := r.lookup(inst.ID)
		if in == nil {
			// Started by an earlier server that died before recording it
			// anywhere but the registry.
			in = r.fromRegistry(inst.ID)
		}
		if in == nil {
			r.log.Debug("stop: instance unknown to this runtime, nothing to do", "instance", inst.ID)
			continue
		}
		wg.Go(func() { errs[i] = r.stop(ctx, in) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// Status returns what the runtime knows of inst now.
func (r *Runtime) Status(_ context.Context, inst rollout.Instance) rollout.InstanceStatus {
	in := r.lookup(inst.ID)
	if in == nil {
		return rollout.InstanceStatus{State: rollout.InstanceUnknown, Reason: "not started or adopted by this runtime"}
	}
	return in.status()
}

// Adopt takes over the supervision of inst, an instance started from spec
// by an earlier server, so that Status and Stop work on it again. The
// process must still be alive and must answer HTTP on inst.Addr, which
// tells it apart from an unrelated process that was given the same PID;
// otherwise Adopt returns an error wrapping rollout.ErrNotFound. Adopting
// an instance twice is fine.
func (r *Runtime) Adopt(ctx context.Context, inst rollout.Instance, spec rollout.InstanceSpec) error {
	if r.isClosed() {
		return errClosed
	}
	if r.lookup(inst.ID) != nil {
		return nil
	}
	spec = withDefaults(spec)
	if inst.PID <= 0 || !alive(inst.PID) {
		return fmt.Errorf("adopt instance %s: process %d is gone: %w", inst.ID, inst.PID, rollout.ErrNotFound)
	}

	in := newInstance(inst, spec, r.logPath(spec, inst.ID))
	in.adopted = true
	// Instances are started as process group leaders; if this PID is not
	// one, signal the process alone rather than a group that is not ours.
	pgid, err := syscall.Getpgid(inst.PID)
	in.group = err == nil && pgid == inst.PID

	err = r.check(ctx, in)
	if errors.Is(err, syscall.ECONNREFUSED) {
		return fmt.Errorf("adopt instance %s: process %d is alive but nothing listens on %s, so it is not this instance: %w",
			inst.ID, inst.PID, inst.Addr, rollout.ErrNotFound)
	}
	if ctx.Err() != nil {
		return fmt.Errorf("adopt instance %s: %w", inst.ID, ctx.Err())
	}
	in.setRunning()
	if st, changed := in.recordCheck(err); changed {
		r.logState(in, st)
	}

	r.mu.Lock()
	if _, dup := r.instances[inst.ID]; dup {
		r.mu.Unlock()
		return nil
	}
	r.instances[inst.ID] = in
	r.mu.Unlock()
	r.supervise(in)
	r.log.Info("instance adopted", "instance", inst.ID, "pid", inst.PID, "addr", inst.Addr, "healthy", err == nil)
	return nil
}

// launch starts the n-th instance of spec on port, without waiting for it.
func (r *Runtime) launch(spec rollout.InstanceSpec, n, port int) (*instance, error) {
	id := fmt.Sprintf("%s-%s-%s-%d-%s", spec.App, spec.Env, spec.Version, n, randomHex(2))
	portStr := strconv.Itoa(port)
	args := make([]string, len(spec.Command))
	for i, a := range spec.Command {
		args[i] = strings.ReplaceAll(a, "${PORT}", portStr)
	}
	env, names := environ(spec.Environ, portStr)

	logPath := r.logPath(spec, id)
	if err := os.MkdirAll(filepath.Dir(logPath), 0o750); err != nil {
		return nil, fmt.Errorf("instance %s: create log directory: %w", id, err)
	}
	logFile, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("instance %s: open log: %w", id, err)
	}
	// The child gets its own copy of the descriptor: no pipe whose reader
	// dies with the server, so the instance can outlive the server. This
	// process never writes to its copy.
	defer func() { _ = logFile.Close() }()

	// Not CommandContext: the instance must outlive both ctx and the server.
	// Running the configured command is what this package is for.
	//nolint:gosec,noctx // See above.
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = env
	cmd.Dir = spec.Dir
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	// Its own process group keeps the terminal's Ctrl-C away from the
	// instance and lets Stop signal everything the instance spawned.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("instance %s: %w", id, err)
	}

	in := newInstance(rollout.Instance{
		ID:      id,
		App:     spec.App,
		Env:     spec.Env,
		Version: spec.Version,
		Addr:    net.JoinHostPort("127.0.0.1", portStr),
		PID:     cmd.Process.Pid,
	}, spec, logPath)
	in.group = true
	r.mu.Lock()
	r.instances[id] = in
	r.mu.Unlock()
	r.register(in)

	// The reaper is owned by the child: it returns when the child exits,
	// even after Close, so that the child never lingers as a zombie.
	go func() {
		err := cmd.Wait()
		reason := cmd.ProcessState.String()
		if cmd.ProcessState == nil {
			reason = err.Error()
		}
		st := in.markExited(reason)
		r.unregister(id)
		r.log.Info("instance exited", "instance", id, "pid", in.inst.PID, "reason", st.Reason)
	}()

	r.log.Info("instance started", "instance", id, "pid", in.inst.PID, "addr", in.inst.Addr,
		"log", logPath, "env_vars", names)
	return in, nil
}

// awaitHealthy waits until every instance answers its health check, one
// exits, or timeout passes. Its goroutines have returned when it returns.
func (r *Runtime) awaitHealthy(ctx context.Context, timeout time.Duration, ins []*instance) error {
	ctx, cancel := context.WithTimeoutCause(ctx, timeout, errStartTimeout)
	defer cancel()
	errs := make(chan error, len(ins))
	for _, in := range ins {
		go func() { errs <- r.awaitOne(ctx, timeout, in) }()
	}
	var first error
	for range ins {
		if err := <-errs; err != nil && first == nil {
			first = err
			cancel() // no need to wait for the others
		}
	}
	return first
}

var errStartTimeout = errors.New("start timeout")

// awaitOne polls one instance's health until it passes, the instance
// exits, or ctx ends.
func (r *Runtime) awaitOne(ctx context.Context, timeout time.Duration, in *instance) error {
	tick := time.NewTicker(startPollInterval)
	defer tick.Stop()
	last := errors.New("no check completed")
	for {
		if in.isExited() {
			return r.startError(in, "exited before becoming healthy: "+in.status().Reason)
		}
		err := r.check(ctx, in)
		if err == nil {
			return nil
		}
		if ctx.Err() == nil {
			last = err // a check cut short by the deadline says nothing
		}
		select {
		case <-in.exited:
		case <-ctx.Done():
			if in.isExited() {
				continue
			}
			if errors.Is(context.Cause(ctx), errStartTimeout) {
				return r.startError(in, fmt.Sprintf("not healthy after %v: last check: %v", timeout, last))
			}
			return fmt.Errorf("instance %s: %w", in.inst.ID, ctx.Err())
		case <-tick.C:
		}
	}
}

// startError says why in failed to start, with the end of its log.
func (r *Runtime) startError(in *instance, why string) error {
	lines, err := tail(in.logPath, logTailLines)
	var b strings.Builder
	fmt.Fprintf(&b, "instance %s %s", in.inst.ID, why)
	switch {
	case err != nil:
		fmt.Fprintf(&b, "\n(could not read its log: %v)", err)
	case len(lines) == 0:
		fmt.Fprintf(&b, "\n(its log %s is empty)", in.logPath)
	default:
		fmt.Fprintf(&b, "\nlast lines of its log %s:", in.logPath)
		for _, l := range lines {
			b.WriteString("\n  ")
			b.WriteString(l)
		}
	}
	return errors.New(b.String())
}

// stopAll stops ins in parallel.
func (r *Runtime) stopAll(ctx context.Context, ins []*instance) error {
	errs := make([]error, len(ins))
	var wg sync.WaitGroup
	for i, in := range ins {
		wg.Go(func() { errs[i] = r.stop(ctx, in) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// stop sends SIGTERM to in, waits up to its grace period for it and its
// process group to be gone, then sends SIGKILL.
func (r *Runtime) stop(ctx context.Context, in *instance) error {
	if in.gone() {
		return nil
	}
	in.setStopping()
	r.log.Info("stopping instance", "instance", in.inst.ID, "pid", in.inst.PID, "grace", in.spec.StopGrace)
	if err := in.signal(syscall.SIGTERM); err != nil {
		return fmt.Errorf("stop instance %s: %w", in.inst.ID, err)
	}
	grace := time.NewTimer(in.spec.StopGrace)
	defer grace.Stop()
	if err := in.waitGone(ctx, grace.C, false); err == nil {
		r.unregister(in.inst.ID)
		return nil
	} else if !errors.Is(err, errGraceOver) {
		return fmt.Errorf("stop instance %s: %w", in.inst.ID, err)
	}

	r.log.Warn("instance still running after grace period, killing it", "instance", in.inst.ID,
		"pid", in.inst.PID, "grace", in.spec.StopGrace)
	if err := in.signal(syscall.SIGKILL); err != nil {
		return fmt.Errorf("kill instance %s: %w", in.inst.ID, err)
	}
	if err := in.waitGone(ctx, nil, true); err != nil {
		return fmt.Errorf("kill instance %s: %w", in.inst.ID, err)
	}
	r.unregister(in.inst.ID)
	return nil
}

// supervise starts watching in, unless the runtime is closed.
func (r *Runtime) supervise(in *instance) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return
	}
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		r.watch(in)
	}()
}

// watch health-checks in every interval until it exits or the runtime is
// closed. An adopted instance is not our child, so its exit is noticed by
// polling its PID.
func (r *Runtime) watch(in *instance) {
	tick := time.NewTicker(in.spec.HealthInterval)
	defer tick.Stop()
	for {
		select {
		case <-r.ctx.Done():
			return
		case <-in.exited:
			return
		case <-tick.C:
		}
		if in.adopted && !alive(in.inst.PID) {
			st := in.markExited("exited while adopted (exit status unknown: not a child of this server)")
			r.log.Info("instance exited", "instance", in.inst.ID, "pid", in.inst.PID, "reason", st.Reason)
			return
		}
		err := r.check(r.ctx, in)
		if r.ctx.Err() != nil {
			return
		}
		if st, changed := in.recordCheck(err); changed {
			r.logState(in, st)
		}
	}
}

func (r *Runtime) logState(in *instance, st rollout.InstanceStatus) {
	if st.State == rollout.InstanceUnhealthy {
		r.log.Warn("instance unhealthy", "instance", in.inst.ID, "reason", st.Reason)
		return
	}
	r.log.Info("instance healthy again", "instance", in.inst.ID)
}

// check sends one health check to in.
func (r *Runtime) check(ctx context.Context, in *instance) error {
	ctx, cancel := context.WithTimeout(ctx, in.spec.HealthTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+in.inst.Addr+in.spec.HealthPath, nil)
	if err != nil {
		return err
	}
	resp, err := r.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	// Read a little so the connection can be reused; health bodies are short.
	var buf [512]byte
	_, _ = resp.Body.Read(buf[:])
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("GET %s: %s", in.spec.HealthPath, resp.Status)
	}
	return nil
}

func (r *Runtime) lookup(id string) *instance {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.instances[id]
}

func (r *Runtime) isClosed() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.closed
}

// forget drops instances that failed to start: nobody holds their IDs.
func (r *Runtime) forget(ins []*instance) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, in := range ins {
		delete(r.instances, in.inst.ID)
	}
}

// forgetOld drops instances that exited more than forgetAfter ago, so
// that a long-running server does not remember every instance it ran.
func (r *Runtime) forgetOld() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for id, in := range r.instances {
		if t := in.exitTime(); !t.IsZero() && time.Since(t) > forgetAfter {
			delete(r.instances, id)
		}
	}
}

func (r *Runtime) logPath(spec rollout.InstanceSpec, id string) string {
	return filepath.Join(r.dataDir, "logs", spec.App, spec.Env, id+".log")
}

// validate checks what Start cannot do without. App, Env and Version are
// parts of file names, so they must not hold a path separator.
func validate(spec rollout.InstanceSpec) error {
	for _, f := range []struct{ field, value string }{{"app", spec.App}, {"env", spec.Env}, {"version", spec.Version}} {
		if f.value == "" || f.value == "." || f.value == ".." || strings.ContainsAny(f.value, "/\\\x00") {
			return &rollout.FieldError{Field: f.field, Message: fmt.Sprintf("%q cannot name an instance: it must be a non-empty name without slashes", f.value)}
		}
	}
	switch {
	case len(spec.Command) == 0 || spec.Command[0] == "":
		return &rollout.FieldError{Field: "command", Message: "must name the program to run"}
	case spec.Count < 1:
		return &rollout.FieldError{Field: "count", Message: fmt.Sprintf("must be at least 1, got %d", spec.Count)}
	case spec.HealthPath != "" && !strings.HasPrefix(spec.HealthPath, "/"):
		return &rollout.FieldError{Field: "health_path", Message: fmt.Sprintf("must start with /, got %q", spec.HealthPath)}
	}
	return nil
}

func withDefaults(spec rollout.InstanceSpec) rollout.InstanceSpec {
	if spec.HealthPath == "" {
		spec.HealthPath = defaultHealthPath
	}
	if spec.HealthInterval <= 0 {
		spec.HealthInterval = defaultHealthInterval
	}
	if spec.HealthTimeout <= 0 {
		spec.HealthTimeout = defaultHealthTimeout
	}
	if spec.FailureThreshold <= 0 {
		spec.FailureThreshold = defaultFailureThreshold
	}
	if spec.StartTimeout <= 0 {
		spec.StartTimeout = defaultStartTimeout
	}
	if spec.StopGrace <= 0 {
		spec.StopGrace = defaultStopGrace
	}
	return spec
}

func describe(spec rollout.InstanceSpec) string {
	return fmt.Sprintf("%s %s in %s", spec.App, spec.Version, spec.Env)
}

// environ returns the environment of an instance on port and the names of
// its variables. Values may be secrets: only the names are ever logged.
func environ(vars map[string]string, port string) (env, names []string) {
	m := map[string]string{}
	for _, k := range inheritedEnv {
		if v, ok := os.LookupEnv(k); ok {
			m[k] = v
		}
	}
	for k, v := range vars {
		m[k] = strings.ReplaceAll(v, "${PORT}", port)
	}
	m["PORT"] = port
	for k := range m {
		names = append(names, k)
	}
	slices.Sort(names)
	for _, k := range names {
		env = append(env, k+"="+m[k])
	}
	return env, names
}

// freePorts returns n distinct ports of 127.0.0.1 that were free a moment
// ago. All listeners stay open until all ports are picked, so that the
// kernel cannot hand out one port twice. Another process may still take a
// port before the instance binds it; that instance then fails to start.
func freePorts(ctx context.Context, n int) ([]int, error) {
	var lc net.ListenConfig
	var lns []net.Listener
	defer func() {
		for _, ln := range lns {
			_ = ln.Close()
		}
	}()
	ports := make([]int, 0, n)
	for range n {
		ln, err := lc.Listen(ctx, "tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("pick a free port: %w", err)
		}
		lns = append(lns, ln)
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails on Linux
	return hex.EncodeToString(b)
}
