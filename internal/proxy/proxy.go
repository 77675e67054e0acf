// Package proxy is Shipgate's builtin router: an HTTP reverse proxy that
// splits one environment's traffic between its stable and canary releases
// and counts every request per version, so that the rollout engine can judge
// the canary from what users really saw.
//
// The routing table is immutable and swapped atomically, so a weight change
// never drops or reroutes a request already in flight. The hot path takes no
// lock: it loads the table, picks a backend and adds to per-version atomic
// counters that Stats and the Prometheus collector read.
//
// The proxy runs inside the control plane, or as a process of its own
// (RunProcess) that keeps serving users when the control plane is down; the
// control plane reaches that process through Client and keeps it alive
// with EnsureProcess. docs/router.md describes both for users.
package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/textproto"
	"sync"
	"sync/atomic"
	"time"

	"github.com/shipgate/shipgate/internal/listener"
)

// Config configures a Proxy.
type Config struct {
	// Env is the name of the environment whose traffic the proxy routes. It
	// labels the proxy's metrics and log lines.
	Env string
	// Listen is the TCP address the proxy serves on, for example ":8080" or
	// "127.0.0.1:0" to let the system pick a free port.
	Listen string
	// PreviewListen is an optional second TCP address that sends every
	// request to the routes' Preview release, whatever the user: smoke
	// checks and people trying a release before users see it go there. It
	// answers 503 while there is no preview release. Its requests are not
	// counted in Stats or FlagStats, which measure users; the metrics count
	// them apart. Empty means no preview listener.
	PreviewListen string
	// StickyHeader is the name of a request header that holds a user key,
	// for example "X-User-Id". Requests with the same key always reach the
	// same version for a given rollout. Empty means no header is read.
	StickyHeader string
	// StickyCookie is the name of a cookie that holds a user key; it is read
	// when the request has no StickyHeader. Empty means no cookie is read.
	StickyCookie string
	// Now tells the time of the marks windows start at (Window); nil is
	// time.Now. Tests that run the engine on virtual time pass its clock.
	Now func() time.Time
	// ResponseTimeout bounds how long the proxy waits for a backend's
	// response headers before it answers 504 Gateway Timeout. Zero means 30
	// seconds.
	ResponseTimeout time.Duration
	// ReadTimeout bounds how long a client may take to send one request,
	// headers and body, so that a client that sends its body slowly, or
	// never, cannot hold a connection (and a file descriptor) forever.
	// Requests that upgrade the connection (websockets) are exempt once
	// upgraded. Zero means 60 seconds.
	ReadTimeout time.Duration
	// MaxConns bounds the client connections held open at once on each
	// listener; the ones beyond wait in the kernel's backlog. Zero means
	// 4096.
	MaxConns int
	// Logger receives the proxy's log lines. Nil means slog.Default().
	Logger *slog.Logger
}

// Defaults for Config and the transport to the backends.
const (
	defaultResponseTimeout = 30 * time.Second
	// defaultReadTimeout bounds the reading of one request from a client.
	defaultReadTimeout = 60 * time.Second
	// readHeaderTimeout bounds the reading of a request's headers.
	readHeaderTimeout = 10 * time.Second
	// idleTimeout closes a kept-alive client connection without requests.
	idleTimeout = 2 * time.Minute
	// defaultMaxConns bounds the client connections of one listener.
	defaultMaxConns = 4096
	dialTimeout     = 5 * time.Second
	// maxIdlePerBackend keeps enough warm connections to one backend
	// for a few hundred concurrent requests without redialling.
	maxIdlePerBackend = 256
	// versionHeader tells clients, tests and logs which version answered.
	versionHeader = "X-Shipgate-Version"
	// statusClientClosed is what nginx calls 499: the client went away
	// before the backend answered. Nobody reads it, but it keeps the
	// request out of the 5xx and transport error counts.
	statusClientClosed = 499
)

// Bodies of the 503 answers when there is nothing to send a request to.
const (
	noReleaseBody = "no release is live\n"
	noPreviewBody = "no preview release\n"
)

// Proxy routes one environment's HTTP traffic between its stable and canary
// releases. Its zero value is not usable; call New.
type Proxy struct {
	env           string
	listen        string
	previewListen string
	readTimeout   time.Duration
	maxConns      int
	stickyHeader  string // canonical form, so the hot path can index Header
	stickyCookie  string
	logger        *slog.Logger
	stdLog        *log.Logger // for http.Server and ReverseProxy, which want a *log.Logger
	transport     *http.Transport
	bufPool       *bufferPool
	errLog        *errorLog

	table atomic.Pointer[table]
	// now and marks answer windows (window.go).
	now   func() time.Time
	marks marks
	// paths counts traffic per path prefix and answers retired ones
	// (paths.go).
	paths pathRegistry
	// inflight holds, by address, the number of requests on their way to
	// it (*atomic.Int64).
	inflight sync.Map
	stats    *statsRegistry
	flags    *flagRegistry
	// noRelease counts the requests answered 503 because no version was
	// live. They belong to no version, so Stats leaves them out; the
	// metrics show them under version "none".
	noRelease versionStats
	// previewStats and previewNone count the preview listener's requests,
	// apart from the users'.
	previewStats *statsRegistry
	previewNone  versionStats

	// routesMu serializes SetRoutes and the health checker's changes, so
	// that two table builds do not interleave; it guards addrs, allFailing
	// and the fields of every addrState but ejected.
	routesMu   sync.Mutex
	addrs      map[string]*addrState // health of every address in the table
	allFailing map[string]bool       // backend sets whose every address fails, to log changes once
	// routesChanged wakes the health checker when the table changes.
	routesChanged chan struct{}
	healthClient  *http.Client

	mu         sync.Mutex // guards the fields below across Start and Shutdown
	srv        *http.Server
	ln         net.Listener
	previewSrv *http.Server // nil without PreviewListen
	previewLn  net.Listener
	stopHealth context.CancelFunc
	done       chan struct{} // closed when the serving and checking goroutines return
}

// New returns a proxy with an empty routing table: until SetRoutes is
// called it answers every request with 503. It does not listen yet; call
// Start.
func New(cfg Config) *Proxy {
	logger := cfg.Logger
	if logger == nil {
		logger = slog.Default()
	}
	timeout := cfg.ResponseTimeout
	if timeout <= 0 {
		timeout = defaultResponseTimeout
	}
	header := ""
	if cfg.StickyHeader != "" {
		header = textproto.CanonicalMIMEHeaderKey(cfg.StickyHeader)
	}
	readTimeout := cfg.ReadTimeout
	if readTimeout <= 0 {
		readTimeout = defaultReadTimeout
	}
	maxConns := cfg.MaxConns
	if maxConns <= 0 {
		maxConns = defaultMaxConns
	}
	p := &Proxy{
		env:           cfg.Env,
		readTimeout:   readTimeout,
		maxConns:      maxConns,
		listen:        cfg.Listen,
		previewListen: cfg.PreviewListen,
		stickyHeader:  header,
		stickyCookie:  cfg.StickyCookie,
		logger:        logger,
		stdLog:        slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
		transport:     newTransport(timeout),
		bufPool:       newBufferPool(),
		stats:         newStatsRegistry(),
		flags:         newFlagRegistry(),
		previewStats:  newStatsRegistry(),
		addrs:         map[string]*addrState{},
		allFailing:    map[string]bool{},
		routesChanged: make(chan struct{}, 1),
		healthClient:  newHealthClient(),
		now:           cfg.Now,
	}
	if p.now == nil {
		p.now = time.Now
	}
	p.errLog = &errorLog{logger: logger, env: cfg.Env}
	p.table.Store(&table{})
	p.mark() // windows that start before the proxy count from here
	return p
}

// newTransport returns the transport to the backends. It keeps connections
// alive with room for a burst per backend, never uses an environment proxy
// (backends are local addresses), and passes compressed bodies through as
// they are instead of decompressing them on the way.
func newTransport(responseTimeout time.Duration) *http.Transport {
	dialer := &net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second}
	return &http.Transport{
		Proxy:                 nil,
		DialContext:           dialer.DialContext,
		MaxIdleConns:          4 * maxIdlePerBackend,
		MaxIdleConnsPerHost:   maxIdlePerBackend,
		IdleConnTimeout:       90 * time.Second,
		ResponseHeaderTimeout: responseTimeout,
		ExpectContinueTimeout: time.Second,
		DisableCompression:    true,
	}
}

// Start binds the listeners and serves in the background until Shutdown,
// checking the backends' health when the routes ask for it. It returns
// once the listeners accept connections; ctx bounds only the binds.
func (p *Proxy) Start(ctx context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.srv != nil {
		return errors.New("start proxy: already started")
	}
	ln, err := listener.Listen(ctx, "the "+p.env+" router", p.listen)
	if err != nil {
		return fmt.Errorf("start proxy: %w", err)
	}
	var previewLn net.Listener
	if p.previewListen != "" {
		if previewLn, err = listener.Listen(ctx, "the "+p.env+" router's preview", p.previewListen); err != nil {
			ln.Close()
			return fmt.Errorf("start proxy: %w", err)
		}
	}
	ln = listener.Limit(ln, p.maxConns)
	if previewLn != nil {
		previewLn = listener.Limit(previewLn, p.maxConns)
	}
	p.srv, p.ln = p.newServer(p), ln
	var wg sync.WaitGroup
	wg.Go(func() { p.serve(p.srv, ln) })
	if previewLn != nil {
		p.previewSrv, p.previewLn = p.newServer(http.HandlerFunc(p.servePreview)), previewLn
		wg.Go(func() { p.serve(p.previewSrv, previewLn) })
	}
	healthCtx, stopHealth := context.WithCancel(context.WithoutCancel(ctx))
	p.stopHealth = stopHealth
	wg.Go(func() { p.runHealthChecks(healthCtx) })
	done := make(chan struct{})
	p.done = done
	go func() {
		wg.Wait()
		close(done)
	}()
	if previewLn != nil {
		p.logger.Info("proxy listening", "env", p.env, "addr", ln.Addr().String(), "preview_addr", previewLn.Addr().String())
	} else {
		p.logger.Info("proxy listening", "env", p.env, "addr", ln.Addr().String())
	}
	return nil
}

func (p *Proxy) newServer(h http.Handler) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       p.readTimeout,
		IdleTimeout:       idleTimeout,
		ErrorLog:          p.stdLog,
	}
}

func (p *Proxy) serve(srv *http.Server, ln net.Listener) {
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		p.logger.Error("proxy stopped serving", "env", p.env, "addr", ln.Addr().String(), "error", err)
	}
}

// Addr returns the address the proxy listens on, or "" before Start.
func (p *Proxy) Addr() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln == nil {
		return ""
	}
	return p.ln.Addr().String()
}

// PreviewAddr returns the address the preview listener listens on, or ""
// before Start or without PreviewListen.
func (p *Proxy) PreviewAddr() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.previewLn == nil {
		return ""
	}
	return p.previewLn.Addr().String()
}

// Shutdown stops accepting connections and the health checks, and waits,
// until ctx ends, for the requests in flight to finish. Shutting down a
// proxy that never started is a no-op.
func (p *Proxy) Shutdown(ctx context.Context) error {
	p.mu.Lock()
	srv, previewSrv, stopHealth, done := p.srv, p.previewSrv, p.stopHealth, p.done
	p.mu.Unlock()
	if srv == nil {
		return nil
	}
	stopHealth()
	// One after the other is as quick as both at once: the requests in
	// flight on the second listener go on while the first one waits.
	var errs []error
	for _, s := range []*http.Server{srv, previewSrv} {
		if s != nil {
			errs = append(errs, s.Shutdown(ctx))
		}
	}
	p.transport.CloseIdleConnections()
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("shutdown proxy: %w", err)
	}
	select {
	case <-done:
	case <-ctx.Done():
		return fmt.Errorf("shutdown proxy: %w", ctx.Err())
	}
	p.logger.Info("proxy stopped", "env", p.env)
	return nil
}

// ServeHTTP routes one request to the version its user belongs to and
// records the outcome for that version. The proxy serves through it after
// Start; it can also be mounted in another server without Start.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	exemptUpgrade(w, r)
	if p.paths.serve(w, r) {
		return
	}
	b := p.table.Load().pick(r, p.stickyHeader, p.stickyCookie)
	if b == nil {
		unavailable(w, noReleaseBody)
		p.noRelease.record(outcome5xx, time.Since(start))
		return
	}
	p.forward(w, r, b, start, true)
}

// servePreview sends a request to the preview release.
func (p *Proxy) servePreview(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	exemptUpgrade(w, r)
	b := p.table.Load().preview
	if b == nil {
		unavailable(w, noPreviewBody)
		p.previewNone.record(outcome5xx, time.Since(start))
		return
	}
	p.forward(w, r, b, start, false)
}

// exemptUpgrade lifts the read deadline of a request that asks to upgrade
// its connection (a websocket): once upgraded, the connection carries a
// stream for as long as both ends keep it, not one request.
func exemptUpgrade(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Upgrade") != "" {
		_ = http.NewResponseController(w).SetReadDeadline(time.Time{})
	}
}

func unavailable(w http.ResponseWriter, body string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(http.StatusServiceUnavailable)
	_, _ = io.WriteString(w, body)
}

// forward sends a request to the next address of b and records its
// outcome under b's version and, when countFlags is set, under the flag
// variants its response reports.
func (p *Proxy) forward(w http.ResponseWriter, r *http.Request, b *backendSet, start time.Time, countFlags bool) {
	rec := &recorder{ResponseWriter: w}
	t := b.next()
	t.inflight.Add(1)
	defer func() {
		t.inflight.Add(-1)
		v := recover()
		if v != nil && r.Context().Err() == nil {
			// ReverseProxy aborts with http.ErrAbortHandler when the
			// body breaks off. With the client still there, it was the
			// backend that broke it: the user got a truncated response,
			// which is a transport failure.
			rec.transportErr = true
		}
		o, d := rec.outcome(), time.Since(start)
		b.stats.record(o, d)
		if countFlags {
			p.flags.record(rec.Header(), o, d)
		}
		if v != nil {
			panic(v)
		}
	}()
	t.proxy.ServeHTTP(rec, r)
}

// handleError answers a request whose backend never answered: 504 when
// the wait timed out, 502 otherwise. The request is not sent anywhere else:
// it may have reached the backend, and only the caller knows whether it is
// safe to send again.
func (p *Proxy) handleError(w http.ResponseWriter, r *http.Request, version string, err error) {
	rec, _ := w.(*recorder)
	if r.Context().Err() != nil && errors.Is(err, context.Canceled) {
		// The client went away; the backend is not at fault.
		w.WriteHeader(statusClientClosed)
		return
	}
	if rec != nil {
		rec.transportErr = true
	}
	status := http.StatusBadGateway
	if isTimeout(err) {
		status = http.StatusGatewayTimeout
	}
	p.errLog.log(version, r.URL.Host, err)
	w.WriteHeader(status)
}

func isTimeout(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// errorLog logs backend failures at most once a second per version, so a
// dead backend under load does not flood the log; the counters have the
// exact numbers.
type errorLog struct {
	logger *slog.Logger
	env    string
	mu     sync.Mutex
	last   map[string]time.Time
	quiet  map[string]int
}

func (l *errorLog) log(version, backend string, err error) {
	now := time.Now()
	l.mu.Lock()
	if l.last == nil {
		l.last, l.quiet = map[string]time.Time{}, map[string]int{}
	}
	if now.Sub(l.last[version]) < time.Second {
		l.quiet[version]++
		l.mu.Unlock()
		return
	}
	suppressed := l.quiet[version]
	l.last[version], l.quiet[version] = now, 0
	l.mu.Unlock()
	l.logger.Warn("backend failed", "env", l.env, "version", version, "backend", backend,
		"error", err, "suppressed", suppressed)
}

// recorder remembers the status a response was sent with and whether the
// proxy answered for a failed backend.
type recorder struct {
	http.ResponseWriter
	status       int
	transportErr bool
}

func (r *recorder) WriteHeader(code int) {
	// 1xx responses are informational; the final status comes later.
	if r.status == 0 && code >= 200 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach Flush and Hijack on the
// underlying writer, which ReverseProxy needs for streams and upgrades.
func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

func (r *recorder) outcome() outcome {
	if r.transportErr {
		return outcomeTransportError
	}
	status := r.status
	if status == 0 {
		status = http.StatusOK
	}
	return outcomeFor(status)
}

// bufferPool recycles ReverseProxy's copy buffers; without one it
// allocates 32 KiB per request.
type bufferPool struct{ pool sync.Pool }

const copyBufferSize = 32 << 10

var _ httputil.BufferPool = (*bufferPool)(nil)

func newBufferPool() *bufferPool {
	return &bufferPool{pool: sync.Pool{New: func() any {
		b := make([]byte, copyBufferSize)
		return &b
	}}}
}

func (bp *bufferPool) Get() []byte { return *bp.pool.Get().(*[]byte) }

func (bp *bufferPool) Put(b []byte) {
	if cap(b) != copyBufferSize {
		return
	}
	b = b[:copyBufferSize]
	bp.pool.Put(&b)
}
