package shopapp

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// shopBin is the shop built once for all tests, so that they run the real
// binary with its real signal handling and exit codes.
var shopBin string

func TestMain(m *testing.M) {
	os.Exit(buildAndRun(m))
}

func buildAndRun(m *testing.M) int {
	dir, err := os.MkdirTemp("", "shop-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	shopBin = filepath.Join(dir, "shop")
	out, err := exec.Command("go", "build", "-o", shopBin, "..").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "go build: %v\n%s", err, out)
		return 1
	}
	return m.Run()
}

// shopProc is one running shop.
type shopProc struct {
	cmd    *exec.Cmd
	url    string
	stderr *bytes.Buffer
	done   chan struct{} // closed once the process has exited
	err    error         // cmd.Wait's result, set before done is closed
}

// freePort returns a port that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// startShop runs the shop with env (besides PORT) and args, and waits
// until it answers /healthz with any status.
func startShop(t *testing.T, env map[string]string, args ...string) *shopProc {
	t.Helper()
	port := freePort(t)
	p := launch(t, port, env, args...)
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := client.Get(p.url + "/healthz")
		if err == nil {
			resp.Body.Close()
			return p
		}
		select {
		case <-p.done:
			t.Fatalf("shop exited before serving: %v\nstderr: %s", p.err, p.stderr)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("shop not serving after 10s: %v", err)
		}
	}
}

// launch runs the shop without waiting for it to serve.
func launch(t *testing.T, port int, env map[string]string, args ...string) *shopProc {
	t.Helper()
	cmd := exec.Command(shopBin, args...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "PORT=" + strconv.Itoa(port)}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	p := &shopProc{cmd: cmd, url: fmt.Sprintf("http://127.0.0.1:%d", port), stderr: &bytes.Buffer{}, done: make(chan struct{})}
	cmd.Stderr = p.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-p.done
	})
	return p
}

// wait returns the shop's exit code, failing the test after d.
func (p *shopProc) wait(t *testing.T, d time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(d):
		t.Fatalf("shop still running after %v", d)
	}
	var exit *exec.ExitError
	if errors.As(p.err, &exit) {
		return exit.ExitCode()
	}
	if p.err != nil {
		t.Fatal(p.err)
	}
	return 0
}

var merchant = map[string]string{"MERCHANT_ID": "m-test"}

func get(t *testing.T, url string) (*http.Response, []byte) {
	t.Helper()
	return do(t, http.MethodGet, url, "", nil)
}

func do(t *testing.T, method, url, body string, header http.Header) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

func TestShop_routes(t *testing.T) {
	p := startShop(t, merchant, "--version", "v7", "--latency", "0")
	user := http.Header{"X-User-Id": {"ada"}}

	tests := []struct {
		name, method, path, body string
		header                   http.Header
		wantStatus               int
		wantBody                 string
	}{
		{"healthz", "GET", "/healthz", "", nil, 200, "ok"},
		{"home is the catalog", "GET", "/", "", nil, 200, `"id":"mug"`},
		{"products", "GET", "/products", "", nil, 200, `"price_cents":2499`},
		{"version", "GET", "/version", "", nil, 200, `{"version":"v7"}`},
		{"empty cart", "GET", "/cart", "", user, 200, `"items":[]`},
		{"add to cart", "POST", "/cart", `{"product_id":"tee","quantity":2}`, user, 200, `"total_cents":4998`},
		{"quick add", "POST", "/cart", "", user, 200, `"total_cents":6297`},
		{"cart kept per user", "GET", "/cart", "", user, 200, `"total_cents":6297`},
		{"other user's cart", "GET", "/cart", "", nil, 200, `"total_cents":0`},
		{"unknown product", "POST", "/cart", `{"product_id":"yacht"}`, user, 400, `unknown product_id \"yacht\"`},
		{"bad body", "POST", "/cart", `{`, user, 400, "body must be JSON"},
		{"pay the cart", "POST", "/pay", "", user, 200, `"total_cents":6297`},
		{"cart empty after paying", "GET", "/cart", "", user, 200, `"total_cents":0`},
		{"pay with GET and empty cart", "GET", "/pay", "", nil, 200, `{"ok":true,"order":{"id":"ord-000002"`},
		{"wrong method", "DELETE", "/pay", "", nil, 405, ""},
		{"unknown path", "GET", "/nope", "", nil, 404, ""},
	}
	for _, tt := range tests {
		resp, body := do(t, tt.method, p.url+tt.path, tt.body, tt.header)
		if got, want := resp.StatusCode, tt.wantStatus; got != want {
			t.Errorf("%s: %s %s: status %d, want %d (body %s)", tt.name, tt.method, tt.path, got, want, body)
		}
		if !strings.Contains(string(body), tt.wantBody) {
			t.Errorf("%s: %s %s: body %s, want it to contain %s", tt.name, tt.method, tt.path, body, tt.wantBody)
		}
		if got, want := resp.Header.Get("X-Shop-Version"), "v7"; got != want {
			t.Errorf("%s: X-Shop-Version = %q, want %q", tt.name, got, want)
		}
	}
}

func TestShop_payFailRate(t *testing.T) {
	const n = 1000
	tests := []struct {
		rate     string
		min, max int // failures allowed out of n: about 4 standard deviations
	}{
		{"0", 0, 0},
		{"0.4", 320, 480},
		{"1", n, n},
	}
	for _, tt := range tests {
		t.Run(tt.rate, func(t *testing.T) {
			p := startShop(t, map[string]string{"MERCHANT_ID": "m-test", "SHOP_PAY_FAIL_RATE": tt.rate}, "--latency", "0")
			failed := 0
			for range n {
				resp, body := get(t, p.url+"/pay")
				switch resp.StatusCode {
				case http.StatusOK:
				case http.StatusInternalServerError:
					failed++
					if got, want := string(body), `{"error":"payment declined by processor"}`+"\n"; got != want {
						t.Fatalf("failed /pay body = %q, want %q", got, want)
					}
				default:
					t.Fatalf("/pay status %d: %s", resp.StatusCode, body)
				}
			}
			if failed < tt.min || failed > tt.max {
				t.Errorf("%d of %d /pay failed, want %d to %d", failed, n, tt.min, tt.max)
			}
		})
	}
}

func TestShop_failHealth(t *testing.T) {
	flagFile := filepath.Join(t.TempDir(), "unhealthy")
	tests := []struct {
		name string
		env  map[string]string
		args []string
	}{
		{"flag", merchant, []string{"--fail-health"}},
		{"env", map[string]string{"MERCHANT_ID": "m", "SHOP_FAIL_HEALTH": "1"}, nil},
		{"file", merchant, []string{"--fail-health-file", flagFile}},
	}
	if err := os.WriteFile(flagFile, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := startShop(t, tt.env, tt.args...)
			if resp, body := get(t, p.url+"/healthz"); resp.StatusCode != http.StatusServiceUnavailable {
				t.Errorf("/healthz = %d %s, want 503", resp.StatusCode, body)
			}
			if resp, _ := get(t, p.url+"/products"); resp.StatusCode != http.StatusOK {
				t.Errorf("/products = %d, want 200: only health fails", resp.StatusCode)
			}
		})
	}

	t.Run("file removed", func(t *testing.T) {
		p := startShop(t, merchant, "--fail-health-file", flagFile)
		if err := os.Remove(flagFile); err != nil {
			t.Fatal(err)
		}
		if resp, body := get(t, p.url+"/healthz"); resp.StatusCode != http.StatusOK {
			t.Errorf("/healthz = %d %s after the file was removed, want 200", resp.StatusCode, body)
		}
	})
}

func TestShop_latency(t *testing.T) {
	p := startShop(t, merchant, "--latency", "300ms")
	for _, path := range []string{"/", "/pay", "/version"} {
		start := time.Now()
		get(t, p.url+path)
		// The jitter is ±10%, so no request may be faster than 270ms.
		if got, least := time.Since(start), 270*time.Millisecond; got < least {
			t.Errorf("GET %s took %v, want at least %v", path, got, least)
		}
	}

	slow := startShop(t, merchant, "--latency", "1m")
	client := &http.Client{Timeout: 10 * time.Second}
	resp, err := client.Get(slow.url + "/healthz")
	if err != nil {
		t.Fatalf("/healthz with --latency 1m: %v; health checks must not wait", err)
	}
	resp.Body.Close()
}

func TestShop_missingMerchantID(t *testing.T) {
	p := launch(t, freePort(t), map[string]string{"SHOP_VERSION": "v2"})
	if got, want := p.wait(t, 10*time.Second), 1; got != want {
		t.Fatalf("exit code %d, want %d", got, want)
	}
	if got, want := p.stderr.String(), "MERCHANT_ID is not set"; !strings.Contains(got, want) {
		t.Errorf("stderr %q, want it to contain %q", got, want)
	}
}

func TestShop_gracefulShutdown(t *testing.T) {
	p := startShop(t, merchant, "--latency", "1s")

	type result struct {
		status int
		err    error
	}
	inFlight := make(chan result, 1)
	go func() {
		resp, err := http.Get(p.url + "/pay")
		if err != nil {
			inFlight <- result{err: err}
			return
		}
		resp.Body.Close()
		inFlight <- result{status: resp.StatusCode}
	}()
	time.Sleep(300 * time.Millisecond) // the request is now waiting out its latency

	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	r := <-inFlight
	if r.err != nil || r.status != http.StatusOK {
		t.Errorf("request in flight during SIGTERM: status %d, err %v; want 200", r.status, r.err)
	}
	if got, want := p.wait(t, 10*time.Second), 0; got != want {
		t.Errorf("exit code %d after SIGTERM, want %d; stderr: %s", got, want, p.stderr)
	}
	if _, err := net.Dial("tcp", strings.TrimPrefix(p.url, "http://")); err == nil {
		t.Error("shop still accepts connections after exiting")
	}
}

func TestParseConfig(t *testing.T) {
	env := func(kv ...string) func(string) string {
		m := map[string]string{"MERCHANT_ID": "m-1"}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return func(k string) string { return m[k] }
	}
	tests := []struct {
		name    string
		args    []string
		getenv  func(string) string
		want    config
		wantErr string
	}{
		{
			name:   "defaults",
			args:   []string{"--port", "8080"},
			getenv: env(),
			want:   config{port: 8080, version: "dev", latency: 2 * time.Millisecond, merchantID: "m-1"},
		},
		{
			name: "env",
			getenv: env("PORT", "9000", "SHOP_VERSION", "v2", "SHOP_PAY_FAIL_RATE", "0.4",
				"SHOP_LATENCY", "50ms", "SHOP_FAIL_HEALTH", "1", "SHOP_FAIL_HEALTH_FILE", "/tmp/x"),
			want: config{port: 9000, version: "v2", payFailRate: 0.4, latency: 50 * time.Millisecond,
				failHealth: true, failHealthFile: "/tmp/x", merchantID: "m-1"},
		},
		{
			name:   "flag wins over env",
			args:   []string{"--port", "8081", "--version", "v3", "--pay-fail-rate", "0", "--fail-health=false"},
			getenv: env("PORT", "9000", "SHOP_VERSION", "v2", "SHOP_PAY_FAIL_RATE", "0.4", "SHOP_FAIL_HEALTH", "1"),
			want:   config{port: 8081, version: "v3", latency: 2 * time.Millisecond, merchantID: "m-1"},
		},
		{name: "no port", getenv: env(), wantErr: "--port (or PORT) must be a port number"},
		{name: "bad env", getenv: env("PORT", "80", "SHOP_LATENCY", "slow"), wantErr: `SHOP_LATENCY="slow" is not a valid value for --latency`},
		{name: "rate above 1", args: []string{"--port", "1", "--pay-fail-rate", "1.5"}, getenv: env(), wantErr: "--pay-fail-rate (or SHOP_PAY_FAIL_RATE) must be from 0 to 1"},
		{name: "negative latency", args: []string{"--port", "1", "--latency", "-1s"}, getenv: env(), wantErr: "--latency (or SHOP_LATENCY) must not be negative"},
		{name: "stray argument", args: []string{"--port", "1", "serve"}, getenv: env(), wantErr: `unexpected argument "serve"`},
		{name: "no merchant", args: []string{"--port", "1"}, getenv: func(string) string { return "" }, wantErr: "MERCHANT_ID is not set"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseConfig(tt.args, tt.getenv, io.Discard)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("config %+v, want %+v", got, tt.want)
			}
		})
	}
}

// TestShop_versionJSON checks that /version is valid JSON, since smoke
// checks and the demo parse it.
func TestShop_versionJSON(t *testing.T) {
	p := startShop(t, map[string]string{"MERCHANT_ID": "m", "SHOP_VERSION": "v9"}, "--latency", "0")
	_, body := get(t, p.url+"/version")
	var v struct{ Version string }
	if err := json.Unmarshal(body, &v); err != nil {
		t.Fatal(err)
	}
	if got, want := v.Version, "v9"; got != want {
		t.Errorf("version %q, want %q", got, want)
	}
}

// GET /metrics counts user requests by code and version, and their
// latency, in Prometheus' text format; health checks are not counted.
func TestShop_metrics(t *testing.T) {
	p := startShop(t, map[string]string{"MERCHANT_ID": "m-test", "SHOP_PAY_FAIL_RATE": "1"}, "--latency", "0", "--version", "v7")
	for range 3 {
		get(t, p.url+"/products")
	}
	get(t, p.url+"/pay")
	get(t, p.url+"/healthz")
	_, body := get(t, p.url+"/metrics")
	for _, want := range []string{
		`http_requests_total{code="200",version="v7"} 3`,
		`http_requests_total{code="500",version="v7"} 1`,
		`http_request_duration_seconds_bucket{version="v7",le="+Inf"} 4`,
		`http_request_duration_seconds_count{version="v7"} 4`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %q:\n%s", want, body)
		}
	}
}
