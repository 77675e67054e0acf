package kubernetes

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"k8s.io/client-go/rest"

	"github.com/shipgate/shipgate/internal/rollout"
)

// Prober sends smoke checks to a release through the API server's proxy:
// pod IPs are not reachable from where Shipgate runs, the API server is.
// It understands the addresses the Runtime gives its instances:
// "svc/NAME:PORT" (the release's Service) and "pod/NAME:PORT" (one pod).
type Prober struct {
	client    *http.Client
	host      string
	namespace string
}

var _ rollout.Prober = (*Prober)(nil)

// NewProber returns a Prober that reaches namespace's Services through
// the API server of cfg.
func NewProber(cfg *rest.Config, namespace string) (*Prober, error) {
	c, err := rest.HTTPClientFor(cfg)
	if err != nil {
		return nil, fmt.Errorf("kubernetes: smoke check client: %w", err)
	}
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	host := cfg.Host
	if !strings.Contains(host, "://") {
		host = "https://" + host
	}
	return &Prober{client: c, host: strings.TrimRight(host, "/") + strings.TrimRight(cfg.APIPath, "/"), namespace: namespace}, nil
}

const maxProbeBody = 1 << 20

// ProxyPath is the API server path that proxies path to addr.
func (p *Prober) ProxyPath(addr, path string) (string, error) {
	kind, target, ok := strings.Cut(addr, "/")
	if !ok || (kind != "svc" && kind != "pod") || !strings.Contains(target, ":") {
		return "", fmt.Errorf("kubernetes: smoke check address %q is not svc/NAME:PORT or pod/NAME:PORT", addr)
	}
	res := "services"
	if kind == "pod" {
		res = "pods"
	}
	if !strings.HasPrefix(path, "/") {
		path = "/" + path
	}
	return "/api/v1/namespaces/" + url.PathEscape(p.namespace) + "/" + res + "/" + target + "/proxy" + path, nil
}

// Probe sends one GET to check.Path of addr through the API server and
// compares the answer with what the check expects.
func (p *Prober) Probe(ctx context.Context, addr string, check rollout.SmokeCheck) error {
	path, err := p.ProxyPath(addr, check.Path)
	if err != nil {
		return err
	}
	timeout := check.Timeout
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.host+path, nil)
	if err != nil {
		return fmt.Errorf("build request: %w", err)
	}
	req.Header.Set("User-Agent", "shipgate-smoke/1")
	resp, err := p.client.Do(req)
	if err != nil {
		return fmt.Errorf("no answer through the API server's proxy: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxProbeBody))
	if err != nil {
		return fmt.Errorf("read answer: %w", err)
	}
	want := check.ExpectStatus
	if want == 0 {
		want = http.StatusOK
	}
	if resp.StatusCode != want {
		return fmt.Errorf("expected status %d, got %d (through %s): %s", want, resp.StatusCode, path, snippet(body))
	}
	if check.ExpectBody != "" && !strings.Contains(string(body), check.ExpectBody) {
		return fmt.Errorf("expected the body to contain %q, got %s", check.ExpectBody, snippet(body))
	}
	return nil
}

func snippet(b []byte) string {
	s := strings.TrimSpace(string(b))
	if len(s) > 200 {
		s = s[:200] + "..."
	}
	if s == "" {
		return "(empty body)"
	}
	return fmt.Sprintf("%q", s)
}
