package server

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/shipgate/shipgate/internal/config"
	"github.com/shipgate/shipgate/internal/proxy"
)

// TestRouterDir_ReusesAnAppsRouterOnceAlone: a server of several apps
// whose environment names are shared keeps each app's router in
// <data>/apps/<app>. Restarted with one of those apps alone (-f
// apps/alpha.yaml, as a new user did after a server of several apps was
// refused on PostgreSQL), the server looked for the router at the top of
// the data dir only, started another one there, which could not listen on
// the address alpha's router still held: the server did not start, and
// the way out was to kill a router by hand. A router running in
// <data>/apps/<app> on the environment's address is the app's: reuse it.
func TestRouterDir_ReusesAnAppsRouterOnceAlone(t *testing.T) {
	data, err := os.MkdirTemp("", "sg-rd") // short: a unix socket path is at most 108 bytes
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(data) })
	perApp := filepath.Join(data, "apps", "alpha")
	if err := os.MkdirAll(perApp, 0o700); err != nil {
		t.Fatal(err)
	}
	alpha := &config.Config{App: "alpha", Environments: map[string]*config.Environment{"production": {Listen: "127.0.0.1:0"}}}
	beta := &config.Config{App: "beta", Environments: map[string]*config.Environment{"production": {Listen: "127.0.0.2:0"}}}

	// Nothing runs: alone, an app's router goes at the top; shared, in its dir.
	if got := routerDir(t.Context(), data, alpha, "production", []*config.Config{alpha}); got != data {
		t.Fatalf("alone, nothing running: %s, want %s", got, data)
	}
	if got := routerDir(t.Context(), data, alpha, "production", []*config.Config{alpha, beta}); got != perApp {
		t.Fatalf("shared, nothing running: %s, want %s", got, perApp)
	}

	// alpha's router, started by the server of several apps, still runs.
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		done <- proxy.RunProcess(ctx, proxy.ProcessConfig{Env: "production", Listen: "127.0.0.1:0",
			StateFile: filepath.Join(perApp, "router-production.json"), ControlSocket: proxy.ControlSocketPath(perApp, "production")})
	}()
	t.Cleanup(func() { cancel(); <-done })
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := proxy.Dial(t.Context(), proxy.ControlSocketPath(perApp, "production"))
		if err == nil {
			_, err = c.Info(t.Context())
			_ = c.Close()
		}
		if err == nil {
			break
		}
		select {
		case err := <-done:
			t.Fatalf("router ended: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("router never answered: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}

	if got := routerDir(t.Context(), data, alpha, "production", []*config.Config{alpha}); got != perApp {
		t.Fatalf("alone, its router running in %s: %s, want it reused there", perApp, got)
	}
	if got := routerDir(t.Context(), data, alpha, "production", []*config.Config{alpha, beta}); got != perApp {
		t.Fatalf("shared, its router running: %s, want %s", got, perApp)
	}
	// Another address is another app's router (or a stale one): not reused.
	other := &config.Config{App: "alpha", Environments: map[string]*config.Environment{"production": {Listen: "127.0.0.3:0"}}}
	if got := routerDir(t.Context(), data, other, "production", []*config.Config{other}); got != data {
		t.Fatalf("alone, a router on another address in %s: %s, want %s", perApp, got, data)
	}
}
