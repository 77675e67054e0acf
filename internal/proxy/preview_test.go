package proxy_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/shipgate/shipgate/internal/proxy"
	"github.com/shipgate/shipgate/internal/rollout"
)

func TestProxy_PreviewListenerServesThePreviewOnly(t *testing.T) {
	stable, canary, green := startApp(t, "v1", nil), startApp(t, "v2", nil), startApp(t, "v3", nil)
	p := startProxy(t, proxy.Config{Env: "production", StickyHeader: "X-User", PreviewListen: "127.0.0.1:0"})
	if p.PreviewAddr() == "" || p.PreviewAddr() == p.Addr() {
		t.Fatalf("preview address %q, user address %q: want two listeners", p.PreviewAddr(), p.Addr())
	}
	users, preview := "http://"+p.Addr()+"/", "http://"+p.PreviewAddr()+"/"
	c := newClient(t)

	setRoutes(t, p, rollout.Routes{Stable: backend("v1", stable)})
	if got := send(t, c, preview, ""); got.status != http.StatusServiceUnavailable || got.body != "no preview release\n" {
		t.Fatalf("preview without a release: %d %q, want 503 %q", got.status, got.body, "no preview release\n")
	}

	// A canary at 10% and a preview of another release: the preview
	// listener sends everyone to the preview, users never reach it.
	setRoutes(t, p, rollout.Routes{Stable: backend("v1", stable), Canary: backend("v2", canary), Weight: 10,
		Seed: "p", Preview: backend("v3", green)})
	for u := range 100 {
		key := fmt.Sprintf("user-%d", u)
		if got := send(t, c, preview, key); got.status != http.StatusOK || got.version != "v3" || got.body != "v3" {
			t.Fatalf("preview for %s: %d from %q, want 200 from v3", key, got.status, got.version)
		}
		if got := send(t, c, users, key); got.version == "v3" || got.status != http.StatusOK {
			t.Fatalf("user %s: %d from %q, want 200 from v1 or v2", key, got.status, got.version)
		}
	}
	if n := green.arrivals.Load(); n != 100 {
		t.Fatalf("the preview release got %d requests, want the 100 preview ones", n)
	}

	// Preview traffic is smoke traffic: it is not in Stats, nor judged.
	stats, err := p.Stats(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := stats["v3"]; ok {
		t.Errorf("Stats has the preview release: %v", stats)
	}
	if got := stats["v1"].Requests + stats["v2"].Requests; got != 100 {
		t.Errorf("Stats count %d user requests, want 100", got)
	}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(p.Collector())
	const want = `
# HELP shipgate_router_preview_requests_total Requests the preview listener finished, by version and status class; kept apart from the users' requests.
# TYPE shipgate_router_preview_requests_total counter
shipgate_router_preview_requests_total{code="2xx",env="production",version="none"} 0
shipgate_router_preview_requests_total{code="3xx",env="production",version="none"} 0
shipgate_router_preview_requests_total{code="4xx",env="production",version="none"} 0
shipgate_router_preview_requests_total{code="5xx",env="production",version="none"} 1
shipgate_router_preview_requests_total{code="transport_error",env="production",version="none"} 0
shipgate_router_preview_requests_total{code="2xx",env="production",version="v3"} 100
shipgate_router_preview_requests_total{code="3xx",env="production",version="v3"} 0
shipgate_router_preview_requests_total{code="4xx",env="production",version="v3"} 0
shipgate_router_preview_requests_total{code="5xx",env="production",version="v3"} 0
shipgate_router_preview_requests_total{code="transport_error",env="production",version="v3"} 0
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "shipgate_router_preview_requests_total"); err != nil {
		t.Fatal(err)
	}
	if problems, err := testutil.GatherAndLint(reg); err != nil || len(problems) != 0 {
		t.Fatalf("lint: %v %v", problems, err)
	}
}

func TestProxy_PreviewListenerShutsDown(t *testing.T) {
	green := startApp(t, "v3", nil)
	p := proxy.New(proxy.Config{Env: "test", Listen: "127.0.0.1:0", PreviewListen: "127.0.0.1:0",
		Logger: slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))})
	if err := p.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	setRoutes(t, p, rollout.Routes{Preview: backend("v3", green)})
	url := "http://" + p.PreviewAddr() + "/"
	if got := send(t, newClient(t), url, ""); got.version != "v3" {
		t.Fatalf("preview answered from %q, want v3", got.version)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := p.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := tryGet(newClient(t), url, ""); err == nil {
		t.Fatal("the preview listener still accepts requests after Shutdown")
	}
}
