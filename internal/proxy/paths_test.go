package proxy

import (
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/shipgate/shipgate/internal/rollout"
)

func TestPrefixes(t *testing.T) {
	for path, want := range map[string][2]string{
		"/":                 {"/", ""},
		"/healthz":          {"/healthz", ""},
		"/api/":             {"/api", ""},
		"/api/v1/orders/12": {"/api", "/api/v1"},
	} {
		if one, two := prefixes(path); one != want[0] || two != want[1] {
			t.Errorf("prefixes(%q) = %q, %q, want %q", path, one, two, want)
		}
	}
	if got := CountedPrefix("/api/v1/legacy/orders"); got != "/api/v1" {
		t.Errorf("CountedPrefix = %q", got)
	}
	if !Covers("/api/v1", "/api/v1/x") || Covers("/api/v1", "/api/v10") || !Covers("/api/v1/", "/api/v1") {
		t.Error("Covers")
	}
}

// TestProxy_RetiredPathAnswersGone: through a real proxy and backend, a
// retired prefix is answered 410 without reaching the backend, and every
// request is counted per prefix.
func TestProxy_RetiredPathAnswersGone(t *testing.T) {
	var backendHits atomic.Int64
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		backendHits.Add(1)
		_, _ = io.WriteString(w, "ok")
	}))
	defer backend.Close()
	p := New(Config{Env: "production"})
	if err := p.SetRoutes(t.Context(), rollout.Routes{Stable: rollout.Backend{Version: "1.0.0", Addrs: []string{backend.Listener.Addr().String()}}}); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(p)
	defer srv.Close()
	get := func(path string) int {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		_, _ = io.Copy(io.Discard, resp.Body)
		return resp.StatusCode
	}
	if got := get("/api/v1/legacy"); got != http.StatusOK {
		t.Fatalf("before retiring: %d", got)
	}
	p.SetGone([]string{"/api/v1"})
	if got := get("/api/v1/legacy/orders"); got != http.StatusGone {
		t.Fatalf("retired: %d, want 410", got)
	}
	if got := get("/api/v2/orders"); got != http.StatusOK {
		t.Fatalf("a sibling: %d, want 200", got)
	}
	if backendHits.Load() != 2 {
		t.Fatalf("backend saw %d requests, want 2 (the 410 never reaches it)", backendHits.Load())
	}
	stats, overflow := p.PathStats()
	if stats["/api/v1"].Count != 2 || stats["/api"].Count != 3 || stats["/api/v2"].Count != 1 || overflow {
		t.Fatalf("path stats = %+v (overflow %v)", stats, overflow)
	}
	p.SetGone(nil)
	if got := get("/api/v1/legacy"); got != http.StatusOK {
		t.Fatalf("re-enabled: %d", got)
	}
}

// BenchmarkPathRegistry_Serve is the cost the per-prefix counting adds to
// each request.
func BenchmarkPathRegistry_Serve(b *testing.B) {
	var pr pathRegistry
	pr.gone.Store(&[]string{"/api/v1/legacy"})
	req := httptest.NewRequest(http.MethodGet, "/api/v2/orders/12", nil)
	w := httptest.NewRecorder()
	b.ReportAllocs()
	for b.Loop() {
		pr.serve(w, req)
	}
}
