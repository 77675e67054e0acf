package proxy

import (
	"context"
	"fmt"
	"hash/fnv"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/shipgate/shipgate/internal/rollout"
)

// pickFixture returns a proxy with a 10% canary that is never started: the
// split decision needs only its table.
func pickFixture(tb testing.TB) *Proxy {
	tb.Helper()
	p := New(Config{Env: "bench", StickyHeader: "X-User", StickyCookie: "uid",
		Logger: slog.New(slog.DiscardHandler)})
	err := p.SetRoutes(context.Background(), rollout.Routes{
		Stable: rollout.Backend{Version: "v1", Addrs: []string{"127.0.0.1:1", "127.0.0.1:2"}},
		Canary: rollout.Backend{Version: "v2", Addrs: []string{"127.0.0.1:3"}},
		Weight: 10, Seed: "rollout-1",
	})
	if err != nil {
		tb.Fatal(err)
	}
	return p
}

// pickMatchFixture is pickFixture with internal users and health checks
// on, the most a table makes pick do.
func pickMatchFixture(tb testing.TB) *Proxy {
	tb.Helper()
	p := pickFixture(tb)
	r := p.Routes()
	r.Match = &rollout.Match{Header: "X-Internal", Cookie: "beta", Values: []string{"yes", "1"},
		Users: []string{"user-7", "user-8", "user-9"}}
	r.Health = &rollout.RouteHealth{Path: "/healthz"}
	if err := p.SetRoutes(context.Background(), r); err != nil {
		tb.Fatal(err)
	}
	return p
}

func TestProxy_PickIsAllocationFree(t *testing.T) {
	plain, matching := pickFixture(t), pickMatchFixture(t)
	tests := []struct {
		name   string
		p      *Proxy
		header string
		value  string
		want   string
	}{
		{"header key", plain, "X-User", "user-42", ""},
		{"cookie key", plain, "Cookie", "theme=dark; uid=user-42; lang=en", ""},
		{"quoted cookie key", plain, "Cookie", `uid="user-42"`, ""},
		{"no key", plain, "Accept", "*/*", ""},
		{"match: header key, no match", matching, "X-User", "user-42", ""},
		{"match: listed user", matching, "X-User", "user-8", "v2"},
		{"match: header", matching, "X-Internal", "yes", "v2"},
		{"match: cookie", matching, "Cookie", "theme=dark; beta=1", "v2"},
		{"match: no key", matching, "Accept", "*/*", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := tt.p
			r := httptest.NewRequest(http.MethodGet, "/", nil)
			r.Header.Set(tt.header, tt.value)
			if got := p.table.Load().pick(r, p.stickyHeader, p.stickyCookie).version; tt.want != "" && got != tt.want {
				t.Fatalf("picked %q, want %q", got, tt.want)
			}
			allocs := testing.AllocsPerRun(1000, func() {
				b := p.table.Load().pick(r, p.stickyHeader, p.stickyCookie)
				_ = b.next()
			})
			if allocs != 0 {
				t.Fatalf("pick allocates %.1f times per request, want 0", allocs)
			}
		})
	}
}

func TestProxy_UserKeyFromCookie(t *testing.T) {
	for _, cookie := range []string{"uid=user-42", "a=b; uid=user-42", `uid="user-42"; x=y`} {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.Header.Set("Cookie", cookie)
		key, ok := userKey(r, "", "uid")
		if !ok || key != "user-42" {
			t.Errorf("cookie %q: key %q, %v; want %q", cookie, key, ok, "user-42")
		}
	}
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.Header.Set("Cookie", "xuid=nope; uid=")
	if key, ok := userKey(r, "", "uid"); ok {
		t.Errorf("got key %q from an empty cookie, want none", key)
	}
}

// TestProxy_StickyHashIsStable pins the bucket of a few keys: if it fails,
// every user of a running rollout would change version on upgrade.
func TestProxy_StickyHashIsStable(t *testing.T) {
	for _, s := range []string{"", "a", "rollout-1user-42", "ünïcode"} {
		h := fnv.New64a()
		_, _ = io.WriteString(h, s)
		if got, want := fnv1a(fnvOffset64, s), h.Sum64(); got != want {
			t.Errorf("fnv1a(%q) = %d, hash/fnv says %d", s, got, want)
		}
	}
	tests := []struct {
		seed, key string
		want      uint64
	}{
		{"rollout-1", "user-42", 6532},
		{"rollout-1", "user-43", 8413},
		{"rollout-2", "user-42", 616},
		{"", "", 4342},
	}
	for _, tt := range tests {
		got := stickyBucket(fnv1a(fnvOffset64, tt.seed), tt.key)
		if got != tt.want {
			t.Errorf("bucket(%q, %q) = %d, want %d", tt.seed, tt.key, got, tt.want)
		}
	}
}

func BenchmarkPick(b *testing.B) {
	p := pickFixture(b)
	reqs := make([]*http.Request, 1024)
	for i := range reqs {
		reqs[i] = httptest.NewRequest(http.MethodGet, "/", nil)
		if i%4 != 3 { // most requests carry a user key, some do not
			reqs[i].Header.Set("X-User", fmt.Sprintf("user-%d", i))
		}
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		r := reqs[i%len(reqs)]
		_ = p.table.Load().pick(r, p.stickyHeader, p.stickyCookie).next()
		i++
	}
}

func BenchmarkPickWithMatch(b *testing.B) {
	p := pickMatchFixture(b)
	reqs := make([]*http.Request, 1024)
	for i := range reqs {
		reqs[i] = httptest.NewRequest(http.MethodGet, "/", nil)
		if i%4 != 3 {
			reqs[i].Header.Set("X-User", fmt.Sprintf("user-%d", i))
		}
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		r := reqs[i%len(reqs)]
		_ = p.table.Load().pick(r, p.stickyHeader, p.stickyCookie).next()
		i++
	}
}
