package proxy_test

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/shipgate/shipgate/internal/proxy"
	"github.com/shipgate/shipgate/internal/rollout"
)

// TestProxy_SlowBodyClientIsCut is defect 11 of issue 10: a client that
// sends its headers and then its body never (or a byte at a time) held a
// router connection, and a file descriptor, for ever. ReadTimeout ends it.
func TestProxy_SlowBodyClientIsCut(t *testing.T) {
	p := startProxy(t, proxy.Config{ReadTimeout: 300 * time.Millisecond})
	stable := startApp(t, "v1", nil)
	setRoutes(t, p, rollout.Routes{Stable: backend("v1", stable)})

	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, "POST /pay HTTP/1.1\r\nHost: shop\r\nContent-Length: 1000\r\n\r\nx"); err != nil {
		t.Fatal(err)
	}
	// The body never comes. The router must give up on it and close the
	// connection; the test gives up long after the read timeout.
	_ = c.SetReadDeadline(time.Now().Add(20 * time.Second))
	_, err = io.Copy(io.Discard, bufio.NewReader(c))
	if errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatal("the router still holds the slow-body connection after 20s")
	}
}

// TestProxy_ConnectionLimit holds MaxConns connections open: the next one
// gets no answer until one of them closes.
func TestProxy_ConnectionLimit(t *testing.T) {
	p := startProxy(t, proxy.Config{MaxConns: 2})
	stable := startApp(t, "v1", nil)
	setRoutes(t, p, rollout.Routes{Stable: backend("v1", stable)})

	var held []net.Conn
	for range 2 {
		c, err := net.Dial("tcp", p.Addr())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		// A request and its answer, so the connection is surely accepted.
		if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: shop\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		held = append(held, c)
	}
	third := &http.Client{Timeout: 300 * time.Millisecond}
	if resp, err := third.Get("http://" + p.Addr() + "/"); err == nil {
		resp.Body.Close()
		t.Fatal("a third connection was served while two were held, with MaxConns 2")
	}
	held[0].Close()
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get("http://" + p.Addr() + "/")
	if err != nil {
		t.Fatalf("no answer once a held connection closed: %v", err)
	}
	resp.Body.Close()
}
