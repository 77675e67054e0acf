package server_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shipgate/shipgate/internal/config"
	"github.com/shipgate/shipgate/internal/server"
)

// startWith starts a control plane with in-process routers and opts; the
// test closes it.
func startWith(t *testing.T, opts server.Options) *server.ControlPlane {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "shipgate.yaml")
	if err := os.WriteFile(path, []byte(fmt.Sprintf(testConfig, shopBin, freePort(t), quickSteps)), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	opts.Config, opts.DataDir, opts.Listen = cfg, filepath.Join(dir, "data"), "127.0.0.1:0"
	opts.Logger = slog.New(slog.DiscardHandler)
	cp, err := server.Start(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	return cp
}

// slowBody sends the headers of a deploy with the admin token and one
// byte of its 1000-byte body, and never the rest.
func slowBody(t *testing.T, cp *server.ControlPlane) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", strings.TrimPrefix(cp.APIURL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if _, err := fmt.Fprintf(c, "POST /v1/deploys HTTP/1.1\r\nHost: api\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{", cp.AdminToken); err != nil {
		t.Fatal(err)
	}
	return c
}

// closedWithin reports whether the server closed c (after answering or
// not) within d.
func closedWithin(c net.Conn, d time.Duration) bool {
	_ = c.SetReadDeadline(time.Now().Add(d))
	_, err := io.Copy(io.Discard, bufio.NewReader(c))
	return !errors.Is(err, os.ErrDeadlineExceeded)
}

// TestServer_SlowBodyClients is defect 11 of issue 10 for the API: a
// client that sends a body slowly was held for ever, and three of them
// delayed the server's shutdown by 30s.
func TestServer_SlowBodyClients(t *testing.T) {
	t.Run("cut after the read timeout", func(t *testing.T) {
		cp := startWith(t, server.Options{ReadTimeout: 300 * time.Millisecond})
		defer cp.Close(context.Background())
		c := slowBody(t, cp)
		if !closedWithin(c, 20*time.Second) {
			t.Fatal("the API still holds a slow-body connection 20s after its 300ms read timeout")
		}
	})
	t.Run("do not hold up shutdown", func(t *testing.T) {
		cp := startWith(t, server.Options{})
		var conns []net.Conn
		for range 3 {
			conns = append(conns, slowBody(t, cp))
		}
		// Each request is in its handler, reading the body, once the
		// API answers another request on a new connection after them.
		c := slowBody(t, cp)
		c.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		start := time.Now()
		_ = cp.Close(ctx)
		if took := time.Since(start); took > 20*time.Second {
			t.Fatalf("Close took %s with three slow-body clients; want the 5s grace", took)
		}
		for i, c := range conns {
			if !closedWithin(c, 5*time.Second) {
				t.Errorf("slow-body connection %d still open after Close", i)
			}
		}
	})
}
