package proxy_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/shipgate/shipgate/internal/proxy"
	"github.com/shipgate/shipgate/internal/rollout"
)

func TestProxy_DrainWaitsForRequestsInFlight(t *testing.T) {
	release := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		<-release
		w.WriteHeader(http.StatusOK)
	}))
	defer slow.Close()
	fast := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {}))
	defer fast.Close()
	slowAddr, fastAddr := strings.TrimPrefix(slow.URL, "http://"), strings.TrimPrefix(fast.URL, "http://")

	p := startProxy(t, proxy.Config{Listen: "127.0.0.1:0"})
	ctx := context.Background()
	if err := p.SetRoutes(ctx, rollout.Routes{Stable: rollout.Backend{Version: "v1", Addrs: []string{slowAddr}}}); err != nil {
		t.Fatal(err)
	}
	done := make(chan int, 1)
	go func() {
		resp, err := http.Get("http://" + p.Addr() + "/")
		if err != nil {
			done <- 0
			return
		}
		resp.Body.Close()
		done <- resp.StatusCode
	}()
	for p.InFlight(slowAddr) == 0 {
		time.Sleep(time.Millisecond)
	}
	// The routes move away; the request already sent is still in flight.
	if err := p.SetRoutes(ctx, rollout.Routes{Stable: rollout.Backend{Version: "v2", Addrs: []string{fastAddr}}}); err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if err := p.Drain(short, []string{slowAddr}); err == nil || !strings.Contains(err.Error(), "1 request(s) to "+slowAddr) {
		t.Fatalf("Drain with a request in flight = %v, want an error naming it", err)
	}
	drained := make(chan error, 1)
	go func() { drained <- p.Drain(ctx, []string{slowAddr}) }()
	select {
	case err := <-drained:
		t.Fatalf("Drain returned %v while the request was in flight", err)
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	if err := <-drained; err != nil {
		t.Fatalf("Drain after the request finished: %v", err)
	}
	if code := <-done; code != http.StatusOK {
		t.Fatalf("the drained request got %d, want 200", code)
	}
	if err := p.Drain(ctx, []string{fastAddr}); err != nil {
		t.Fatalf("Drain of an idle address: %v", err)
	}
}
