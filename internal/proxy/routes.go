package proxy

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httputil"
	"net/textproto"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"

	"github.com/shipgate/shipgate/internal/rollout"
)

// numBuckets is how finely users are split: one bucket is 0.01% of users,
// and a weight of w percent sends buckets [0, w×100) to the canary.
const numBuckets = 10000

// table is one immutable routing table. SetRoutes builds a new one and
// swaps it in; a request keeps the backend it picked from the table it
// loaded, so a swap never moves a request in flight.
type table struct {
	// routes is the table as it was set, for Routes and the state file.
	routes  rollout.Routes
	stable  *backendSet // nil when there is no live stable version
	canary  *backendSet // nil when there is no canary
	preview *backendSet // nil when there is no preview release
	// match selects the requests that go to the canary whatever the
	// weight; nil when there is no canary or no Match.
	match *matcher
	// health is the active health check, with defaults filled in; nil
	// when the routes ask for none.
	health *rollout.RouteHealth
	// threshold is Weight×100: buckets below it go to the canary.
	threshold uint64
	// seedHash is the FNV-1a state after hashing Routes.Seed, so the hot
	// path hashes only the user key.
	seedHash uint64
	weight   int
}

// sets returns the table's backend sets that exist.
func (t *table) sets() []*backendSet {
	out := make([]*backendSet, 0, 3)
	for _, b := range []*backendSet{t.stable, t.canary, t.preview} {
		if b != nil {
			out = append(out, b)
		}
	}
	return out
}

// backendSet is the instances of one version in a table.
type backendSet struct {
	role    string // stable, canary or preview, for logs
	version string
	// versionValue is the X-Shipgate-Version header value, built once so
	// the hot path does not allocate it. Responses share it, so its
	// capacity is 1: an append down the line copies instead of writing
	// into it.
	versionValue []string
	stats        *versionStats
	targets      []*target // one per address, in the order given
	// live is the targets that get new requests: all but the ejected
	// ones. The health checker replaces it when an address is ejected
	// or readmitted; it is never empty.
	live atomic.Pointer[[]*target]
	rr   atomic.Uint64 // round-robin cursor over live
}

// target is one address of a version.
type target struct {
	proxy *httputil.ReverseProxy
	state *addrState
	// inflight counts the requests on their way to the address, across
	// tables: Drain waits for it.
	inflight *atomic.Int64
}

// next returns the next live address of the version, round-robin.
func (b *backendSet) next() *target {
	live := *b.live.Load()
	if len(live) == 1 {
		return live[0]
	}
	return live[(b.rr.Add(1)-1)%uint64(len(live))]
}

// publishLive recomputes which targets get new requests from their
// ejected flags. If every address were ejected it keeps them all, but the
// health checker never lets that happen.
func (b *backendSet) publishLive() {
	live := make([]*target, 0, len(b.targets))
	for _, t := range b.targets {
		if !t.state.ejected.Load() {
			live = append(live, t)
		}
	}
	if len(live) == 0 {
		live = append(live, b.targets...)
	}
	b.live.Store(&live)
}

// pick returns the backend set a request goes to, or nil when no version
// is live. A request that the table's match selects goes to the canary. A
// request with a user key lands in a bucket fixed by the seed and the key,
// so its user stays on one version while the weight grows; a request
// without one is split at random with the same odds.
func (t *table) pick(r *http.Request, header, cookie string) *backendSet {
	switch {
	case t.canary == nil:
		return t.stable
	case t.stable == nil:
		return t.canary
	}
	key, hasKey := userKey(r, header, cookie)
	if t.match != nil && t.match.matches(r, key, hasKey) {
		return t.canary
	}
	var bucket uint64
	if hasKey {
		bucket = stickyBucket(t.seedHash, key)
	} else {
		bucket = rand.Uint64N(numBuckets)
	}
	if bucket < t.threshold {
		return t.canary
	}
	return t.stable
}

// matcher is a rollout.Match compiled for the hot path: a canonical header
// name and sets, so that matching a request is a few map lookups.
type matcher struct {
	header string              // canonical; "" when the match reads no header
	cookie string              // "" when the match reads no cookie
	values map[string]struct{} // nil means any non-empty value
	users  map[string]struct{} // nil when the match lists no user
}

func newMatcher(m *rollout.Match) *matcher {
	if m == nil {
		return nil
	}
	out := &matcher{cookie: m.Cookie}
	if m.Header != "" {
		out.header = textproto.CanonicalMIMEHeaderKey(m.Header)
	}
	if len(m.Values) > 0 {
		out.values = make(map[string]struct{}, len(m.Values))
		for _, v := range m.Values {
			out.values[v] = struct{}{}
		}
	}
	if len(m.Users) > 0 {
		out.users = make(map[string]struct{}, len(m.Users))
		for _, u := range m.Users {
			out.users[u] = struct{}{}
		}
	}
	return out
}

// matches reports whether a request comes from an internal user: it has
// the header or the cookie with one of the values (any non-empty value
// when none are listed), or its user key is listed.
func (m *matcher) matches(r *http.Request, key string, hasKey bool) bool {
	if hasKey && m.users != nil {
		if _, ok := m.users[key]; ok {
			return true
		}
	}
	if m.header != "" {
		for _, v := range r.Header[m.header] {
			if m.valueMatches(v) {
				return true
			}
		}
	}
	if m.cookie != "" {
		if v, ok := cookieValue(r, m.cookie); ok && m.valueMatches(v) {
			return true
		}
	}
	return false
}

func (m *matcher) valueMatches(v string) bool {
	if v == "" {
		return false
	}
	if m.values == nil {
		return true
	}
	_, ok := m.values[v]
	return ok
}

// userKey returns the request's user key from the sticky header, or else
// from the sticky cookie.
func userKey(r *http.Request, header, cookie string) (string, bool) {
	if header != "" {
		if v := r.Header[header]; len(v) > 0 && v[0] != "" {
			return v[0], true
		}
	}
	if cookie == "" {
		return "", false
	}
	return cookieValue(r, cookie)
}

// cookieValue returns the non-empty value of the named cookie. It reads
// the Cookie header by hand because http.Request.Cookie parses and
// allocates every cookie of the request.
func cookieValue(r *http.Request, name string) (string, bool) {
	for _, line := range r.Header["Cookie"] {
		for line != "" {
			var part string
			part, line, _ = strings.Cut(line, ";")
			n, value, ok := strings.Cut(strings.TrimSpace(part), "=")
			if !ok || n != name {
				continue
			}
			if len(value) >= 2 && value[0] == '"' && value[len(value)-1] == '"' {
				value = value[1 : len(value)-1]
			}
			if value != "" {
				return value, true
			}
		}
	}
	return "", false
}

// FNV-1a 64-bit parameters, as in hash/fnv. The hash is fixed by its
// definition, so a user keeps their bucket across processes, restarts and
// Go versions; TestProxy_StickyHashIsStable pins it.
const (
	fnvOffset64 = 14695981039346656037
	fnvPrime64  = 1099511628211
)

// fnv1a continues an FNV-1a 64 hash of h over s.
func fnv1a(h uint64, s string) uint64 {
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= fnvPrime64
	}
	return h
}

// stickyBucket returns the bucket of a user key: FNV-1a of seed+key,
// finished with the murmur3 mixer. FNV-1a alone leaves its low bits
// depending only on the low bits of each input byte, and the modulo reads
// the low bits; the mixer spreads every input bit over all of them.
func stickyBucket(seedHash uint64, key string) uint64 {
	h := fnv1a(seedHash, key)
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	h *= 0xc4ceb9fe1a85ec53
	h ^= h >> 33
	return h % numBuckets
}

// SetRoutes replaces the whole routing table at once. Requests in flight
// finish on the backend they started on; requests that arrive after
// SetRoutes returns use the new table. Setting the same routes twice is
// harmless. Invalid routes return an error matching rollout.ErrInvalid and
// leave the table as it was.
//
// Weight splits users between the two versions when both are set. When
// only one version is set it gets every request whatever the weight, since
// sending users nowhere is never better; with neither, the proxy answers
// 503. Match sends the requests it selects to the canary whatever the
// weight. Preview is what the preview listener serves. Health, when set,
// makes the proxy check every address and take the failing ones out of
// rotation (see Health); an address new to the table starts in rotation.
func (p *Proxy) SetRoutes(ctx context.Context, r rollout.Routes) error {
	if err := p.validateRoutes(r); err != nil {
		return fmt.Errorf("set routes: %w", err)
	}
	r = cloneRoutes(r)
	p.warm(ctx, r)
	p.routesMu.Lock()
	defer p.routesMu.Unlock()
	t := &table{
		routes:   r,
		stable:   p.newBackendSet("stable", r.Stable, p.stats),
		canary:   p.newBackendSet("canary", r.Canary, p.stats),
		preview:  p.newBackendSet("preview", r.Preview, p.previewStats),
		weight:   r.Weight,
		seedHash: fnv1a(fnvOffset64, r.Seed),
		health:   withHealthDefaults(r.Health),
	}
	if t.canary == nil {
		t.weight = 0
	} else {
		t.match = newMatcher(r.Match)
	}
	t.threshold = uint64(t.weight) * (numBuckets / 100) //nolint:gosec // validateRoutes keeps the weight in 0..100
	ejected := p.reconcileHealth(t)
	p.table.Store(t)
	p.stampEjected(ejected)
	p.forgetAddrs(t)
	select {
	case p.routesChanged <- struct{}{}:
	default:
	}
	p.mark()
	p.logger.Info("routes set", "env", p.env, "stable", r.Stable.Version,
		"canary", r.Canary.Version, "weight", t.weight, "match", r.Match != nil,
		"preview", r.Preview.Version, "health_checks", r.Health != nil)
	return nil
}

// Routes returns the routing table the proxy serves with.
func (p *Proxy) Routes() rollout.Routes { return cloneRoutes(p.table.Load().routes) }

// cloneRoutes returns a copy of r that shares no slice or pointer with it,
// so that neither the caller nor the proxy can change the other's copy.
func cloneRoutes(r rollout.Routes) rollout.Routes {
	r.Stable.Addrs = slices.Clone(r.Stable.Addrs)
	r.Canary.Addrs = slices.Clone(r.Canary.Addrs)
	r.Preview.Addrs = slices.Clone(r.Preview.Addrs)
	if r.Match != nil {
		m := *r.Match
		m.Values, m.Users = slices.Clone(m.Values), slices.Clone(m.Users)
		r.Match = &m
	}
	if r.Health != nil {
		h := *r.Health
		r.Health = &h
	}
	return r
}

// newBackendSet builds the backends of one version, or returns nil for an
// empty Backend. The version's counters come from reg, so they carry on
// from earlier tables; each address's health state comes from the proxy,
// so it carries on too.
func (p *Proxy) newBackendSet(role string, be rollout.Backend, reg *statsRegistry) *backendSet {
	if be.Version == "" {
		return nil
	}
	b := &backendSet{
		role:         role,
		version:      be.Version,
		versionValue: []string{be.Version}[:1:1],
		stats:        reg.get(be.Version),
	}
	for _, addr := range be.Addrs {
		b.targets = append(b.targets, &target{proxy: p.newReverseProxy(addr, b), state: p.addrState(addr), inflight: p.inflightFor(addr)})
	}
	return b
}

// newReverseProxy returns the reverse proxy to one address of version b.
// It keeps the client's Host header, as if the client had called the app
// itself, and says who the client was in X-Forwarded-For, -Host and -Proto.
// The version header is set on the final response rather than up front,
// because ReverseProxy clears the response headers after a 1xx.
func (p *Proxy) newReverseProxy(addr string, b *backendSet) *httputil.ReverseProxy {
	target := &url.URL{Scheme: "http", Host: addr}
	return &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.Out.Host = pr.In.Host
			pr.SetXForwarded()
		},
		ModifyResponse: func(res *http.Response) error {
			res.Header[versionHeader] = b.versionValue
			return nil
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			w.Header()[versionHeader] = b.versionValue
			p.handleError(w, r, b.version, err)
		},
		Transport:  p.transport,
		BufferPool: p.bufPool,
		ErrorLog:   p.stdLog,
	}
}

// validateRoutes checks a table before it goes live: a weight is a
// percentage, a version has instances and instances belong to a version,
// a match can match something this proxy can see, and a health check has
// a path and no negative durations.
func (p *Proxy) validateRoutes(r rollout.Routes) error {
	if r.Weight < 0 || r.Weight > 100 {
		return &rollout.FieldError{Field: "weight",
			Message: fmt.Sprintf("%d is not a percentage; use 0 to 100", r.Weight)}
	}
	for _, be := range []struct {
		field string
		b     rollout.Backend
	}{{"stable", r.Stable}, {"canary", r.Canary}, {"preview", r.Preview}} {
		switch {
		case be.b.Version == "" && len(be.b.Addrs) > 0:
			return &rollout.FieldError{Field: be.field + ".version",
				Message: "addresses given without a version; name the version they run"}
		case be.b.Version != "" && len(be.b.Addrs) == 0:
			return &rollout.FieldError{Field: be.field + ".addrs",
				Message: fmt.Sprintf("version %q has no address; give at least one host:port", be.b.Version)}
		}
		for i, addr := range be.b.Addrs {
			if _, port, err := net.SplitHostPort(addr); err != nil || port == "" {
				return &rollout.FieldError{Field: fmt.Sprintf("%s.addrs[%d]", be.field, i),
					Message: fmt.Sprintf("%q is not a host:port address", addr)}
			}
		}
	}
	if err := p.validateMatch(r.Match); err != nil {
		return err
	}
	return validateHealth(r.Health)
}

func (p *Proxy) validateMatch(m *rollout.Match) error {
	if m == nil {
		return nil
	}
	switch {
	case len(m.Values) > 0 && m.Header == "" && m.Cookie == "":
		return &rollout.FieldError{Field: "match.values",
			Message: "values given without a header or cookie to compare them with"}
	case m.Header == "" && m.Cookie == "" && len(m.Users) == 0:
		return &rollout.FieldError{Field: "match",
			Message: "matches nothing; set a header, a cookie or users"}
	case m.Header != "" && !isToken(m.Header):
		return &rollout.FieldError{Field: "match.header",
			Message: fmt.Sprintf("%q is not a header name", m.Header)}
	case m.Cookie != "" && !isToken(m.Cookie):
		return &rollout.FieldError{Field: "match.cookie",
			Message: fmt.Sprintf("%q is not a cookie name", m.Cookie)}
	case len(m.Users) > 0 && p.stickyHeader == "" && p.stickyCookie == "":
		return &rollout.FieldError{Field: "match.users",
			Message: "the router reads no user key; set the environment's sticky header or cookie"}
	}
	for i, u := range m.Users {
		if u == "" {
			return &rollout.FieldError{Field: fmt.Sprintf("match.users[%d]", i), Message: "empty user key"}
		}
	}
	return nil
}

// isToken reports whether s is an HTTP token (RFC 9110, section 5.6.2),
// which header and cookie names are.
func isToken(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0 {
			continue
		}
		return false
	}
	return s != ""
}
