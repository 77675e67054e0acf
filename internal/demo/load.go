package demo

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// VersionHeader is the response header in which the builtin router names
// the version that answered.
const VersionHeader = "X-Shipgate-Version"

// Load sends steady synthetic shop traffic through a router: many distinct
// users (X-User-ID), a mix of browsing, carts and payments, at a fixed
// rate. It counts what each version served and failed, as users saw it.
type Load struct {
	// URL is the router's base URL.
	URL string
	// Rate is requests per second. Default 150.
	Rate int
	// Users is the number of distinct users. Default 2000.
	Users int
	// Workers bounds the requests in flight. Default 32.
	Workers int

	client   *http.Client
	mu       sync.Mutex
	counts   map[string]*VersionCount
	lastSent map[string]time.Time
	fails    []Failure
	total    atomic.Uint64
	wg       sync.WaitGroup
	stop     context.CancelFunc
}

// VersionCount is what one version did for users.
type VersionCount struct {
	Served uint64 `json:"served"`
	Failed uint64 `json:"failed"`
}

// Failure is one request a user saw fail.
type Failure struct {
	At      time.Time `json:"at"`
	Version string    `json:"version"`
	Path    string    `json:"path"`
	Status  int       `json:"status"`
}

// Start begins sending traffic until Stop.
func (l *Load) Start(ctx context.Context) {
	if l.Rate <= 0 {
		l.Rate = 150
	}
	if l.Users <= 0 {
		l.Users = 2000
	}
	if l.Workers <= 0 {
		l.Workers = 32
	}
	l.client = &http.Client{
		Timeout:   10 * time.Second,
		Transport: &http.Transport{MaxIdleConnsPerHost: l.Workers, MaxConnsPerHost: l.Workers},
	}
	l.counts = map[string]*VersionCount{}
	l.lastSent = map[string]time.Time{}
	ctx, l.stop = context.WithCancel(ctx)
	jobs := make(chan struct{}, l.Workers)
	for range l.Workers {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for range jobs {
				l.one(ctx)
			}
		}()
	}
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		defer close(jobs)
		interval := time.Second / time.Duration(l.Rate)
		next := time.Now()
		for {
			next = next.Add(interval)
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Until(next)):
			}
			select {
			case jobs <- struct{}{}:
			default: // every worker is busy: skip rather than pile up
			}
		}
	}()
}

// Stop stops sending and waits for requests in flight.
func (l *Load) Stop() {
	if l.stop != nil {
		l.stop()
	}
	l.wg.Wait()
}

func (l *Load) one(ctx context.Context) {
	user := fmt.Sprintf("user-%d", rand.IntN(l.Users))
	method, path := http.MethodGet, "/products"
	switch p := rand.IntN(10); {
	case p < 2:
		method, path = http.MethodPost, "/cart"
	case p < 5:
		method, path = http.MethodPost, "/pay"
	}
	req, err := http.NewRequestWithContext(context.WithoutCancel(ctx), method, l.URL+path, nil)
	if err != nil {
		return
	}
	req.Header.Set("X-User-ID", user)
	sent := time.Now()
	resp, err := l.client.Do(req)
	version, status := "unknown", 0
	if err == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		status = resp.StatusCode
		if v := resp.Header.Get(VersionHeader); v != "" {
			version = v
		}
	}
	l.total.Add(1)
	l.mu.Lock()
	defer l.mu.Unlock()
	c := l.counts[version]
	if c == nil {
		c = &VersionCount{}
		l.counts[version] = c
	}
	c.Served++
	if sent.After(l.lastSent[version]) {
		l.lastSent[version] = sent
	}
	if err != nil || status >= 500 {
		c.Failed++
		l.fails = append(l.fails, Failure{At: time.Now(), Version: version, Path: path, Status: status})
	}
}

// Counts returns a copy of the counts per version.
func (l *Load) Counts() map[string]VersionCount {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make(map[string]VersionCount, len(l.counts))
	for v, c := range l.counts {
		out[v] = *c
	}
	return out
}

// Failures returns the failed requests so far.
func (l *Load) Failures() []Failure {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]Failure(nil), l.fails...)
}

// FailedSince counts the failed requests at or after t.
func (l *Load) FailedSince(t time.Time) int {
	n := 0
	for _, f := range l.Failures() {
		if !f.At.Before(t) {
			n++
		}
	}
	return n
}

// LastSent returns when the last request that version answered was sent.
func (l *Load) LastSent(version string) time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lastSent[version]
}

// Total returns how many requests were sent.
func (l *Load) Total() uint64 { return l.total.Load() }
