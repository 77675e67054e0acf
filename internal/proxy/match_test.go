package proxy_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/shipgate/shipgate/internal/proxy"
	"github.com/shipgate/shipgate/internal/rollout"
)

func TestProxy_MatchSendsInternalUsersToTheCanary(t *testing.T) {
	stable, canary := startApp(t, "v1", nil), startApp(t, "v2", nil)
	p := startProxy(t, proxy.Config{StickyHeader: "X-User"})
	url := "http://" + p.Addr() + "/"
	c := newClient(t)
	tests := []struct {
		name  string
		match rollout.Match
		// set makes request i of user u internal or not.
		set      func(req *http.Request, internal bool)
		internal func(u int) bool
	}{
		{
			name:  "header with values",
			match: rollout.Match{Header: "x-shipgate-internal", Values: []string{"yes", "staff"}},
			set: func(req *http.Request, internal bool) {
				if internal {
					req.Header.Set("X-Shipgate-Internal", "staff")
				} else {
					req.Header.Set("X-Shipgate-Internal", "no")
				}
			},
		},
		{
			name:  "header with any value",
			match: rollout.Match{Header: "X-Employee"},
			set: func(req *http.Request, internal bool) {
				if internal {
					req.Header.Set("X-Employee", "ada")
				}
			},
		},
		{
			name:  "cookie with values",
			match: rollout.Match{Cookie: "beta", Values: []string{"1"}},
			set: func(req *http.Request, internal bool) {
				if internal {
					req.Header.Set("Cookie", "theme=dark; beta=1")
				} else {
					req.Header.Set("Cookie", "theme=dark; beta=0")
				}
			},
		},
		{
			name:  "user list",
			match: rollout.Match{Users: []string{"user-3", "user-7", "user-11"}},
			internal: func(u int) bool {
				return u == 3 || u == 7 || u == 11
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Weight 0: only internal users see the canary.
			setRoutes(t, p, rollout.Routes{Stable: backend("v1", stable), Canary: backend("v2", canary),
				Weight: 0, Seed: "m", Match: &tt.match})
			for u := range 200 {
				internal := u%10 == 3
				if tt.internal != nil {
					internal = tt.internal(u)
				}
				req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, url, nil)
				if err != nil {
					t.Fatal(err)
				}
				req.Header.Set("X-User", fmt.Sprintf("user-%d", u))
				if tt.set != nil {
					tt.set(req, internal)
				}
				want := "v1"
				if internal {
					want = "v2"
				}
				if got := do(t, c, req); got.version != want || got.body != want {
					t.Fatalf("user-%d (internal %v) reached %q, want %q", u, internal, got.version, want)
				}
			}
		})
	}
	// Without a canary, a match has nothing to send users to.
	setRoutes(t, p, rollout.Routes{Stable: backend("v1", stable), Match: &rollout.Match{Header: "X-Employee"}})
	req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Employee", "ada")
	if got := do(t, c, req); got.version != "v1" {
		t.Fatalf("with no canary an internal user reached %q, want v1", got.version)
	}
}

// TestProxy_InternalUsersThenWeightsNeverFlipBack follows 500 users
// through a rollout's routes: internal users only, then 10%, 25% and 50%.
// Internal users are on the canary throughout; every other user stays on
// stable until the weight takes them, then stays on the canary.
func TestProxy_InternalUsersThenWeightsNeverFlipBack(t *testing.T) {
	stable, canary := startApp(t, "v1", nil), startApp(t, "v2", nil)
	p := startProxy(t, proxy.Config{StickyHeader: "X-User", StickyCookie: "uid"})
	url := "http://" + p.Addr() + "/"
	c := newClient(t)
	const users = 500
	// Users 0-9 are listed; users 10-19 send the internal header.
	var listed []string
	for u := range 10 {
		listed = append(listed, fmt.Sprintf("user-%d", u))
	}
	match := &rollout.Match{Header: "X-Internal", Users: listed}
	internal := func(u int) bool { return u < 20 }

	seen := make([][]string, users) // versions each user got, in order
	for _, weight := range []int{0, 10, 25, 50} {
		setRoutes(t, p, rollout.Routes{Stable: backend("v1", stable), Canary: backend("v2", canary),
			Weight: weight, Seed: "rollout-9", Match: match})
		onCanary := 0
		for round := range 2 {
			for u := range users {
				req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, url, nil)
				if err != nil {
					t.Fatal(err)
				}
				key := fmt.Sprintf("user-%d", u)
				if (u+round)%2 == 0 { // both sources of the key, alternately
					req.Header.Set("X-User", key)
				} else {
					req.Header.Set("Cookie", "uid="+key)
				}
				if u >= 10 && u < 20 {
					req.Header.Set("X-Internal", "1")
				}
				got := do(t, c, req)
				if got.status != http.StatusOK {
					t.Fatalf("user-%d at %d%%: status %d", u, weight, got.status)
				}
				seen[u] = append(seen[u], got.version)
				if round == 0 && got.version == "v2" && !internal(u) {
					onCanary++
				}
			}
		}
		if weight == 0 && onCanary != 0 {
			t.Fatalf("at the internal step %d non-internal users reached the canary, want 0", onCanary)
		}
		if share := 100 * float64(onCanary) / (users - 20); weight > 0 && (share < float64(weight)-6 || share > float64(weight)+6) {
			t.Errorf("at %d%% the canary got %.1f%% of the other users", weight, share)
		}
		t.Logf("weight %d%%: %d of %d other users on the canary", weight, onCanary, users-20)
	}
	moved := 0
	for u, versions := range seen {
		joined := strings.Join(versions, " ")
		if internal(u) {
			if strings.Contains(joined, "v1") {
				t.Errorf("internal user-%d left the canary: %s", u, joined)
			}
			continue
		}
		if i := strings.Index(joined, "v2"); i >= 0 {
			if strings.Contains(joined[i:], "v1") {
				t.Errorf("user-%d flipped back to stable: %s", u, joined)
			}
			moved++
		}
	}
	if moved == 0 {
		t.Fatal("no user moved to the canary: the test exercised nothing")
	}
}

func TestProxy_MatchRejectsWhatCannotMatch(t *testing.T) {
	stable, canary := startApp(t, "v1", nil), startApp(t, "v2", nil)
	noKey := startProxy(t, proxy.Config{})
	keyed := startProxy(t, proxy.Config{StickyHeader: "X-User"})
	routes := func(m rollout.Match) rollout.Routes {
		return rollout.Routes{Stable: backend("v1", stable), Canary: backend("v2", canary), Match: &m}
	}
	tests := []struct {
		name  string
		p     *proxy.Proxy
		match rollout.Match
		want  string
	}{
		{"empty", keyed, rollout.Match{}, "match: matches nothing"},
		{"values alone", keyed, rollout.Match{Values: []string{"1"}}, "match.values: values given without a header or cookie"},
		{"bad header", keyed, rollout.Match{Header: "X Internal"}, `match.header: "X Internal" is not a header name`},
		{"bad cookie", keyed, rollout.Match{Cookie: "a;b"}, `match.cookie: "a;b" is not a cookie name`},
		{"users without a user key", noKey, rollout.Match{Users: []string{"u1"}}, "match.users: the router reads no user key"},
		{"empty user", keyed, rollout.Match{Users: []string{"u1", ""}}, "match.users[1]: empty user key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.p.SetRoutes(context.Background(), routes(tt.match))
			if !errors.Is(err, rollout.ErrInvalid) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want one matching rollout.ErrInvalid containing %q", err, tt.want)
			}
		})
	}
}
