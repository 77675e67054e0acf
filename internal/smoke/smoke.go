// Package smoke sends smoke checks straight to an instance over HTTP,
// before the instance gets any user traffic.
package smoke

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/shipgate/shipgate/internal/rollout"
)

// Prober sends smoke checks with an HTTP client of its own.
type Prober struct {
	client *http.Client
}

var _ rollout.Prober = (*Prober)(nil)

// New returns a Prober.
func New() *Prober {
	return &Prober{client: &http.Client{
		Transport: &http.Transport{DisableKeepAlives: true},
		// A smoke check judges the instance's own answer, not where it
		// redirects to.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

// maxBody bounds how much of a response is read to look for ExpectBody.
const maxBody = 1 << 20

// Probe sends one GET to http://addr+check.Path and compares the answer
// with what the check expects.
func (p *Prober) Probe(ctx context.Context, addr string, check rollout.SmokeCheck) error {
	return Get(ctx, p.client, "http://"+addr+check.Path, check, "no answer")
}

// Get sends one GET of a smoke check to url with client, within the
// check's timeout (5s by default), and compares the answer with what the
// check expects (Judge). noAnswer says, in the error, what it means that
// nothing answered. Other probers (the Kubernetes one, through the API
// server's proxy) send their checks with it too.
func Get(ctx context.Context, client *http.Client, url string, check rollout.SmokeCheck, noAnswer string) error {
	timeout := check.Timeout
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("build request: %w", err)
	}
	req.Header.Set("User-Agent", "shipgate-smoke/1")
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("%s: %w", noAnswer, err)
	}
	defer resp.Body.Close()
	return Judge(resp, check)
}

// Judge compares an answer with what the check expects: its status (200
// by default) and, when set, a string its body (the first MiB) contains.
func Judge(resp *http.Response, check rollout.SmokeCheck) error {
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return fmt.Errorf("read answer: %w", err)
	}
	want := check.ExpectStatus
	if want == 0 {
		want = http.StatusOK
	}
	if resp.StatusCode != want {
		return fmt.Errorf("expected status %d, got %d: %s", want, resp.StatusCode, snippet(body))
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
