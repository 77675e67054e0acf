package proxy_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/shipgate/shipgate/internal/proxy"
	"github.com/shipgate/shipgate/internal/rollout"
)

// manualClock is a time the test moves.
type manualClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *manualClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *manualClock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// Window counts from the first mark at or after since: the proxy's start,
// a routing change, or the first window asked to start later.
func TestProxy_Window(t *testing.T) {
	ctx := context.Background()
	clk := &manualClock{now: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	stable, canary := startApp(t, "v1", nil), startApp(t, "v2", nil)
	p := startProxy(t, proxy.Config{Now: clk.Now})
	url, c := "http://"+p.Addr(), newClient(t)

	setRoutes(t, p, rollout.Routes{Stable: backend("v1", stable), Canary: backend("v2", canary), Weight: 100})
	for range 4 {
		send(t, c, url+"/", "")
	}
	clk.add(time.Minute)
	bakeStart := clk.Now()
	if s, err := p.Window(ctx, "v2", bakeStart); err != nil || s.Requests != 0 {
		t.Fatalf("a window that starts now = %d requests, %v; want 0", s.Requests, err)
	}
	for range 3 {
		send(t, c, url+"/", "")
	}
	clk.add(time.Minute)
	if s, _ := p.Window(ctx, "v2", bakeStart); s.Requests != 3 {
		t.Fatalf("window since the bake started = %d requests, want 3", s.Requests)
	}
	if s, _ := p.Window(ctx, "v2", time.Time{}); s.Requests != 7 {
		t.Fatalf("window since the proxy started = %d requests, want 7", s.Requests)
	}
	if s, _ := p.Window(ctx, "v1", bakeStart); s.Requests != 0 {
		t.Fatalf("stable got %d requests at weight 100", s.Requests)
	}
}

func TestProxy_VerifyRoutes(t *testing.T) {
	ctx := context.Background()
	stable, canary := startApp(t, "v1", nil), startApp(t, "v2", nil)
	p := startProxy(t, proxy.Config{})
	r := rollout.Routes{Stable: backend("v1", stable), Canary: backend("v2", canary), Weight: 20, Seed: "s"}
	setRoutes(t, p, r)
	if err := p.VerifyRoutes(ctx, r); err != nil {
		t.Fatalf("VerifyRoutes of the table set: %v", err)
	}
	other := r
	other.Weight = 50
	if err := p.VerifyRoutes(ctx, other); err == nil || errors.Is(err, rollout.ErrNotReady) {
		t.Fatalf("VerifyRoutes of another table: %v, want an error that is not ErrNotReady", err)
	}
}
