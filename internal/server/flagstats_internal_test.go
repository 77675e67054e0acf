package server

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/shipgate/shipgate/internal/analysis"
	"github.com/shipgate/shipgate/internal/config"
	"github.com/shipgate/shipgate/internal/proxy"
	"github.com/shipgate/shipgate/internal/rollout"
)

// TestAppsFlagStats: a guarded flag rollout measures the flag on every
// app's users, not only the first app's: each app's production router
// (or its only router) counts, the others do not. Real routers, real
// HTTP; the apps are handlers that report the variant they served.
func TestAppsFlagStats(t *testing.T) {
	app := func(variant string, fail bool) string {
		s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("X-Flag-Checkout", variant)
			if fail {
				http.Error(w, "boom", http.StatusInternalServerError)
				return
			}
			_, _ = io.WriteString(w, "ok")
		}))
		t.Cleanup(s.Close)
		return strings.TrimPrefix(s.URL, "http://")
	}
	router := func(env, backend string) *proxy.Proxy {
		p := proxy.New(proxy.Config{Env: env, Listen: "127.0.0.1:0", Logger: slog.New(slog.DiscardHandler)})
		if err := p.Start(t.Context()); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = p.Shutdown(ctx)
		})
		if err := p.SetRoutes(t.Context(), rollout.Routes{Stable: rollout.Backend{Version: "v1", Addrs: []string{backend}}}); err != nil {
			t.Fatal(err)
		}
		return p
	}
	send := func(p *proxy.Proxy, n int) {
		for range n {
			resp, err := http.Get("http://" + p.Addr() + "/")
			if err != nil {
				t.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			_ = resp.Body.Close()
		}
	}
	shopProd, shopStaging := router("production", app("on", true)), router("staging", app("on", false))
	billing := router("production", app("on", false))
	docs := router("preview", app("off", false)) // an app with one environment, not named production

	apps := newApps(nil)
	stats := appsFlagStats{apps: apps}
	if stats.measured() {
		t.Fatal("no app yet, but measured() is true")
	}
	apps.set([]*appPlane{
		{cfg: &config.Config{App: "shop"}, routers: map[string]Router{"production": shopProd, "staging": shopStaging}},
		{cfg: &config.Config{App: "billing"}, routers: map[string]Router{"production": billing}},
		{cfg: &config.Config{App: "docs"}, routers: map[string]Router{"preview": docs}},
	})
	if !stats.measured() {
		t.Fatal("three apps with routers, but measured() is false")
	}
	send(shopProd, 3)
	send(shopStaging, 7) // not production: not counted
	send(billing, 4)
	send(docs, 2)

	// A router counts a request once its handler returns, which may be
	// just after the client has read the answer: look until the counts
	// settle, up to a deadline.
	var on, off analysis.Sample
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		got, err := stats.FlagStats(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		on, off = got["checkout"]["on"], got["checkout"]["off"]
		if on.Requests+off.Requests >= 9 || time.Now().After(deadline) {
			break
		}
	}
	if on.Requests != 7 || on.Status5xx != 3 {
		t.Errorf("checkout=on: %d requests, %d 5xx; want shop's production 3 (all 5xx) + billing's 4", on.Requests, on.Status5xx)
	}
	if off.Requests != 2 {
		t.Errorf("checkout=off: %d requests, want docs' only router's 2", off.Requests)
	}
}
