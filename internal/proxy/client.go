package proxy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/shipgate/shipgate/internal/analysis"
	"github.com/shipgate/shipgate/internal/rollout"
)

// Client talks to a router process over its control socket. It is the
// control plane's TrafficRouter, MetricSource and Drainer when routers run as
// their own processes.
// Calls made while the process is restarting are retried for a few
// seconds; every call is idempotent.
type Client struct {
	env    string
	socket string
	http   *http.Client

	mu   sync.Mutex
	info ProcessInfo
	// last is the table last set through this client, so that the
	// supervisor can check that a restarted router serves it.
	last *rollout.Routes

	sup      *supervisor // nil for a client made by Dial
	restarts atomic.Uint64
}

// Timeouts of the control API.
const (
	// controlTimeout bounds one call.
	controlTimeout = 10 * time.Second
	// redialFor is how long a call keeps trying to reach a router that
	// does not answer, to ride over its restart.
	redialFor = 5 * time.Second
)

func newClient(env, socket string) *Client {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socket)
		},
		MaxIdleConnsPerHost: 4,
		IdleConnTimeout:     30 * time.Second,
	}
	return &Client{env: env, socket: socket, http: &http.Client{Transport: tr, Timeout: controlTimeout}}
}

// Dial returns a client of the router process whose control socket is
// socket, after checking that it answers. The client does not supervise
// the process; EnsureProcess returns one that does.
func Dial(ctx context.Context, socket string) (*Client, error) {
	c := newClient("", socket)
	info, err := c.fetchInfo(ctx)
	if err != nil {
		return nil, err
	}
	c.env = info.Env
	c.setInfo(info)
	return c, nil
}

// Addr returns the address the router serves users on.
func (c *Client) Addr() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.info.Addr
}

// PreviewAddr returns the address of the router's preview listener, or ""
// without one.
func (c *Client) PreviewAddr() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.info.PreviewAddr
}

// PID returns the router's process id, as of the last time the client
// asked.
func (c *Client) PID() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.info.PID
}

func (c *Client) setInfo(info ProcessInfo) {
	c.mu.Lock()
	c.info = info
	c.mu.Unlock()
}

// Info asks the router about itself.
func (c *Client) Info(ctx context.Context) (ProcessInfo, error) {
	info, err := c.fetchInfo(ctx)
	if err == nil {
		c.setInfo(info)
	}
	return info, err
}

func (c *Client) fetchInfo(ctx context.Context) (ProcessInfo, error) {
	var info ProcessInfo
	err := c.call(ctx, http.MethodGet, "/healthz", nil, &info, false)
	return info, err
}

// SetRoutes sends a routing table to the router, which saves it before it
// applies it. An invalid table is an error matching rollout.ErrInvalid.
func (c *Client) SetRoutes(ctx context.Context, r rollout.Routes) error {
	if err := c.call(ctx, http.MethodPut, "/routes", r, nil, true); err != nil {
		return fmt.Errorf("set routes: %w", err)
	}
	r = cloneRoutes(r)
	c.mu.Lock()
	c.last = &r
	c.mu.Unlock()
	return nil
}

// Drain waits until the router has no request in flight to addrs (see
// Proxy.Drain), or ctx ends.
func (c *Client) Drain(ctx context.Context, addrs []string) error {
	if err := c.call(ctx, http.MethodPost, "/drain", drainRequest{Addrs: addrs}, nil, true); err != nil {
		return fmt.Errorf("drain: %w", err)
	}
	return nil
}

// Routes returns the table the router serves with.
func (c *Client) Routes(ctx context.Context) (rollout.Routes, error) {
	var r rollout.Routes
	err := c.call(ctx, http.MethodGet, "/routes", nil, &r, true)
	return r, err
}

// Stats returns each version's counters since the router process started.
// They start again from zero when the process restarts, which
// analysis.Sample.Sub recognises.
func (c *Client) Stats(ctx context.Context) (map[string]analysis.Sample, error) {
	var w map[string]wireSample
	if err := c.call(ctx, http.MethodGet, "/stats", nil, &w, true); err != nil {
		return nil, fmt.Errorf("router stats: %w", err)
	}
	return fromWire(w)
}

// FlagStats returns the router's counters per flag key and variant (see
// Proxy.FlagStats).
func (c *Client) FlagStats(ctx context.Context) (map[string]map[string]analysis.Sample, error) {
	var w map[string]map[string]wireSample
	if err := c.call(ctx, http.MethodGet, "/flagstats", nil, &w, true); err != nil {
		return nil, fmt.Errorf("router flag stats: %w", err)
	}
	out := make(map[string]map[string]analysis.Sample, len(w))
	for key, variants := range w {
		s, err := fromWire(variants)
		if err != nil {
			return nil, fmt.Errorf("router flag stats: %w", err)
		}
		out[key] = s
	}
	return out, nil
}

// Health returns the health of every backend address (see Proxy.Health).
func (c *Client) Health(ctx context.Context) ([]AddrHealth, error) {
	var h []AddrHealth
	err := c.call(ctx, http.MethodGet, "/health", nil, &h, true)
	return h, err
}

// call makes one control API call, sending in as JSON when it is not nil
// and decoding the answer into out when it is not nil. With redial it
// retries, for a few seconds, a call that could not reach the router.
func (c *Client) call(ctx context.Context, method, path string, in, out any, redial bool) error {
	var body []byte
	if in != nil {
		var err error
		if body, err = json.Marshal(in); err != nil {
			return err
		}
	}
	deadline := time.Now().Add(redialFor)
	for {
		err := c.callOnce(ctx, method, path, body, out)
		var op *net.OpError
		if err == nil || !redial || !errors.As(err, &op) || op.Op != "dial" || time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (c *Client) callOnce(ctx context.Context, method, path string, body []byte, out any) error {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://router"+path, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("router %s at %s: %w", c.env, c.socket, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		var ce controlError
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		if json.Unmarshal(b, &ce) != nil || ce.Error == "" {
			return fmt.Errorf("router %s: %s %s: %s", c.env, method, path, resp.Status)
		}
		if resp.StatusCode == http.StatusBadRequest && ce.Field != "" {
			return &rollout.FieldError{Field: ce.Field, Message: ce.Error}
		}
		return fmt.Errorf("router %s: %s", c.env, ce.Error)
	}
	if out == nil {
		drain(resp.Body)
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("router %s: %s %s: %w", c.env, method, path, err)
	}
	drain(resp.Body)
	return nil
}

// Close stops supervising the router process, if this client does, and
// closes the client's connections. The process keeps running and
// serving.
func (c *Client) Close() error {
	if c.sup != nil {
		c.sup.close()
	}
	c.http.CloseIdleConnections()
	return nil
}

// Collector returns a Prometheus collector that, at each scrape, fetches
// the router process's metrics and passes them on unchanged, so that the
// control plane's /metrics shows them as if the router ran inside it. It
// adds shipgate_router_up (0 when the router did not answer) and
// shipgate_router_process_restarts_total (restarts by this supervisor).
func (c *Client) Collector() prometheus.Collector { return remoteCollector{c} }

var (
	routerUpDesc = prometheus.NewDesc(
		"shipgate_router_up",
		"1 when the router process answered the last scrape of its metrics, 0 otherwise.",
		[]string{"env"}, nil)
	routerRestartsDesc = prometheus.NewDesc(
		"shipgate_router_process_restarts_total",
		"Times the supervisor started the router process again after it died.",
		[]string{"env"}, nil)
)

// remoteCollector is an unchecked collector: what it collects depends on
// the router's answer, so it describes nothing up front.
type remoteCollector struct{ c *Client }

// Describe implements prometheus.Collector.
func (remoteCollector) Describe(chan<- *prometheus.Desc) {}

// Collect implements prometheus.Collector.
func (rc remoteCollector) Collect(ch chan<- prometheus.Metric) {
	env := rc.c.env
	ch <- prometheus.MustNewConstMetric(routerRestartsDesc, prometheus.CounterValue, float64(rc.c.restarts.Load()), env)
	families, err := rc.c.metrics(context.Background())
	if err != nil {
		// Not an invalid metric: that would fail the whole scrape of the
		// control plane, whose own metrics are still good.
		ch <- prometheus.MustNewConstMetric(routerUpDesc, prometheus.GaugeValue, 0, env)
		return
	}
	ch <- prometheus.MustNewConstMetric(routerUpDesc, prometheus.GaugeValue, 1, env)
	for _, f := range families {
		for _, m := range f.GetMetric() {
			names := make([]string, len(m.GetLabel()))
			for i, l := range m.GetLabel() {
				names[i] = l.GetName()
			}
			ch <- remoteMetric{desc: prometheus.NewDesc(f.GetName(), f.GetHelp(), names, nil), m: m}
		}
	}
}

// metrics fetches and parses the router's metrics.
func (c *Client) metrics(ctx context.Context) (map[string]*dto.MetricFamily, error) {
	ctx, cancel := context.WithTimeout(ctx, controlTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://router/metrics", nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", string(expfmt.NewFormat(expfmt.TypeTextPlain)))
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("router %s metrics: %w", c.env, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("router %s metrics: %s", c.env, resp.Status)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("router %s metrics: %w", c.env, err)
	}
	return families, nil
}

// remoteMetric is one metric as the router process exposed it.
type remoteMetric struct {
	desc *prometheus.Desc
	m    *dto.Metric
}

// Desc implements prometheus.Metric.
func (r remoteMetric) Desc() *prometheus.Desc { return r.desc }

// Write implements prometheus.Metric. The fields are shared, not copied:
// the registry only reads them.
func (r remoteMetric) Write(out *dto.Metric) error {
	out.Label = r.m.Label
	out.Gauge, out.Counter, out.Summary, out.Untyped, out.Histogram = r.m.Gauge, r.m.Counter, r.m.Summary, r.m.Untyped, r.m.Histogram
	out.TimestampMs = r.m.TimestampMs
	return nil
}
