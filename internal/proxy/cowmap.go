package proxy

import (
	"sync"
	"sync/atomic"
)

// cowMap is a map that readers use without a lock: a writer copies it and
// swaps the copy in. It suits the counters the router keeps per version
// and per flag variant, read on every request and gaining a key a few
// times per rollout. The zero value is an empty map.
type cowMap[V any] struct {
	mu sync.Mutex // serializes writers
	m  atomic.Pointer[map[string]V]
}

// all returns the map. It must not be modified.
func (c *cowMap[V]) all() map[string]V {
	if m := c.m.Load(); m != nil {
		return *m
	}
	return nil
}

// getOrAdd returns the value of k, adding fresh() under it when it is
// missing, unless the map already holds limit keys (limit <= 0: no limit),
// in which case ok is false.
func (c *cowMap[V]) getOrAdd(k string, limit int, fresh func() V) (v V, ok bool) {
	if v, ok := c.all()[k]; ok {
		return v, true
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	old := c.all()
	if v, ok := old[k]; ok {
		return v, true
	}
	if limit > 0 && len(old) >= limit {
		return v, false
	}
	m := make(map[string]V, len(old)+1)
	for key, val := range old {
		m[key] = val
	}
	v = fresh()
	m[k] = v
	c.m.Store(&m)
	return v, true
}
