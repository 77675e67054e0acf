package proxy

import (
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// This file is the router's side of retiring a route: it counts the
// requests per path prefix (the first one and two segments of the path),
// so that the control plane can tell that a route has had no traffic for a
// business cycle, and answers 410 Gone for the prefixes being retired.

// maxPathKeys bounds how many prefixes are counted: paths with ids in
// their first segments must not grow the map without end. Prefixes past
// the bound are not counted; PathStats says so.
const maxPathKeys = 4096

// goneBody is the answer to a request for a retired route.
const goneBody = "410 gone: this route is being retired\n"

// PathCount is the traffic of one path prefix since the router started.
type PathCount struct {
	Count uint64    `json:"count"`
	Last  time.Time `json:"last"`
}

type pathCounter struct {
	count atomic.Uint64
	last  atomic.Int64 // unix nanoseconds
}

// pathRegistry is the per-prefix counters and the retired prefixes. Its
// zero value is ready.
type pathRegistry struct {
	counts   sync.Map // prefix → *pathCounter
	n        atomic.Int64
	overflow atomic.Bool
	gone     atomic.Pointer[[]string]
}

// serve counts r and answers it when its path is retired; it reports
// whether it answered.
func (pr *pathRegistry) serve(w http.ResponseWriter, r *http.Request) bool {
	path := r.URL.Path
	now := time.Now().UnixNano()
	one, two := prefixes(path)
	pr.count(one, now)
	if two != "" {
		pr.count(two, now)
	}
	gone := pr.gone.Load()
	if gone == nil {
		return false
	}
	for _, g := range *gone {
		if Covers(g, path) {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			w.WriteHeader(http.StatusGone)
			_, _ = w.Write([]byte(goneBody))
			return true
		}
	}
	return false
}

func (pr *pathRegistry) count(key string, now int64) {
	v, ok := pr.counts.Load(key)
	if !ok {
		if pr.n.Load() >= maxPathKeys {
			pr.overflow.Store(true)
			return
		}
		var loaded bool
		v, loaded = pr.counts.LoadOrStore(strings.Clone(key), &pathCounter{})
		if !loaded {
			pr.n.Add(1)
		}
	}
	c := v.(*pathCounter)
	c.count.Add(1)
	c.last.Store(now)
}

// prefixes returns the first one and two segments of a path: "/api" and
// "/api/v1" for "/api/v1/orders", "/" and "" for "/". They are slices of
// path: the hot path allocates nothing.
func prefixes(path string) (one, two string) {
	if len(path) <= 1 || path[0] != '/' {
		return "/", ""
	}
	i := strings.IndexByte(path[1:], '/')
	if i < 0 {
		return path, ""
	}
	one = path[:1+i]
	rest := path[2+i:]
	if rest == "" {
		return one, ""
	}
	if j := strings.IndexByte(rest, '/'); j >= 0 {
		rest = rest[:j]
	}
	if rest == "" {
		return one, ""
	}
	return one, path[:2+i+len(rest)]
}

// Covers reports whether the route prefix covers path: the path is the
// prefix or under it.
func Covers(prefix, path string) bool {
	prefix = strings.TrimSuffix(prefix, "/")
	if prefix == "" {
		return true
	}
	return path == prefix || strings.HasPrefix(path, prefix+"/")
}

// CountedPrefix returns the counted prefix that tells about a route: the
// route itself when it has one or two segments, else its two-segment
// ancestor, whose traffic includes the route's (so no traffic there
// means none on the route).
func CountedPrefix(route string) string {
	one, two := prefixes(route)
	if two != "" {
		return two
	}
	return one
}

// SetGone sets the retired prefixes: requests under them are answered
// 410 (and still counted). An empty list retires nothing.
func (p *Proxy) SetGone(prefixes []string) {
	list := append([]string(nil), prefixes...)
	p.paths.gone.Store(&list)
}

// Gone returns the retired prefixes.
func (p *Proxy) Gone() []string {
	if g := p.paths.gone.Load(); g != nil {
		return append([]string(nil), (*g)...)
	}
	return nil
}

// PathStats returns the traffic per path prefix since the router started,
// and whether some prefixes were too many to count.
func (p *Proxy) PathStats() (map[string]PathCount, bool) {
	out := map[string]PathCount{}
	p.paths.counts.Range(func(k, v any) bool {
		c := v.(*pathCounter)
		out[k.(string)] = PathCount{Count: c.count.Load(), Last: time.Unix(0, c.last.Load()).UTC()}
		return true
	})
	return out, p.paths.overflow.Load()
}
