package proxy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/shipgate/shipgate/internal/analysis"
	"github.com/shipgate/shipgate/internal/rollout"
)

// The router can run as its own process (shipgate router), so that users
// keep being served while the control plane is down or restarting: it
// keeps the last routing table it was given in a state file, serves with
// it from the moment it starts, and takes new tables over a control API on
// a unix socket. Client talks to that API; EnsureProcess starts and
// supervises the process.

// ProcessConfig configures a router process.
type ProcessConfig struct {
	// Env is the name of the environment whose traffic the router routes.
	Env string
	// Listen is the TCP address users reach the router on.
	Listen string
	// PreviewListen is the optional TCP address of the preview listener
	// (see Config.PreviewListen).
	PreviewListen string
	// StickyHeader and StickyCookie name where a request's user key is
	// read (see Config).
	StickyHeader string
	StickyCookie string
	// StateFile is where the last routing table set through the control
	// API is kept. The router loads it when it starts, so that a restarted
	// router serves at once what it served before.
	StateFile string
	// ControlSocket is the path of the unix socket of the control API. It
	// is created with mode 0600: whoever can reach it can route the
	// environment's traffic.
	ControlSocket string
	// ShutdownTimeout bounds how long a stopping router waits for the
	// requests in flight. Zero means 30 seconds.
	ShutdownTimeout time.Duration
	// Logger receives the router's log lines. Nil means text lines on
	// stderr.
	Logger *slog.Logger
}

// maxSocketPath is the longest unix socket path Linux accepts (108 bytes
// with the terminating NUL).
const maxSocketPath = 107

// maxRoutesBody bounds a PUT /routes body.
const maxRoutesBody = 1 << 20

// defaultShutdownTimeout is how long a stopping router waits for the
// requests in flight by default.
const defaultShutdownTimeout = 30 * time.Second

// ProcessInfo is what a router process says about itself on GET /healthz.
type ProcessInfo struct {
	// PID is the router's process id.
	PID int `json:"pid"`
	// Env is the environment it routes.
	Env string `json:"env"`
	// Listen and PreviewListen are the addresses it was told to listen
	// on; Addr and PreviewAddr the ones it listens on (they differ when a
	// port is 0).
	Listen        string `json:"listen"`
	Addr          string `json:"addr"`
	PreviewListen string `json:"preview_listen,omitempty"`
	PreviewAddr   string `json:"preview_addr,omitempty"`
	StickyHeader  string `json:"sticky_header,omitempty"`
	StickyCookie  string `json:"sticky_cookie,omitempty"`
	// StateFile is where it keeps its routing table.
	StateFile string `json:"state_file"`
	// StartedAt is when the process started.
	StartedAt time.Time `json:"started_at"`
}

// stateFile is the content of ProcessConfig.StateFile.
type stateFile struct {
	SavedAt time.Time      `json:"saved_at"`
	Routes  rollout.Routes `json:"routes"`
}

// RunProcess runs a router process until ctx ends or the process gets
// SIGTERM or SIGINT, then shuts down gracefully: it stops taking
// connections and waits for the requests in flight. It serves users with
// the table in the state file from the start, then serves the control API:
//
//	PUT /routes     validate, apply, then save to the state file; answers the table
//	GET /routes     the table served now
//	GET /stats      requests per version (wire samples, with histograms)
//	GET /flagstats  requests per flag key and variant
//	GET /health     the health of every backend address
//	GET /metrics    Prometheus text of the router's metrics
//	GET /healthz    ProcessInfo
//
// Only one router process runs per control socket: a second one fails.
func RunProcess(ctx context.Context, cfg ProcessConfig) error {
	switch {
	case cfg.Env == "":
		return errors.New("router: an environment name is required")
	case cfg.Listen == "":
		return errors.New("router: a listen address is required")
	case cfg.StateFile == "":
		return errors.New("router: a state file is required")
	case cfg.ControlSocket == "":
		return errors.New("router: a control socket is required")
	case cfg.StickyHeader != "" && cfg.StickyCookie != "":
		return errors.New("router: set a sticky header or a sticky cookie, not both")
	}
	if err := checkSocketPath(cfg.ControlSocket); err != nil {
		return fmt.Errorf("router: %w", err)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	for _, dir := range []string{filepath.Dir(cfg.StateFile), filepath.Dir(cfg.ControlSocket)} {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return fmt.Errorf("router: %w", err)
		}
	}
	unlock, err := lockFile(cfg.ControlSocket + ".lock")
	if err != nil {
		return fmt.Errorf("router: %w", err)
	}
	defer unlock()

	p := New(Config{Env: cfg.Env, Listen: cfg.Listen, PreviewListen: cfg.PreviewListen,
		StickyHeader: cfg.StickyHeader, StickyCookie: cfg.StickyCookie, Logger: log})
	routes, err := loadState(cfg.StateFile)
	switch {
	case err != nil:
		// Only a damaged disk makes a state file unreadable: it is written
		// atomically. Serving nothing until the control plane sets routes
		// beats not serving at all; the file is kept aside to look at.
		log.Error("cannot load the routing table; starting with none", "env", cfg.Env, "state_file", cfg.StateFile, "error", err)
		_ = os.Rename(cfg.StateFile, cfg.StateFile+".bad")
	case routes != nil:
		if err := p.SetRoutes(ctx, *routes); err != nil {
			log.Error("the saved routing table is invalid; starting with none", "env", cfg.Env, "state_file", cfg.StateFile, "error", err)
			_ = os.Rename(cfg.StateFile, cfg.StateFile+".bad")
		}
	}
	if err := p.Start(ctx); err != nil {
		return fmt.Errorf("router: %w", err)
	}
	shutdownTimeout := cfg.ShutdownTimeout
	if shutdownTimeout <= 0 {
		shutdownTimeout = defaultShutdownTimeout
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
		defer cancel()
		if err := p.Shutdown(sctx); err != nil {
			log.Error("router shutdown", "env", cfg.Env, "error", err)
		}
	}()

	info := ProcessInfo{
		PID: os.Getpid(), Env: cfg.Env, Listen: cfg.Listen, Addr: p.Addr(),
		PreviewListen: cfg.PreviewListen, PreviewAddr: p.PreviewAddr(),
		StickyHeader: cfg.StickyHeader, StickyCookie: cfg.StickyCookie,
		StateFile: cfg.StateFile, StartedAt: time.Now().UTC(),
	}
	// The lock is held, so a socket file left here is a dead router's.
	_ = os.Remove(cfg.ControlSocket)
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "unix", cfg.ControlSocket)
	if err != nil {
		return fmt.Errorf("router: control socket: %w", err)
	}
	defer os.Remove(cfg.ControlSocket)
	if err := os.Chmod(cfg.ControlSocket, 0o600); err != nil {
		ln.Close()
		return fmt.Errorf("router: control socket: %w", err)
	}
	api := &controlAPI{p: p, stateFile: cfg.StateFile, info: info, log: log, unsaved: make(chan struct{}, 1)}
	persistCtx, stopPersist := context.WithCancel(ctx)
	persistDone := make(chan struct{})
	go func() { defer close(persistDone); api.persist(persistCtx) }()
	defer func() { stopPersist(); <-persistDone; api.saveLatest() }() // one last try on the way out
	srv := &http.Server{Handler: api.handler(), ReadHeaderTimeout: 10 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	r := p.Routes()
	log.Info("router started", "env", cfg.Env, "pid", info.PID, "addr", info.Addr, "preview_addr", info.PreviewAddr,
		"control", cfg.ControlSocket, "stable", r.Stable.Version, "canary", r.Canary.Version, "weight", r.Weight)

	select {
	case <-ctx.Done():
	case err := <-served:
		return fmt.Errorf("router: control API: %w", err)
	}
	log.Info("router stopping", "env", cfg.Env, "pid", info.PID)
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	_ = srv.Shutdown(sctx)
	return nil
}

// checkSocketPath reports a socket path longer than the system takes, with
// what to do about it.
func checkSocketPath(path string) error {
	if len(path) > maxSocketPath {
		return fmt.Errorf("control socket path %s is %d bytes, over the %d a unix socket allows; use a shorter data directory",
			path, len(path), maxSocketPath)
	}
	return nil
}

// lockFile takes an exclusive lock on path for as long as the process
// lives, or fails at once if another process holds it. The kernel drops
// the lock when the process dies, however it dies.
func lockFile(path string) (unlock func(), err error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600) //nolint:gosec // a path in the data dir
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		_ = f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("another router process holds %s", path)
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return func() { _ = f.Close() }, nil // a lock file: nothing is written to it
}

// loadState returns the routing table saved in path, or nil when there is
// no file yet.
func loadState(path string) (*rollout.Routes, error) {
	b, err := os.ReadFile(path) //nolint:gosec // a path in the data dir
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var st stateFile
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("parse %s: %w", path, err)
	}
	return &st.Routes, nil
}

// saveState writes the routing table to path atomically: to a temporary
// file in the same directory, synced, renamed over path, and the directory
// synced, so that after a crash path holds either the old table or the new
// one, whole.
func saveState(path string, r rollout.Routes) error {
	b, err := json.MarshalIndent(stateFile{SavedAt: time.Now().UTC(), Routes: r}, "", "  ")
	if err != nil {
		return err
	}
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp) // a no-op once renamed
	if _, err := f.Write(append(b, '\n')); err != nil {
		_ = f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		_ = f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	d, err := os.Open(dir) //nolint:gosec // the state file's directory
	if err != nil {
		return err
	}
	defer func() { _ = d.Close() }() // a directory: its Sync is what counts
	return d.Sync()
}

// controlAPI is the router process's control API.
type controlAPI struct {
	p         *Proxy
	stateFile string
	info      ProcessInfo
	log       *slog.Logger
	putMu     sync.Mutex // keeps the state file's order the order tables are applied in

	// saveMu guards latest, the applied table the state file does not
	// hold yet (nil when it holds the last one).
	saveMu sync.Mutex
	latest *rollout.Routes
	// unsaved wakes persist when a table could not be saved.
	unsaved chan struct{}
}

// Bounds of the retries of a state file save that failed.
const (
	minSaveRetry = 100 * time.Millisecond
	maxSaveRetry = 5 * time.Second
)

// RoutesSavedHeader is set to "false" on the answer to PUT /routes when
// the table is applied but could not be saved yet (a full disk): the
// router retries saving it in the background.
const RoutesSavedHeader = "Shipgate-Routes-Saved"

// saveLatest writes the latest applied table to the state file if it is
// not there yet, and reports whether the file is now up to date.
func (a *controlAPI) saveLatest() bool {
	a.saveMu.Lock()
	defer a.saveMu.Unlock()
	if a.latest == nil {
		return true
	}
	if err := saveState(a.stateFile, *a.latest); err != nil {
		a.log.Error("save routing table; the router serves it and retries saving", "env", a.info.Env, "state_file", a.stateFile, "error", err)
		return false
	}
	a.latest = nil
	return true
}

// persist retries saving the latest table, with a growing delay, each
// time a save failed, until ctx ends.
func (a *controlAPI) persist(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-a.unsaved:
		}
		for delay := minSaveRetry; !a.saveLatest(); delay = min(2*delay, maxSaveRetry) {
			select {
			case <-ctx.Done():
				return
			case <-time.After(delay):
			}
		}
		a.log.Info("routing table saved after a failed save", "env", a.info.Env, "state_file", a.stateFile)
	}
}

func (a *controlAPI) handler() http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(a.p.Collector())
	mux := http.NewServeMux()
	mux.HandleFunc("PUT /routes", a.putRoutes)
	mux.HandleFunc("GET /routes", func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, http.StatusOK, a.p.Routes()) })
	mux.HandleFunc("GET /stats", func(w http.ResponseWriter, r *http.Request) {
		stats, _ := a.p.Stats(r.Context())
		writeJSON(w, http.StatusOK, toWire(stats))
	})
	mux.HandleFunc("GET /window", func(w http.ResponseWriter, r *http.Request) {
		version := r.URL.Query().Get("version")
		since, err := time.Parse(time.RFC3339Nano, r.URL.Query().Get("since"))
		if err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "since: " + err.Error()})
			return
		}
		s, _ := a.p.Window(r.Context(), version, since)
		writeJSON(w, http.StatusOK, toWire(map[string]analysis.Sample{version: s}))
	})
	mux.HandleFunc("GET /flagstats", func(w http.ResponseWriter, r *http.Request) {
		stats, _ := a.p.FlagStats(r.Context())
		out := make(map[string]map[string]wireSample, len(stats))
		for key, variants := range stats {
			out[key] = toWire(variants)
		}
		writeJSON(w, http.StatusOK, out)
	})
	mux.HandleFunc("POST /drain", a.drain)
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, a.p.Health())
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, http.StatusOK, a.info) })
	return mux
}

// putRoutes validates a table, applies it, then saves it. Traffic moves
// first, whatever the disk does: a table that cannot be saved (a full
// disk) is served all the same, the answer says it is not saved yet, and
// the router retries saving it in the background. Until then a restarted
// router would serve the table before; the supervisor sets the last one
// again on a restarted router.
func (a *controlAPI) putRoutes(w http.ResponseWriter, r *http.Request) {
	var routes rollout.Routes
	body := http.MaxBytesReader(w, r.Body, maxRoutesBody)
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&routes); err != nil {
		writeError(w, http.StatusBadRequest, &rollout.FieldError{Field: "routes", Message: "not a routing table: " + err.Error()})
		return
	}
	if err := a.p.validateRoutes(routes); err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	a.putMu.Lock()
	defer a.putMu.Unlock()
	// Not the request's context: once applied, a table must be saved
	// even if the caller hangs up.
	if err := a.p.SetRoutes(context.WithoutCancel(r.Context()), routes); err != nil {
		writeError(w, http.StatusInternalServerError, err)
		return
	}
	a.saveMu.Lock()
	a.latest = &routes
	a.saveMu.Unlock()
	if !a.saveLatest() {
		select {
		case a.unsaved <- struct{}{}:
		default: // persist is already on it
		}
		w.Header().Set(RoutesSavedHeader, "false")
	}
	writeJSON(w, http.StatusOK, a.p.Routes())
}

// controlError is an error answer of the control API.
type controlError struct {
	Error string `json:"error"`
	// Field is set for an invalid table: the field at fault.
	Field string `json:"field,omitempty"`
}

func writeError(w http.ResponseWriter, status int, err error) {
	ce := controlError{Error: err.Error()}
	var fe *rollout.FieldError
	if errors.As(err, &fe) {
		ce = controlError{Error: fe.Message, Field: fe.Field}
	}
	writeJSON(w, status, ce)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// wireSample is an analysis.Sample on the control API: Sample leaves its
// latency histogram out of JSON, and the engine needs it to judge
// latency. Latency holds the counts of the analysis buckets, without the
// trailing empty ones.
type wireSample struct {
	Requests        uint64   `json:"requests"`
	Status5xx       uint64   `json:"status_5xx"`
	TransportErrors uint64   `json:"transport_errors"`
	Latency         []uint64 `json:"latency"`
}

func toWire(stats map[string]analysis.Sample) map[string]wireSample {
	out := make(map[string]wireSample, len(stats))
	for k, s := range stats {
		n := len(s.Latency)
		for n > 0 && s.Latency[n-1] == 0 {
			n--
		}
		out[k] = wireSample{Requests: s.Requests, Status5xx: s.Status5xx, TransportErrors: s.TransportErrors,
			Latency: append([]uint64(nil), s.Latency[:n]...)}
	}
	return out
}

func fromWire(stats map[string]wireSample) (map[string]analysis.Sample, error) {
	out := make(map[string]analysis.Sample, len(stats))
	for k, w := range stats {
		if len(w.Latency) > analysis.NumBuckets {
			return nil, fmt.Errorf("%s: %d latency buckets, want at most %d: is the router another version of shipgate?",
				k, len(w.Latency), analysis.NumBuckets)
		}
		s := analysis.Sample{Requests: w.Requests, Status5xx: w.Status5xx, TransportErrors: w.TransportErrors}
		copy(s.Latency[:], w.Latency)
		out[k] = s
	}
	return out, nil
}

// drain reads what is left of a body, so that its connection can be
// reused.
func drain(r io.Reader) { _, _ = io.Copy(io.Discard, io.LimitReader(r, 64<<10)) }
