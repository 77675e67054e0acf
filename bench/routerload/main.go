// Command routerload measures the builtin router under load against two
// baselines taken in the same run: the app called directly, and nginx
// doing the same 90/10 split. It starts a stable and a canary app on
// loopback, the shipgate proxy in this process and nginx as a child
// process, then drives each target in turn with wrk (or a Go load
// generator when wrk is missing) for the same duration, connections and
// threads, and prints requests/s, p50 and p99 with the ratios.
//
// Usage:
//
//	go run ./bench/routerload [-duration 10s] [-connections 64] [-threads 2]
package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/shipgate/shipgate/internal/proxy"
	"github.com/shipgate/shipgate/internal/rollout"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "routerload:", err)
		os.Exit(1)
	}
}

// options are the command line flags.
type options struct {
	duration    time.Duration
	warmup      time.Duration
	connections int
	threads     int
	canary      int
	nginx       string
	wrk         string
	workers     int
	cpuProfile  string
}

func parseFlags(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("routerload", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.DurationVar(&o.duration, "duration", 10*time.Second, "measured load per target")
	fs.DurationVar(&o.warmup, "warmup", 2*time.Second, "unmeasured load per target before the measured one")
	fs.IntVar(&o.connections, "connections", 64, "concurrent keep-alive connections")
	fs.IntVar(&o.threads, "threads", 2, "wrk threads")
	fs.IntVar(&o.canary, "canary", 10, "canary weight in percent, for both routers")
	fs.StringVar(&o.nginx, "nginx", "nginx", "nginx binary; empty or missing skips nginx")
	fs.StringVar(&o.wrk, "wrk", "wrk", "wrk binary; empty or missing uses the Go load generator")
	fs.IntVar(&o.workers, "nginx-workers", runtime.GOMAXPROCS(0), "nginx worker processes (match the proxy's GOMAXPROCS)")
	fs.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile of this process during the shipgate run to this file")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	switch {
	case o.duration <= 0 || o.duration > 5*time.Minute:
		return o, fmt.Errorf("-duration %v: use more than 0 and at most 5m", o.duration)
	case o.connections < 1 || o.threads < 1 || o.threads > o.connections:
		return o, fmt.Errorf("-connections %d -threads %d: need 1 ≤ threads ≤ connections", o.connections, o.threads)
	case o.canary < 0 || o.canary > 100:
		return o, fmt.Errorf("-canary %d: use a percentage from 0 to 100", o.canary)
	}
	return o, nil
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))

	stable, err := startApp(ctx, "stable")
	if err != nil {
		return err
	}
	defer stable.close()
	canary, err := startApp(ctx, "canary")
	if err != nil {
		return err
	}
	defer canary.close()

	targets := []target{{name: "direct", url: "http://" + stable.addr + "/"}}

	if o.nginx != "" {
		if _, err := exec.LookPath(o.nginx); err != nil {
			fmt.Fprintf(stderr, "routerload: no nginx (%v); install nginx-light to compare with it\n", err)
			o.nginx = ""
		}
	}
	if o.nginx != "" {
		ng, err := startNginx(ctx, o, stable.addr, canary.addr)
		if err != nil {
			return fmt.Errorf("nginx: %w", err)
		}
		defer ng.stop()
		targets = append(targets, target{name: "nginx", url: "http://" + ng.addr + "/"})
	}

	p := proxy.New(proxy.Config{Env: "bench", Listen: "127.0.0.1:0", Logger: logger})
	if err := p.Start(ctx); err != nil {
		return err
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = p.Shutdown(sctx)
	}()
	err = p.SetRoutes(ctx, rollout.Routes{
		Stable: rollout.Backend{Version: "stable", Addrs: []string{stable.addr}},
		Canary: rollout.Backend{Version: "canary", Addrs: []string{canary.addr}},
		Weight: o.canary, Seed: "routerload",
	})
	if err != nil {
		return err
	}
	targets = append(targets, target{name: "shipgate", url: "http://" + p.Addr() + "/"})

	gen := pickGenerator(o)
	fmt.Fprintf(stdout, "load: %s, %v per target after %v warm-up, %d connections, %d threads; canary %d%%\n",
		gen.name(), o.duration, o.warmup, o.connections, o.threads, o.canary)
	fmt.Fprintf(stdout, "machine: %d CPUs, %s; GOMAXPROCS %d; %s\n",
		runtime.NumCPU(), cpuModel(), runtime.GOMAXPROCS(0), runtime.Version())

	results := make(map[string]result, len(targets))
	for _, t := range targets {
		if o.warmup > 0 {
			if _, err := gen.run(ctx, t.url, o.warmup); err != nil {
				return fmt.Errorf("warm up %s: %w", t.name, err)
			}
		}
		s0, c0 := stable.hits.Load(), canary.hits.Load()
		stopProfile, err := startProfile(o.cpuProfile, t.name == "shipgate")
		if err != nil {
			return err
		}
		r, err := gen.run(ctx, t.url, o.duration)
		perr := stopProfile()
		if err != nil {
			return fmt.Errorf("load %s: %w", t.name, err)
		}
		if perr != nil {
			return perr
		}
		ds, dc := stable.hits.Load()-s0, canary.hits.Load()-c0
		if ds+dc > 0 {
			r.canaryShare = float64(dc) / float64(ds+dc)
		}
		results[t.name] = r
	}
	printResults(stdout, targets, results)
	return nil
}

// startProfile starts a CPU profile into path when path is set and on is
// true, and returns the function that stops it and reports whether the
// whole profile reached the file.
func startProfile(path string, on bool) (stop func() error, err error) {
	if path == "" || !on {
		return func() error { return nil }, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	return func() error {
		pprof.StopCPUProfile()
		if err := f.Close(); err != nil {
			return fmt.Errorf("cpu profile: %w", err)
		}
		return nil
	}, nil
}

// target is one address the load is sent to.
type target struct {
	name string
	url  string
}

// result is what one load run measured.
type result struct {
	rps         float64
	p50, p99    time.Duration
	errors      int64 // non-2xx answers and socket errors
	canaryShare float64
}

func printResults(w io.Writer, targets []target, results map[string]result) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "target\treq/s\tp50\tp99\terrors\tcanary share\t")
	for _, t := range targets {
		r := results[t.name]
		fmt.Fprintf(tw, "%s\t%.0f\t%v\t%v\t%d\t%.1f%%\t\n", t.name, r.rps, r.p50.Round(time.Microsecond),
			r.p99.Round(time.Microsecond), r.errors, 100*r.canaryShare)
	}
	_ = tw.Flush()
	sg, ok := results["shipgate"]
	if !ok {
		return
	}
	for _, base := range []string{"direct", "nginx"} {
		b, ok := results[base]
		if !ok {
			continue
		}
		fmt.Fprintf(w, "shipgate/%s: req/s %.2fx, p50 %.2fx, p99 %.2fx\n", base,
			sg.rps/b.rps, float64(sg.p50)/float64(b.p50), float64(sg.p99)/float64(b.p99))
	}
}

// app is a small backend that answers its name and counts its requests.
type app struct {
	addr string
	hits atomic.Int64
	srv  *http.Server
}

func startApp(ctx context.Context, name string) (*app, error) {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("start %s app: %w", name, err)
	}
	a := &app{addr: ln.Addr().String()}
	body := []byte("hello from " + name + "\n")
	a.srv = &http.Server{
		ReadHeaderTimeout: 5 * time.Second,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			a.hits.Add(1)
			w.Header().Set("Content-Type", "text/plain")
			_, _ = w.Write(body)
		}),
	}
	go func() { _ = a.srv.Serve(ln) }()
	return a, nil
}

func (a *app) close() { _ = a.srv.Close() }

// nginx is a running nginx child process.
type nginx struct {
	addr string
	dir  string // its config, pid file, logs and temp files
	cmd  *exec.Cmd
	done chan error
}

// nginxConf splits like the builtin router without a user key: each
// request goes to the canary at random with the canary's odds. Both
// upstreams keep connections alive, and the proxied request carries the
// same forwarding headers as the builtin router's.
const nginxConf = `worker_processes %d;
daemon off;
pid %[2]s/nginx.pid;
error_log %[2]s/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path %[2]s/body;
    proxy_temp_path %[2]s/proxy;
    fastcgi_temp_path %[2]s/fastcgi;
    uwsgi_temp_path %[2]s/uwsgi;
    scgi_temp_path %[2]s/scgi;
    upstream stable { server %[3]s; keepalive 256; }
    upstream canary { server %[4]s; keepalive 256; }
    split_clients "${request_id}" $version {
        %[5]d%% canary;
        * stable;
    }
    server {
        listen %[6]s;
        location / {
            proxy_pass http://$version;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Host $host;
            proxy_set_header X-Forwarded-Proto $scheme;
            add_header X-Shipgate-Version $version;
        }
    }
}
`

func startNginx(ctx context.Context, o options, stableAddr, canaryAddr string) (*nginx, error) {
	bin, err := exec.LookPath(o.nginx)
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "routerload-nginx-")
	if err != nil {
		return nil, err
	}
	addr, err := freeAddr(ctx)
	if err != nil {
		return nil, err
	}
	conf := filepath.Join(dir, "nginx.conf")
	text := fmt.Sprintf(nginxConf, o.workers, dir, stableAddr, canaryAddr, o.canary, addr)
	if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
		return nil, err
	}
	// The context kills nginx if the run is interrupted; a normal end
	// stops it gracefully with stop.
	cmd := exec.CommandContext(ctx, bin, "-p", dir, "-c", conf, "-e", filepath.Join(dir, "error.log"))
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	n := &nginx{addr: addr, dir: dir, cmd: cmd, done: make(chan error, 1)}
	go func() { n.done <- cmd.Wait() }()
	// nginx is up once its port answers.
	deadline := time.Now().Add(5 * time.Second)
	for {
		var d net.Dialer
		conn, err := d.DialContext(ctx, "tcp", addr)
		if err == nil {
			conn.Close()
			return n, nil
		}
		select {
		case err := <-n.done:
			logText, _ := os.ReadFile(filepath.Join(dir, "error.log"))
			_ = os.RemoveAll(dir)
			return nil, fmt.Errorf("exited before serving (%w): %s%s", err, out.String(), logText)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			n.stop()
			return nil, fmt.Errorf("not serving on %s after 5s: %s", addr, out.String())
		}
	}
}

// stop asks nginx to finish its requests and exit (SIGQUIT), kills it if
// it has not within five seconds, and removes its directory.
func (n *nginx) stop() {
	_ = n.cmd.Process.Signal(syscall.SIGQUIT)
	select {
	case <-n.done:
	case <-time.After(5 * time.Second):
		_ = n.cmd.Process.Kill()
		<-n.done
	}
	_ = os.RemoveAll(n.dir)
}

// freeAddr returns a loopback address with a port that was free a moment
// ago, for a child process to listen on.
func freeAddr(ctx context.Context) (string, error) {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

func cpuModel() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return "unknown CPU"
	}
	defer func() { _ = f.Close() }()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if k, v, ok := strings.Cut(s.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown CPU"
}

// generator drives load at one URL for a while.
type generator interface {
	name() string
	run(ctx context.Context, url string, d time.Duration) (result, error)
}

func pickGenerator(o options) generator {
	if o.wrk != "" {
		if bin, err := exec.LookPath(o.wrk); err == nil {
			return wrk{bin: bin, threads: o.threads, connections: o.connections}
		}
	}
	return goLoad{connections: o.connections}
}

// wrk runs the wrk load generator and reads its --latency report.
type wrk struct {
	bin         string
	threads     int
	connections int
}

func (w wrk) name() string { return "wrk" }

func (w wrk) run(ctx context.Context, url string, d time.Duration) (result, error) {
	ctx, cancel := context.WithTimeout(ctx, d+30*time.Second)
	defer cancel()
	secs := strconv.Itoa(int((d + time.Second - 1) / time.Second))
	cmd := exec.CommandContext(ctx, w.bin, "-t", strconv.Itoa(w.threads), "-c", strconv.Itoa(w.connections),
		"-d", secs+"s", "--latency", url)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return result{}, fmt.Errorf("wrk: %w: %s", err, out)
	}
	return parseWrk(out)
}

// parseWrk reads requests/s, the 50% and 99% latencies and the error
// counts from wrk's report.
func parseWrk(out []byte) (result, error) {
	var r result
	var haveRPS, have50, have99 bool
	s := bufio.NewScanner(bytes.NewReader(out))
	for s.Scan() {
		fields := strings.Fields(s.Text())
		switch {
		case len(fields) == 2 && fields[0] == "Requests/sec:":
			v, err := strconv.ParseFloat(fields[1], 64)
			if err != nil {
				return r, fmt.Errorf("wrk requests/sec %q: %w", fields[1], err)
			}
			r.rps, haveRPS = v, true
		case len(fields) == 2 && (fields[0] == "50%" || fields[0] == "99%"):
			v, err := time.ParseDuration(fields[1])
			if err != nil {
				return r, fmt.Errorf("wrk latency %q: %w", fields[1], err)
			}
			if fields[0] == "50%" {
				r.p50, have50 = v, true
			} else {
				r.p99, have99 = v, true
			}
		case strings.HasPrefix(s.Text(), "  Non-2xx or 3xx responses:"):
			n, _ := strconv.ParseInt(fields[len(fields)-1], 10, 64)
			r.errors += n
		case len(fields) > 1 && fields[0] == "Socket" && fields[1] == "errors:":
			// Socket errors: connect 0, read 0, write 0, timeout 0
			for i := 2; i+1 < len(fields); i += 2 {
				n, _ := strconv.ParseInt(strings.TrimSuffix(fields[i+1], ","), 10, 64)
				r.errors += n
			}
		}
	}
	if !haveRPS || !have50 || !have99 {
		return r, fmt.Errorf("wrk report lacks requests/sec or latency percentiles:\n%s", out)
	}
	return r, nil
}

// goLoad is the fallback load generator: one goroutine per connection,
// each sending requests back to back over its own keep-alive connection.
type goLoad struct{ connections int }

func (g goLoad) name() string { return "Go load generator (no wrk)" }

func (g goLoad) run(ctx context.Context, url string, d time.Duration) (result, error) {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var (
		mu        sync.Mutex
		latencies []time.Duration
		errs      atomic.Int64
		wg        sync.WaitGroup
	)
	start := time.Now()
	for range g.connections {
		wg.Go(func() {
			tr := &http.Transport{MaxConnsPerHost: 1, MaxIdleConnsPerHost: 1}
			defer tr.CloseIdleConnections()
			c := &http.Client{Transport: tr}
			var mine []time.Duration
			for ctx.Err() == nil {
				t0 := time.Now()
				if err := getOnce(ctx, c, url); err != nil {
					if ctx.Err() == nil {
						errs.Add(1)
					}
					continue
				}
				mine = append(mine, time.Since(t0))
			}
			mu.Lock()
			latencies = append(latencies, mine...)
			mu.Unlock()
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	if len(latencies) == 0 {
		return result{}, errors.New("no request succeeded")
	}
	slices.Sort(latencies)
	at := func(q float64) time.Duration { return latencies[int(q*float64(len(latencies)-1))] }
	return result{rps: float64(len(latencies)) / elapsed.Seconds(), p50: at(0.50), p99: at(0.99), errors: errs.Load()}, nil
}

func getOnce(ctx context.Context, c *http.Client, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	return nil
}
