package kubernetes

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"k8s.io/client-go/rest"

	"github.com/shipgate/shipgate/internal/rollout"
	"github.com/shipgate/shipgate/internal/smoke"
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
	if err := smoke.Get(ctx, p.client, p.host+path, check, "no answer through the API server's proxy"); err != nil {
		return fmt.Errorf("%w (through %s)", err, path)
	}
	return nil
}
