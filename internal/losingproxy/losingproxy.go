// Package losingproxy is a test helper: an HTTP proxy in front of an API
// server that loses the answers it is told to, as a load balancer in front
// of a dying server does. The tests of the client's retries (internal/api)
// and of the CLI against real servers (internal/server) use it to show
// that a command whose answer was lost is carried out once.
package losingproxy

import (
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
)

// KeyHeader is the header a client names a command with (the API's
// Idempotency-Key). Only requests that carry it can be lost: the others
// are reads.
const KeyHeader = "Idempotency-Key"

// Proxy forwards every request to its target and passes the answer on,
// except for the armed losses: the next request that carries a key is
// forwarded, its answer awaited (the server has acted), the loss's hook
// run, and the client's connection closed without the answer. Every answer
// closes its connection, so that Go's HTTP transport never sends a request
// again by itself on a reused one: what is sent again is the client's
// doing.
type Proxy struct {
	*httptest.Server

	mu     sync.Mutex
	target string
	losses []func() string
	keyed  []Request
}

// Request is a request that carried a key, as the proxy saw it.
type Request struct {
	Method, Path, Key string
}

// String returns "METHOD PATH KEY".
func (r Request) String() string { return r.Method + " " + r.Path + " " + r.Key }

// New starts a proxy to target (a base URL), closed when the test ends.
func New(t testing.TB, target string) *Proxy {
	t.Helper()
	p := &Proxy{target: target}
	p.Server = httptest.NewServer(http.HandlerFunc(p.serve))
	t.Cleanup(p.Close)
	return p
}

// Lose arms the loss of the answer of the next keyed request (after the
// losses armed before). then, when not nil, runs once the server has
// answered and before the connection is closed; a non-empty result is the
// target of every request after it (the test killed the server and points
// the proxy at another).
func (p *Proxy) Lose(then func() string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.losses = append(p.losses, then)
}

// Keyed returns the requests that carried a key, in the order received.
func (p *Proxy) Keyed() []Request {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]Request(nil), p.keyed...)
}

func (p *Proxy) serve(w http.ResponseWriter, r *http.Request) {
	key := r.Header.Get(KeyHeader)
	p.mu.Lock()
	target := p.target
	lose, then := false, func() string { return "" }
	if key != "" {
		p.keyed = append(p.keyed, Request{Method: r.Method, Path: r.URL.Path, Key: key})
		if len(p.losses) > 0 {
			lose = true
			if p.losses[0] != nil {
				then = p.losses[0]
			}
			p.losses = p.losses[1:]
		}
	}
	p.mu.Unlock()

	out, err := http.NewRequestWithContext(r.Context(), r.Method, target+r.URL.RequestURI(), r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	out.Header = r.Header.Clone()
	resp, err := http.DefaultTransport.RoundTrip(out)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	if lose {
		if next := then(); next != "" {
			p.mu.Lock()
			p.target = next
			p.mu.Unlock()
		}
		if conn, _, err := http.NewResponseController(w).Hijack(); err == nil {
			_ = conn.Close()
		}
		return
	}
	for k, v := range resp.Header {
		w.Header()[k] = v
	}
	w.Header().Set("Connection", "close")
	w.WriteHeader(resp.StatusCode)
	_, _ = w.Write(body)
}

// Point sends every request after it to target.
func (p *Proxy) Point(target string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.target = target
}
