package proxy

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/shipgate/shipgate/internal/analysis"
)

// An app tells the router which variant of a feature flag it served by
// answering with a header X-Flag-<key>: <variant>. The router counts every
// response per flag key and variant, as it counts them per version, so that
// a flag's rollout can be judged from what users saw.
const flagHeaderPrefix = "X-Flag-"

// Limits on what an app can make the router remember. Flag keys and
// variants come from responses, so without them a buggy app could grow the
// router's memory without bound; beyond them observations are dropped and
// counted.
const (
	maxFlagKeys     = 64
	maxFlagVariants = 8
	// maxFlagNameLen bounds the length of a key and of a variant.
	maxFlagNameLen = 64
)

// flagRegistry holds the counters of every flag key and variant seen in a
// response. The maps are copied on write, so the hot path reads them
// without a lock; a write happens only the first time a key or variant is
// seen.
type flagRegistry struct {
	mu sync.Mutex // serializes writers of byHeader and byKey
	// byHeader maps a response header name, as the backend spelled it, to
	// its flag. Two spellings of one key share a flag.
	byHeader atomic.Pointer[map[string]*flagStats]
	byKey    map[string]*flagStats // by lowercased key; guarded by mu
	// dropped counts observations beyond the limits.
	dropped atomic.Uint64
}

// flagStats holds the counters of one flag key, by variant.
type flagStats struct {
	key      string
	variants cowMap[*versionStats]
}

func newFlagRegistry() *flagRegistry {
	r := &flagRegistry{byKey: map[string]*flagStats{}}
	m := map[string]*flagStats{}
	r.byHeader.Store(&m)
	return r
}

// record counts one finished request under every flag variant its
// response reports.
func (r *flagRegistry) record(h http.Header, o outcome, d time.Duration) {
	for name, values := range h {
		if len(name) <= len(flagHeaderPrefix) || !strings.EqualFold(name[:len(flagHeaderPrefix)], flagHeaderPrefix) ||
			len(values) == 0 || values[0] == "" {
			continue
		}
		f := r.flag(name)
		if f == nil {
			r.dropped.Add(1)
			continue
		}
		s := f.variant(values[0])
		if s == nil {
			r.dropped.Add(1)
			continue
		}
		s.record(o, d)
	}
}

// flag returns the flag a response header reports, creating it on first
// use, or nil when the key is too long or there are too many keys.
func (r *flagRegistry) flag(header string) *flagStats {
	if f, ok := (*r.byHeader.Load())[header]; ok {
		return f
	}
	key := strings.ToLower(header[len(flagHeaderPrefix):])
	if len(key) > maxFlagNameLen {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	old := *r.byHeader.Load()
	if f, ok := old[header]; ok {
		return f
	}
	f, ok := r.byKey[key]
	if !ok {
		if len(r.byKey) >= maxFlagKeys {
			return nil
		}
		f = &flagStats{key: key}
		r.byKey[key] = f
	}
	// Spellings are bounded too: an app sends one or two per key.
	if len(old) >= 2*maxFlagKeys {
		return f
	}
	m := make(map[string]*flagStats, len(old)+1)
	for k, v := range old {
		m[k] = v
	}
	m[header] = f
	r.byHeader.Store(&m)
	return f
}

// variant returns the counters of a variant, creating them on first use,
// or nil when the variant is too long or the flag has too many.
func (f *flagStats) variant(v string) *versionStats {
	if s, ok := f.variants.all()[v]; ok {
		return s
	}
	if len(v) > maxFlagNameLen {
		return nil
	}
	s, ok := f.variants.getOrAdd(v, maxFlagVariants, func() *versionStats { return &versionStats{} })
	if !ok {
		return nil
	}
	return s
}

// each calls fn with every flag's key, variant and counters.
func (r *flagRegistry) each(fn func(key, variant string, s *versionStats)) {
	r.mu.Lock()
	flags := make([]*flagStats, 0, len(r.byKey))
	for _, f := range r.byKey {
		flags = append(flags, f)
	}
	r.mu.Unlock()
	for _, f := range flags {
		for v, s := range f.variants.all() {
			fn(f.key, v, s)
		}
	}
}

// FlagStats returns, for every feature flag key that responses reported
// in an X-Flag-<key> header, the counters of each variant since the proxy
// started: requests, 5xx, transport errors and latency, as Stats counts
// them per version. Keys are lowercased; variants are as the app sent
// them. A request counts under each flag its response reports; a request
// whose backend never answered reports none. At most 64 keys of 8 variants
// each are kept; observations beyond that are dropped and counted in the
// metric shipgate_router_flag_dropped_total.
func (p *Proxy) FlagStats(_ context.Context) (map[string]map[string]analysis.Sample, error) {
	out := map[string]map[string]analysis.Sample{}
	p.flags.each(func(key, variant string, s *versionStats) {
		if out[key] == nil {
			out[key] = map[string]analysis.Sample{}
		}
		out[key][variant], _ = s.snapshot()
	})
	return out, nil
}
