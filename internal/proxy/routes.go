package proxy

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
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
	stable *backendSet // nil when there is no live stable version
	canary *backendSet // nil when there is no canary
	// threshold is Weight×100: buckets below it go to the canary.
	threshold uint64
	// seedHash is the FNV-1a state after hashing Routes.Seed, so the hot
	// path hashes only the user key.
	seedHash uint64
	weight   int
}

// backendSet is the instances of one version in a table.
type backendSet struct {
	version string
	// versionValue is the X-Shipgate-Version header value, built once so
	// the hot path does not allocate it. Responses share it, so its
	// capacity is 1: an append down the line copies instead of writing
	// into it.
	versionValue []string
	stats        *versionStats
	proxies      []*httputil.ReverseProxy // one per address
	rr           atomic.Uint64            // round-robin cursor over proxies
}

// next returns the proxy to the next address of the version, round-robin.
func (b *backendSet) next() *httputil.ReverseProxy {
	if len(b.proxies) == 1 {
		return b.proxies[0]
	}
	return b.proxies[(b.rr.Add(1)-1)%uint64(len(b.proxies))]
}

// pick returns the backend set a request goes to, or nil when no version
// is live. A request with a user key lands in a bucket fixed by the seed
// and the key, so its user stays on one version while the weight grows; a
// request without one is split at random with the same odds.
func (t *table) pick(r *http.Request, header, cookie string) *backendSet {
	switch {
	case t.canary == nil:
		return t.stable
	case t.stable == nil:
		return t.canary
	}
	var bucket uint64
	if key, ok := userKey(r, header, cookie); ok {
		bucket = stickyBucket(t.seedHash, key)
	} else {
		bucket = rand.Uint64N(numBuckets)
	}
	if bucket < t.threshold {
		return t.canary
	}
	return t.stable
}

// userKey returns the request's user key from the sticky header, or else
// from the sticky cookie. It reads the Cookie header by hand because
// http.Request.Cookie parses and allocates every cookie of the request.
func userKey(r *http.Request, header, cookie string) (string, bool) {
	if header != "" {
		if v := r.Header[header]; len(v) > 0 && v[0] != "" {
			return v[0], true
		}
	}
	if cookie == "" {
		return "", false
	}
	for _, line := range r.Header["Cookie"] {
		for line != "" {
			var part string
			part, line, _ = strings.Cut(line, ";")
			name, value, ok := strings.Cut(strings.TrimSpace(part), "=")
			if !ok || name != cookie {
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
// 503.
func (p *Proxy) SetRoutes(_ context.Context, r rollout.Routes) error {
	if err := validateRoutes(r); err != nil {
		return fmt.Errorf("set routes: %w", err)
	}
	p.routesMu.Lock()
	defer p.routesMu.Unlock()
	t := &table{
		stable:   p.newBackendSet(r.Stable),
		canary:   p.newBackendSet(r.Canary),
		weight:   r.Weight,
		seedHash: fnv1a(fnvOffset64, r.Seed),
	}
	if t.canary == nil {
		t.weight = 0
	}
	t.threshold = uint64(t.weight) * (numBuckets / 100)
	p.table.Store(t)
	p.logger.Info("routes set", "env", p.env, "stable", r.Stable.Version,
		"canary", r.Canary.Version, "weight", t.weight)
	return nil
}

// newBackendSet builds the backends of one version, or returns nil for an
// empty Backend. The version's counters come from the registry, so they
// carry on from earlier tables.
func (p *Proxy) newBackendSet(be rollout.Backend) *backendSet {
	if be.Version == "" {
		return nil
	}
	b := &backendSet{
		version:      be.Version,
		versionValue: []string{be.Version}[:1:1],
		stats:        p.stats.get(be.Version),
	}
	for _, addr := range be.Addrs {
		b.proxies = append(b.proxies, p.newReverseProxy(addr, b))
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
// percentage, a version has instances and instances belong to a version.
func validateRoutes(r rollout.Routes) error {
	if r.Weight < 0 || r.Weight > 100 {
		return &rollout.FieldError{Field: "weight",
			Message: fmt.Sprintf("%d is not a percentage; use 0 to 100", r.Weight)}
	}
	for _, be := range []struct {
		field string
		b     rollout.Backend
	}{{"stable", r.Stable}, {"canary", r.Canary}} {
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
	return nil
}
