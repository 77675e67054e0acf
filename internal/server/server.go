// Package server wires the control plane together: it loads the config,
// opens the store, builds the runtime, the routers and the rollout engine,
// and serves the API. It is the composition root; the CLI's `server`
// command, the demo and the end-to-end tests all use it.
package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"k8s.io/client-go/rest"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/shipgate/shipgate/internal/api"
	"github.com/shipgate/shipgate/internal/auth"
	"github.com/shipgate/shipgate/internal/config"
	"github.com/shipgate/shipgate/internal/dashboard"
	"github.com/shipgate/shipgate/internal/flags"
	"github.com/shipgate/shipgate/internal/ha"
	"github.com/shipgate/shipgate/internal/listener"
	"github.com/shipgate/shipgate/internal/ofrep"
	"github.com/shipgate/shipgate/internal/postgres"
	"github.com/shipgate/shipgate/internal/process"
	"github.com/shipgate/shipgate/internal/proxy"
	"github.com/shipgate/shipgate/internal/report"
	"github.com/shipgate/shipgate/internal/rollout"
	"github.com/shipgate/shipgate/internal/sqlite"
)

// DefaultListen is where the API listens unless told otherwise: loopback
// only, so nothing is exposed by accident.
const DefaultListen = "127.0.0.1:7070"

// TokenFile is the name of the admin token file in the data dir.
const TokenFile = "token"

// APIURLFile is the name of the file in the data dir that holds the URL
// of the API of the server running on it, so that the CLI finds the
// server of a data dir without --server.
const APIURLFile = "api_url"

// Options configure a control plane.
type Options struct {
	// ConfigPath is the path of shipgate.yaml.
	ConfigPath string
	// ConfigPath is a file (one app, or several as YAML documents) or a
	// directory of app files: config.LoadApps reads it, at start and on
	// Reload.
	// KubeConfig, when set, is how environments on Kubernetes reach their
	// cluster, instead of their kubeconfig (tests).
	KubeConfig *rest.Config
	// Config, when set, is used instead of loading ConfigPath.
	Config *config.Config
	// Configs, when set, are the apps to manage instead of Config or
	// ConfigPath's.
	Configs []*config.Config
	// DataDir holds the database, the admin token and instance logs.
	DataDir string
	// Listen is the API address. Default 127.0.0.1:7070.
	Listen string
	// Logger receives the server's logs.
	Logger *slog.Logger
	// Out receives the few lines a person starting the server should read
	// (where the API listens, where the admin token is).
	Out io.Writer
	// Tick overrides how often a bake looks at instance health (tests).
	Tick time.Duration
	// RouterCommand, when set, runs each environment's router as its own
	// process, started with this command and the router flags (for
	// example the shipgate binary and "router"), so that users keep being
	// served while the server is down. Nil runs the routers inside the
	// server.
	RouterCommand []string
	// ReadTimeout bounds how long an API client may take to send a
	// request body. Zero means 30 seconds.
	ReadTimeout time.Duration
	// TLSCert and TLSKey, when both set, are the PEM files of the API's
	// certificate (with its chain) and private key: the API then speaks
	// HTTPS only.
	TLSCert string
	TLSKey  string
	// RetirePoll is how often the route counters are written to the store
	// and a retired route's watch looks at them. Default 10s.
	RetirePoll time.Duration
	// Store names the store: "" (the SQLite file in DataDir),
	// sqlite:PATH, or a postgres:// URL (store.go); StorePasswordFile
	// holds the PostgreSQL password, so that it is not in the URL.
	Store             string
	StorePasswordFile string
	// ServerID names this server among those sharing a PostgreSQL store
	// (the lease holder, shipgate_leader{server=...}). Default
	// hostname:API-port.
	ServerID string
	// PlaneDir is where the data plane of local-process environments
	// lives: router processes' sockets and state, instances' logs.
	// Default DataDir. Servers on one machine sharing a PostgreSQL store
	// share it, so that whichever leads drives the same routers and
	// instances.
	PlaneDir string
	// LeaseTTL is the leader lease's length on PostgreSQL; default
	// ha.DefaultTTL.
	LeaseTTL time.Duration
}

// Limits of the API listener. docs/security.md lists them for users.
const (
	// apiReadHeaderTimeout bounds the reading of a request's headers.
	apiReadHeaderTimeout = 10 * time.Second
	// apiReadTimeout bounds the reading of a request's body, by default.
	apiReadTimeout = 30 * time.Second
	// apiIdleTimeout closes a kept-alive connection without requests.
	apiIdleTimeout = 2 * time.Minute
	// apiMaxConns bounds the connections the API holds open at once.
	apiMaxConns = 1024
	// shutdownGrace is how long Close lets requests in flight finish
	// before it cuts their connections.
	shutdownGrace = 5 * time.Second
)

// ControlPlane is a running control plane.
type ControlPlane struct {
	// Config and Engine are the first app's, Routers its environments'
	// routers: with one app, the app's. Apps holds every app.
	Config  *config.Config
	Engine  *rollout.Engine
	Store   Store
	Runtime *process.Runtime
	// Routers are the builtin routers, by environment.
	Routers map[string]Router
	// APIURL is the base URL of the API, e.g. http://127.0.0.1:7070.
	APIURL string
	// AdminToken is the admin secret (from the data dir's token file).
	AdminToken string
	// Flags serves feature flags: admin routes under /v1/flags, OFREP
	// under /ofrep/ on the API listener.
	Flags *flags.Service
	// Retirements retires routes of the builtin routers (retire.go).
	Retirements *Retirements
	// Apps are the apps managed, each with its engine and routers
	// (apps.go); Reload changes them (reload.go).
	Apps *Apps

	deps       appDeps
	configPath string
	// reloadMu makes reloads one at a time.
	reloadMu sync.Mutex

	stopFlags func()
	// stopNotifier stops the webhook notifier (notify.go); a reload
	// that changes the webhooks restarts it, under notifyMu, with reports.
	stopNotifier func()
	notifyMu     sync.Mutex
	reports      *report.Service

	log  *slog.Logger
	http *http.Server
	done chan error
	lock *dataLock
	// planeLock says, in the plane dir, that this server uses it.
	planeLock *planeLock
	// unlockStore gives up a shared store's server lock; storeLost
	// receives the error when the lock is lost (store.go).
	unlockStore func() error
	storeLost   chan error
	// apiListener is the API's listener until the API serves on it.
	apiListener net.Listener
	// urlFile is the data dir's APIURLFile, once written.
	urlFile string
	// ha is set when several servers share the store (ha.go), and
	// revision is then the store's config revision it runs (configrev.go).
	ha       *haPlane
	revision configRev
}

// Run starts the control plane and serves until ctx is done, then shuts
// down gracefully. App instances and their routes' last state are left
// running so that users are not affected by a server restart.
func Run(ctx context.Context, opts Options) error {
	cp, err := Start(ctx, opts)
	if err != nil {
		return err
	}
	// SIGHUP reloads the config from opts.ConfigPath (reload.go).
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for done := false; !done; {
		select {
		case <-ctx.Done():
			done = true
		case err := <-cp.done:
			if err != nil {
				_ = cp.Close(context.Background())
				return fmt.Errorf("serve API: %w", err)
			}
			done = true
		case <-hup:
			res, err := cp.Reload(ctx, "signal:SIGHUP", "SIGHUP")
			if err != nil {
				cp.log.Error("config reload refused; nothing changed", "path", opts.ConfigPath, "error", err)
				continue
			}
			cp.log.Info("config reloaded", "path", opts.ConfigPath, "apps", res.Apps, "added", res.Added, "removed", res.Removed, "changed", res.Changed)
		case err := <-cp.storeLost:
			_ = cp.Close(context.Background())
			return err
		}
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return cp.Close(shutdown)
}

// Start builds and starts a control plane; Close stops it.
func Start(ctx context.Context, opts Options) (cp *ControlPlane, err error) {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	out := opts.Out
	if out == nil {
		out = io.Discard
	}
	cfgs := opts.Configs
	var files []config.File // the app files read, when read from ConfigPath
	switch {
	case len(cfgs) > 0:
	case opts.Config != nil:
		cfgs = []*config.Config{opts.Config}
	default:
		if files, err = readAppFiles(opts.ConfigPath); err != nil {
			return nil, err
		}
		if cfgs, err = config.ParseFiles(files); err != nil {
			return nil, err
		}
	}
	cfg := cfgs[0]
	if opts.DataDir == "" {
		return nil, errors.New("a data dir is required")
	}
	if err := os.MkdirAll(opts.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("create data dir: %w", err)
	}
	listen := opts.Listen
	if listen == "" {
		listen = DefaultListen
	}

	lock, err := lockDataDir(opts.DataDir)
	if err != nil {
		return nil, err
	}
	// plane, not the named result, is what a failed start cleans up: a
	// "return nil, err" sets cp to nil before deferred calls run.
	plane := &ControlPlane{Config: cfg, Routers: map[string]Router{}, log: log, done: make(chan error, 1), storeLost: make(chan error, 1), lock: lock}
	cp = plane
	defer func() {
		if err != nil {
			plane.abandon(context.WithoutCancel(ctx))
		}
	}()
	var tlsConfig *tls.Config
	switch {
	case opts.TLSCert != "" && opts.TLSKey != "":
		cert, err := tls.LoadX509KeyPair(opts.TLSCert, opts.TLSKey)
		if err != nil {
			return nil, fmt.Errorf("load the API's TLS certificate %s and key %s: %w", opts.TLSCert, opts.TLSKey, err)
		}
		tlsConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	case opts.TLSCert != "" || opts.TLSKey != "":
		return nil, errors.New("TLS needs both a certificate and a key (--tls-cert and --tls-key)")
	}
	// The API's address first: when it is taken, nothing else starts.
	ln, err := listener.Listen(ctx, "the API", listen)
	if err != nil {
		return nil, err
	}
	plane.apiListener = ln
	spec := StoreSpec{URL: opts.Store, PasswordFile: opts.StorePasswordFile, DataDir: opts.DataDir}
	if err := cp.openStore(ctx, spec); err != nil {
		return nil, err
	}
	cp.configPath = opts.ConfigPath
	if pg, ok := cp.Store.(*postgres.Store); ok {
		// Every server on the store runs the store's config revision
		// (configrev.go).
		if cfgs, err = cp.storeConfig(ctx, pg, files, cfgs, serverID(opts, ln.Addr().String()), func(f string, a ...any) { fmt.Fprintf(out, f, a...) }); err != nil {
			return nil, err
		}
		cfg = cfgs[0]
		cp.Config = cfg
	}
	if cp.AdminToken, err = adminToken(ctx, cp.Store, filepath.Join(opts.DataDir, TokenFile), adminTokenName(spec)); err != nil {
		return nil, err
	}
	if opts.PlaneDir == "" {
		opts.PlaneDir = opts.DataDir
	}
	if plane.planeLock, err = lockPlaneDir(opts.PlaneDir, opts.DataDir, ln.Addr().String()); err != nil {
		return nil, err
	}
	cp.Runtime = process.New(process.Config{DataDir: opts.PlaneDir, Logger: log.With("component", "runtime")})

	digestKey, err := cp.Store.Secret(ctx, sqlite.SecretDigestKey)
	if err != nil {
		return nil, err
	}
	cp.deps = appDeps{opts: opts, store: cp.Store, runtime: cp.Runtime, digestKey: digestKey, log: log}
	cp.Apps = newApps(cp.Store)
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), cp.Apps)
	planes := make([]*appPlane, 0, len(cfgs))
	for _, c := range cfgs {
		p, err := cp.deps.startApp(ctx, c, cfgs, nil, nil)
		if err != nil {
			for _, started := range planes {
				started.stopStarted(context.WithoutCancel(ctx), log)
			}
			return nil, err
		}
		planes = append(planes, p)
	}
	cp.Apps.set(planes)
	cp.Engine, cp.Routers = planes[0].engine, planes[0].routers
	var svc api.Service = cp.Apps
	if pg, ok := cp.Store.(*postgres.Store); ok {
		// Several servers share the store: every app's engine runs while
		// this one leads, and commands go through the store.
		cp.ha = newHAPlane(opts, ln.Addr().String(), pg, cp, log.With("component", "ha"))
		reg.MustRegister(cp.ha.elector.Collector())
		reg.MustRegister(cp.revision.collectors()...)
		svc = haService{Service: cp.ha.commands.Service(haStatus{Service: cp.Apps, e: cp.ha.elector, rev: &cp.revision}), apps: cp.Apps}
	} else {
		for _, p := range planes {
			if err := p.engine.Start(ctx); err != nil {
				return nil, fmt.Errorf("start engine of %s: %w", p.cfg.App, err)
			}
		}
	}
	tests := appTests{apps: cp.Apps, store: cp.Store} // every app, by its own test levels

	// Every app's production router's per-flag counters (or its only
	// router's), summed: flags are the server's.
	var flagStats flags.FlagStatsSource
	if s := (appsFlagStats{apps: cp.Apps}); s.measured() {
		flagStats = s
	}
	// On a shared store, guarded flag rollouts are driven by the leader
	// only (haPlane.lead); a single server drives them from the start.
	if cp.Flags, err = flags.NewService(ctx, flags.Options{Store: cp.Store, Stats: flagStats, Passive: cp.ha != nil}); err != nil {
		return nil, fmt.Errorf("start flags: %w", err)
	}
	flagsCtx, endFlags := context.WithCancel(context.WithoutCancel(ctx))
	if cp.ha == nil {
		// Every guarded flag rollout a killed server left goes on at its
		// step, with the time it had left.
		if err := cp.Flags.Drive(flagsCtx); err != nil {
			endFlags()
			return nil, fmt.Errorf("resume guarded flag rollouts: %w", err)
		}
	}
	flagsDone := make(chan error, 1)
	go func() { flagsDone <- cp.Flags.Run(flagsCtx, 10*time.Second) }()
	cp.stopFlags = func() { endFlags(); <-flagsDone; cp.Flags.Close() }

	cp.Retirements = newRetirements(cp.Apps, cp.Store, cp.Flags, opts.DataDir, opts.RetirePoll, log.With("component", "retire"))
	if cp.ha != nil {
		// The watches and the route counters run on the leader only, so
		// that a retirement moves on once and the shared router's
		// counts are added once.
		cp.ha.retire = cp.Retirements
	} else if err := cp.Retirements.start(ctx); err != nil {
		return nil, fmt.Errorf("start retirements: %w", err)
	}
	cp.APIURL = "http://" + ln.Addr().String()
	if tlsConfig != nil {
		cp.APIURL = "https://" + ln.Addr().String()
	}
	reports := &report.Service{Store: cp.Store, Calendar: calendarOf(cfg), Flags: cp.Flags, Tests: cp.Store}
	cp.reports = reports
	if cp.ha != nil {
		// Webhooks go out from the leader only, so that each is sent once.
		// It is started on the apps' config of the moment (a reload may
		// have changed it).
		cp.ha.notifier = func(ctx context.Context) (func(), error) {
			var now []*config.Config
			for _, p := range cp.Apps.planes() {
				now = append(now, p.cfg)
			}
			return startNotifier(ctx, now, cp.Store, reports, log.With("component", "notify"))
		}
	} else if cp.stopNotifier, err = startNotifier(ctx, cfgs, cp.Store, reports, log.With("component", "notify")); err != nil {
		return nil, fmt.Errorf("start notifications: %w", err)
	}
	handler := api.NewHandler(svc, cp.Store, api.HandlerOptions{
		Logger:  log.With("component", "api"),
		Metrics: promhttp.HandlerFor(reg, promhttp.HandlerOpts{}),
		App:     cfg.App,
		Flags:   cp.Flags, FlagKeys: cp.Store, Tokens: cp.Store, AuditChain: cp.Store,
		DORA: reports, Incidents: cp.Store, Notifications: cp.Store, Done: flagsCtx.Done(), Tests: tests, Retire: retireAPI{cp.Retirements},
		Config: configService{cp}, Kubernetes: kubeService{cp},
	})
	dash, err := dashboard.New(dashboard.Options{App: cfg.App, Apps: cp.Apps.AppNames, Service: svc, Tokens: cp.Store, Chain: cp.Store,
		Reports: reports, Flags: cp.Flags, Logger: log.With("component", "dashboard"), Done: flagsCtx.Done()})
	if err != nil {
		return nil, fmt.Errorf("start dashboard: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("/ofrep/", ofrep.NewHandler(cp.Flags, cp.Store, ofrep.Options{Logger: log.With("component", "ofrep"), Done: flagsCtx.Done()}))
	mux.Handle(dashboard.Prefix, dash)
	// A request sent again with its Idempotency-Key gets the first one's
	// answer (api.Idempotency): from this server's memory, or on a
	// PostgreSQL store from the store, whichever server it reaches; there
	// the rollout commands also keep their key (ha.IdempotencyKeys).
	var keys api.KeyStore
	if pg, ok := cp.Store.(*postgres.Store); ok {
		keys = newPGKeys(pg, opts.ServerID)
	}
	mux.Handle("/", api.NewIdempotency(keys).Wrap(ha.IdempotencyKeys(handler)))
	readTimeout := opts.ReadTimeout
	if readTimeout <= 0 {
		readTimeout = apiReadTimeout
	}
	cp.http = &http.Server{Handler: bodyDeadline(mux, readTimeout), ReadHeaderTimeout: apiReadHeaderTimeout, IdleTimeout: apiIdleTimeout}
	cp.http.RegisterOnShutdown(endFlags) // ends the OFREP change streams
	cp.apiListener = nil                 // Serve owns it now
	go func() {
		ln := listener.Limit(ln, apiMaxConns)
		if tlsConfig != nil {
			ln = tls.NewListener(ln, tlsConfig)
		}
		err := cp.http.Serve(ln)
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		}
		cp.done <- err
	}()
	if cp.ha != nil {
		cp.ha.start(ctx, cp.Flags)
	}
	cp.urlFile = filepath.Join(opts.DataDir, APIURLFile)
	if err := os.WriteFile(cp.urlFile, []byte(cp.APIURL+"\n"), 0o600); err != nil {
		log.Warn("cannot write the API URL for the CLI", "path", cp.urlFile, "error", err)
	}
	names := cp.Apps.AppNames()
	log.Info("control plane started", "api", cp.APIURL, "apps", names, "data", opts.DataDir)
	fmt.Fprintf(out, "shipgate: API on %s, managing %s\n", cp.APIURL, strings.Join(names, ", "))
	for _, p := range planes {
		for _, name := range sortedEnvs(p.cfg) {
			if p.routers[name] == nil {
				k := p.cfg.Environments[name].Kubernetes
				fmt.Fprintf(out, "shipgate: %s %s on Kubernetes, namespace %s\n", p.cfg.App, name, k.Namespace)
				continue
			}
			if len(planes) > 1 {
				fmt.Fprintf(out, "shipgate: %s %s router on http://%s\n", p.cfg.App, name, p.routers[name].Addr())
			} else {
				fmt.Fprintf(out, "shipgate: %s router on http://%s\n", name, p.routers[name].Addr())
			}
		}
	}
	if cp.AdminToken == "" {
		fmt.Fprintf(out, "shipgate: the admin token in %s was revoked; use another admin token\n", filepath.Join(opts.DataDir, TokenFile))
		log.Warn("the admin token file holds a revoked token", "path", filepath.Join(opts.DataDir, TokenFile))
	} else {
		fmt.Fprintf(out, "shipgate: admin token in %s\n", filepath.Join(opts.DataDir, TokenFile))
	}
	return cp, nil
}

// Close stops the API, the rollout drivers, the routers and the runtime's
// supervision. Instances keep running; Start adopts them again.
func (cp *ControlPlane) Close(ctx context.Context) error {
	var errs []error
	if cp.http != nil {
		// Requests in flight get a short grace, then their connections
		// are cut: a client sending its body slowly must not hold the
		// server up.
		grace, cancel := context.WithTimeout(ctx, shutdownGrace)
		if err := cp.http.Shutdown(grace); err != nil {
			cp.log.Warn("requests still in flight after the shutdown grace; closing their connections", "grace", shutdownGrace, "error", err)
			errs = append(errs, cp.http.Close())
		}
		cancel()
	}
	if cp.ha != nil {
		cp.ha.stop() // stops leading (the engine with it) and resigns
	}
	var planes []*appPlane
	if cp.Apps != nil {
		planes = cp.Apps.planes()
	}
	for _, p := range planes {
		p.engine.Close()
	}
	if cp.Retirements != nil {
		cp.Retirements.close() // writes the route counters; before the flags its watches use
	}
	if cp.stopFlags != nil {
		cp.stopFlags() // flushes the evaluation counts
	}
	cp.notifyMu.Lock()
	stopNotifier := cp.stopNotifier
	cp.stopNotifier = nil
	cp.notifyMu.Unlock()
	if stopNotifier != nil {
		stopNotifier()
	}
	for _, p := range planes {
		errs = append(errs, closeApp(ctx, p))
	}
	if cp.Runtime != nil {
		cp.Runtime.Close()
	}
	if cp.unlockStore != nil {
		errs = append(errs, cp.unlockStore())
	}
	if cp.Store != nil {
		errs = append(errs, cp.Store.Close())
	}
	if cp.urlFile != "" {
		_ = os.Remove(cp.urlFile) // the CLI then falls back to its default
	}
	errs = append(errs, cp.planeLock.release())
	errs = append(errs, cp.lock.release())
	return errors.Join(errs...)
}

// bodyDeadline gives a request with a body d to send it whole: a client
// that sends its body slowly, or never, loses its connection instead of
// holding it. The deadline is lifted once the body is read, so that a
// handler that takes long (a deploy waiting for room) is not cut; a
// request without a body (an event stream) has none.
func bodyDeadline(h http.Handler, d time.Duration) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body != nil && r.Body != http.NoBody {
			rc := http.NewResponseController(w)
			if err := rc.SetReadDeadline(time.Now().Add(d)); err == nil {
				r.Body = &deadlineBody{ReadCloser: r.Body, lift: func() { _ = rc.SetReadDeadline(time.Time{}) }}
			}
		}
		h.ServeHTTP(w, r)
	})
}

// deadlineBody lifts its read deadline once it is read to the end. On
// another error the deadline stays: the server then gives up on the rest
// of the body and closes the connection instead of waiting for it.
type deadlineBody struct {
	io.ReadCloser
	lift func()
	once sync.Once
}

func (b *deadlineBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if errors.Is(err, io.EOF) {
		b.once.Do(b.lift)
	}
	return n, err
}

// IsLoopback reports whether the listen address host:port only accepts
// connections from this machine. An empty host, 0.0.0.0 and :: listen on
// every interface.
func IsLoopback(listen string) bool {
	host, _, err := net.SplitHostPort(listen)
	if err != nil || host == "" {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// abandon undoes a failed Start: it closes what Start opened, and stops
// the router processes Start itself started (a router that was already
// serving users is left serving them), so that nothing is left running.
func (cp *ControlPlane) abandon(ctx context.Context) {
	if cp.apiListener != nil {
		_ = cp.apiListener.Close()
	}
	if cp.Apps != nil {
		for _, p := range cp.Apps.planes() {
			for name, r := range p.routers {
				if c, ok := r.(*proxy.Client); ok && c.Started() {
					if err := c.StopProcess(ctx); err != nil {
						cp.log.Error("stop the router process of a failed start", "app", p.cfg.App, "env", name, "error", err)
					}
				}
			}
		}
	}
	_ = cp.Close(ctx)
}

// StopInstances stops every instance the store knows of: the stable ones
// and those of active rollouts. The demo and tests use it to leave nothing
// behind; a server never does it on its own.
func (cp *ControlPlane) StopInstances(ctx context.Context) error {
	var insts []rollout.Instance
	for _, p := range cp.Apps.planes() {
		for name := range p.cfg.Environments {
			st, err := cp.Store.GetEnvState(ctx, p.cfg.App, name)
			if err == nil {
				insts = append(insts, st.Instances...)
			}
		}
	}
	active, err := cp.Store.ActiveRollouts(ctx)
	if err != nil {
		return err
	}
	for _, r := range active {
		insts = append(insts, r.New...)
		insts = append(insts, r.Old...)
	}
	if listed, err := cp.Runtime.List(ctx); err == nil {
		insts = append(insts, listed...)
	}
	seen := map[string]bool{}
	unique := insts[:0]
	for _, inst := range insts {
		if !seen[inst.ID] {
			seen[inst.ID] = true
			unique = append(unique, inst)
		}
	}
	return cp.Runtime.Stop(ctx, unique)
}

// adminToken returns the admin secret kept in path, creating it (0600) and
// registering its hash in the store on first start.
func adminToken(ctx context.Context, st Store, path, name string) (string, error) {
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		secret := strings.TrimSpace(string(b))
		if _, err := st.TokenByHash(ctx, auth.Hash(secret)); err == nil {
			return secret, nil
		} else if !errors.Is(err, rollout.ErrNotFound) {
			return "", fmt.Errorf("look up admin token: %w", err)
		}
		// The token file names a secret the store does not know. With an
		// empty store (a new database beside an old data dir) it is
		// registered again; otherwise it was revoked, and stays revoked.
		if tokens, err := st.ListTokens(ctx); err != nil {
			return "", fmt.Errorf("list tokens: %w", err)
		} else if len(tokens) > 0 {
			return "", nil
		}
		_ = st.DeleteToken(ctx, name)
		if err := st.CreateToken(ctx, auth.Token{Name: name, Role: auth.RoleAdmin, CreatedAt: time.Now().UTC()}, auth.Hash(secret)); err != nil {
			return "", fmt.Errorf("register admin token: %w", err)
		}
		return secret, nil
	case !errors.Is(err, os.ErrNotExist):
		return "", fmt.Errorf("read admin token: %w", err)
	}
	secret, err := auth.NewSecret()
	if err != nil {
		return "", err
	}
	_ = st.DeleteToken(ctx, name)
	if err := st.CreateToken(ctx, auth.Token{Name: name, Role: auth.RoleAdmin, CreatedAt: time.Now().UTC()}, auth.Hash(secret)); err != nil {
		return "", fmt.Errorf("register admin token: %w", err)
	}
	if err := os.WriteFile(path, []byte(secret+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("write admin token: %w", err)
	}
	return secret, nil
}
