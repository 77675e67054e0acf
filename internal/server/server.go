// Package server wires the control plane together: it loads the config,
// opens the store, builds the runtime, the routers and the rollout engine,
// and serves the API. It is the composition root; the CLI's `server`
// command, the demo and the end-to-end tests all use it.
package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/shipgate/shipgate/internal/api"
	"github.com/shipgate/shipgate/internal/auth"
	"github.com/shipgate/shipgate/internal/config"
	"github.com/shipgate/shipgate/internal/flags"
	"github.com/shipgate/shipgate/internal/ofrep"
	"github.com/shipgate/shipgate/internal/postgres"
	"github.com/shipgate/shipgate/internal/process"
	"github.com/shipgate/shipgate/internal/rollout"
	"github.com/shipgate/shipgate/internal/smoke"
	"github.com/shipgate/shipgate/internal/store"
)

// DefaultListen is where the API listens unless told otherwise: loopback
// only, so nothing is exposed by accident.
const DefaultListen = "127.0.0.1:7070"

// TokenFile is the name of the admin token file in the data dir.
const TokenFile = "token"

// Options configure a control plane.
type Options struct {
	// ConfigPath is the path of shipgate.yaml.
	ConfigPath string
	// Config, when set, is used instead of loading ConfigPath.
	Config *config.Config
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
	// Store names the store: "" (the SQLite file in DataDir),
	// sqlite:PATH, or a postgres:// URL; StorePasswordFile holds a
	// PostgreSQL password kept out of the URL.
	Store             string
	StorePasswordFile string
}

// ControlPlane is a running control plane.
type ControlPlane struct {
	Config  *config.Config
	Engine  *rollout.Engine
	Store   store.Store
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

	stopFlags func()

	log  *slog.Logger
	http *http.Server
	done chan error
	lock *dataLock
	// unlockStore gives up a shared store's server lock; storeLost
	// receives the error when the lock is lost.
	unlockStore func() error
	storeLost   chan error
}

// Run starts the control plane and serves until ctx is done, then shuts
// down gracefully. App instances and their routes' last state are left
// running so that users are not affected by a server restart.
func Run(ctx context.Context, opts Options) error {
	cp, err := Start(ctx, opts)
	if err != nil {
		return err
	}
	select {
	case <-ctx.Done():
	case err := <-cp.done:
		if err != nil {
			_ = cp.Close(context.Background())
			return fmt.Errorf("serve API: %w", err)
		}
	case err := <-cp.storeLost:
		_ = cp.Close(context.Background())
		return err
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
	cfg := opts.Config
	if cfg == nil {
		if cfg, err = config.Load(opts.ConfigPath); err != nil {
			return nil, err
		}
	}
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
	cp = &ControlPlane{Config: cfg, Routers: map[string]Router{}, log: log, done: make(chan error, 1), storeLost: make(chan error, 1), lock: lock}
	// started keeps the half-built control plane for the cleanup: a
	// failed return sets cp to nil before deferred calls run.
	started := cp
	defer func() {
		if err != nil {
			_ = started.Close(context.WithoutCancel(ctx))
		}
	}()
	spec := StoreSpec{URL: opts.Store, PasswordFile: opts.StorePasswordFile, DataDir: opts.DataDir}
	if cp.Store, err = OpenStore(ctx, spec); err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	log.Info("store open", "store", spec.String())
	if l, ok := cp.Store.(serverLocker); ok {
		// A server that lost the lock may have a successor already: it
		// stops, rather than act beside it.
		lost := func(err error) {
			log.Error("stopping: another server may take over", "err", err)
			select {
			case cp.storeLost <- err:
			default:
			}
		}
		if cp.unlockStore, err = l.LockServer(ctx, postgres.ServerHolder(opts.DataDir), lost); err != nil {
			return nil, fmt.Errorf("open store: %w", err)
		}
	}
	if cp.AdminToken, err = adminToken(ctx, cp.Store, filepath.Join(opts.DataDir, TokenFile), adminTokenName(spec)); err != nil {
		return nil, err
	}
	cp.Runtime = process.New(process.Config{DataDir: opts.DataDir, Logger: log.With("component", "runtime")})

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	routers := map[string]rollout.Router{}
	for name, env := range cfg.Environments {
		p, err := startRouter(ctx, opts, name, env, log)
		if err != nil {
			return nil, err
		}
		cp.Routers[name] = p
		routers[name] = p
		reg.MustRegister(unchecked{p.Collector()})
	}

	cp.Engine, err = rollout.New(rollout.Options{
		Config: cfg, Store: cp.Store, Runtime: cp.Runtime, Routers: routers, Prober: smoke.New(), Migrations: migrations{},
		Logger: log.With("component", "engine"), Tick: opts.Tick,
	})
	if err != nil {
		return nil, err
	}
	if err := cp.Engine.Start(ctx); err != nil {
		return nil, fmt.Errorf("start engine: %w", err)
	}

	var flagStats flags.FlagStatsSource // the production router's per-flag counters, or the only router's
	if p := cp.Routers["production"]; p != nil {
		flagStats = p
	} else if len(cp.Routers) == 1 {
		for _, p := range cp.Routers {
			flagStats = p
		}
	}
	if cp.Flags, err = flags.NewService(ctx, flags.Options{Store: cp.Store, Stats: flagStats}); err != nil {
		return nil, fmt.Errorf("start flags: %w", err)
	}
	flagsCtx, endFlags := context.WithCancel(context.WithoutCancel(ctx))
	flagsDone := make(chan error, 1)
	go func() { flagsDone <- cp.Flags.Run(flagsCtx, 10*time.Second) }()
	cp.stopFlags = func() { endFlags(); <-flagsDone; cp.Flags.Close() }

	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", listen)
	if err != nil {
		return nil, fmt.Errorf("listen for the API on %s: %w", listen, err)
	}
	cp.APIURL = "http://" + ln.Addr().String()
	handler := api.NewHandler(cp.Engine, cp.Store, api.HandlerOptions{
		Logger:  log.With("component", "api"),
		Metrics: promhttp.HandlerFor(reg, promhttp.HandlerOpts{}),
		App:     cfg.App,
		Flags:   cp.Flags, FlagKeys: cp.Store, Tokens: cp.Store,
	})
	mux := http.NewServeMux()
	mux.Handle("/ofrep/", ofrep.NewHandler(cp.Flags, cp.Store, ofrep.Options{Logger: log.With("component", "ofrep"), Done: flagsCtx.Done()}))
	mux.Handle("/", handler)
	cp.http = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	cp.http.RegisterOnShutdown(endFlags) // ends the OFREP change streams
	go func() {
		err := cp.http.Serve(ln)
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		}
		cp.done <- err
	}()
	log.Info("control plane started", "api", cp.APIURL, "app", cfg.App, "data", opts.DataDir)
	fmt.Fprintf(out, "shipgate: API on %s, managing %s\n", cp.APIURL, cfg.App)
	for name, p := range cp.Routers {
		fmt.Fprintf(out, "shipgate: %s router on http://%s\n", name, p.Addr())
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
		errs = append(errs, cp.http.Shutdown(ctx))
	}
	if cp.Engine != nil {
		cp.Engine.Close()
	}
	if cp.stopFlags != nil {
		cp.stopFlags() // flushes the evaluation counts
	}
	errs = append(errs, cp.closeRouters(ctx))
	if cp.Runtime != nil {
		cp.Runtime.Close()
	}
	if cp.unlockStore != nil {
		errs = append(errs, cp.unlockStore())
	}
	if cp.Store != nil {
		errs = append(errs, cp.Store.Close())
	}
	errs = append(errs, cp.lock.release())
	return errors.Join(errs...)
}

// StopInstances stops every instance the store knows of: the stable ones
// and those of active rollouts. The demo and tests use it to leave nothing
// behind; a server never does it on its own.
func (cp *ControlPlane) StopInstances(ctx context.Context) error {
	var insts []rollout.Instance
	for name := range cp.Config.Environments {
		st, err := cp.Store.GetEnvState(ctx, cp.Config.App, name)
		if err == nil {
			insts = append(insts, st.Instances...)
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
func adminToken(ctx context.Context, st store.Store, path, name string) (string, error) {
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
