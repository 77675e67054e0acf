// Package shopapp is the sample app that Shipgate deploys in its demo and
// end-to-end tests: a small HTTP shop whose failure modes are chosen per
// release by flags, so that a bad release can be made on purpose.
//
// Every flag can also be set from an environment variable; the flag wins.
//
//	--port N              PORT                  port to listen on, 127.0.0.1 only (required)
//	--version V           SHOP_VERSION          version reported in X-Shop-Version and GET /version
//	--pay-fail-rate F     SHOP_PAY_FAIL_RATE    share (0 to 1) of /pay requests that answer 500
//	--latency D           SHOP_LATENCY          time every request but /healthz takes (±10%), default 2ms
//	--fail-health         SHOP_FAIL_HEALTH      /healthz answers 503
//	--fail-health-file P  SHOP_FAIL_HEALTH_FILE /healthz answers 503 while file P exists (for tests)
//
// The shop refuses to start when MERCHANT_ID is empty: that is the release
// that forgot a variable. On SIGTERM or SIGINT it stops taking connections,
// lets requests in flight finish (at most 10s) and exits 0.
package shopapp

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"
)

// shutdownTimeout bounds how long requests in flight may take to finish
// after SIGTERM. It matches Shipgate's default stop grace period, after
// which the process would get SIGKILL anyway.
const shutdownTimeout = 10 * time.Second

// Main runs the shop as a process with args (without the program name)
// until SIGTERM or SIGINT, and returns its exit code. Both the shop command
// (examples/shop) and shipgate's hidden `example-shop` command call it, so
// that `shipgate demo` needs nothing but its own binary.
func Main(args []string) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	// Once the first signal has started a graceful shutdown, a second one
	// gets the default behaviour and ends the process at once.
	context.AfterFunc(ctx, stop)

	err := run(ctx, args, os.Getenv, os.Stdout, os.Stderr)
	stop()
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "shop:", err)
		return 1
	}
	return 0
}

// config is what the flags and the environment ask for.
type config struct {
	port           int
	version        string
	payFailRate    float64
	latency        time.Duration
	failHealth     bool
	failHealthFile string
	merchantID     string
}

// envFlags binds each flag to the environment variable that sets it when
// the flag is not given.
var envFlags = []struct{ flag, env string }{
	{"port", "PORT"},
	{"version", "SHOP_VERSION"},
	{"pay-fail-rate", "SHOP_PAY_FAIL_RATE"},
	{"latency", "SHOP_LATENCY"},
	{"fail-health", "SHOP_FAIL_HEALTH"},
	{"fail-health-file", "SHOP_FAIL_HEALTH_FILE"},
}

// parseConfig reads the flags in args, then the environment variables of
// the flags that were not given, and validates the result. Errors name the
// flag or variable at fault.
func parseConfig(args []string, getenv func(string) string, usage io.Writer) (config, error) {
	var c config
	fs := flag.NewFlagSet("shop", flag.ContinueOnError)
	fs.SetOutput(usage)
	fs.IntVar(&c.port, "port", 0, "port to listen on at 127.0.0.1 (env PORT; required)")
	fs.StringVar(&c.version, "version", "dev", "version reported in X-Shop-Version and GET /version (env SHOP_VERSION)")
	fs.Float64Var(&c.payFailRate, "pay-fail-rate", 0, "share of /pay requests, 0 to 1, that answer 500 (env SHOP_PAY_FAIL_RATE)")
	fs.DurationVar(&c.latency, "latency", 2*time.Millisecond, "time every request but /healthz takes, ±10% (env SHOP_LATENCY)")
	fs.BoolVar(&c.failHealth, "fail-health", false, "answer 503 on /healthz (env SHOP_FAIL_HEALTH)")
	fs.StringVar(&c.failHealthFile, "fail-health-file", "", "answer 503 on /healthz while this file exists (env SHOP_FAIL_HEALTH_FILE)")
	if err := fs.Parse(args); err != nil {
		return config{}, err
	}
	if fs.NArg() > 0 {
		return config{}, fmt.Errorf("unexpected argument %q: the shop takes flags only", fs.Arg(0))
	}

	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	for _, b := range envFlags {
		v := getenv(b.env)
		if given[b.flag] || v == "" {
			continue
		}
		if err := fs.Set(b.flag, v); err != nil {
			return config{}, fmt.Errorf("environment variable %s=%q is not a valid value for --%s", b.env, v, b.flag)
		}
	}

	switch {
	case c.port <= 0 || c.port > 65535:
		return config{}, fmt.Errorf("--port (or PORT) must be a port number from 1 to 65535, got %d", c.port)
	case c.payFailRate < 0 || c.payFailRate > 1:
		return config{}, fmt.Errorf("--pay-fail-rate (or SHOP_PAY_FAIL_RATE) must be from 0 to 1, got %v", c.payFailRate)
	case c.latency < 0:
		return config{}, fmt.Errorf("--latency (or SHOP_LATENCY) must not be negative, got %v", c.latency)
	}

	c.merchantID = getenv("MERCHANT_ID")
	if c.merchantID == "" {
		return config{}, errors.New("MERCHANT_ID is not set: the shop cannot take payments without a merchant id; " +
			"set MERCHANT_ID in the release's environment")
	}
	return c, nil
}

// run serves the shop until ctx is done, then shuts down gracefully. It
// returns flag.ErrHelp when asked for usage.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg, err := parseConfig(args, getenv, stderr)
	if err != nil {
		return err
	}
	logger := slog.New(slog.NewTextHandler(stdout, nil))

	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(cfg.port))
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	srv := &http.Server{
		Handler:           newShop(cfg).handler(),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	logger.Info("shop listening", "addr", addr, "version", cfg.version, "pid", os.Getpid(),
		"pay_fail_rate", cfg.payFailRate, "latency", cfg.latency, "fail_health", cfg.failHealth)

	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case err := <-served:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}

	logger.Info("shop shutting down", "timeout", shutdownTimeout)
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		_ = srv.Close()
		return fmt.Errorf("shutdown: requests in flight did not finish within %v: %w", shutdownTimeout, err)
	}
	<-served // http.ErrServerClosed, now that Shutdown has returned
	logger.Info("shop stopped")
	return nil
}
