package proxy

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/shipgate/shipgate/internal/rollout"
)

// Defaults for the zero fields of a rollout.RouteHealth.
const (
	defaultHealthPath       = "/healthz"
	defaultHealthInterval   = time.Second
	defaultHealthTimeout    = time.Second
	defaultFailureThreshold = 3
	// maxHealthBody is how much of a health answer is read; the status is
	// what counts.
	maxHealthBody = 4 << 10
)

// addrState is the health of one backend address. It outlives routing
// tables: an address that stays in the table keeps its state, and one that
// leaves it is forgotten, so that an address added again starts healthy.
type addrState struct {
	addr string
	// ejected is read by publishLive and written under Proxy.routesMu.
	ejected atomic.Bool
	// The rest is guarded by Proxy.routesMu.
	failures     int // failed checks in a row
	lastErr      string
	lastCheck    time.Time
	ejectedAt    time.Time // last ejection
	readmittedAt time.Time // last readmission after ejectedAt
}

// AddrHealth is what the router knows of one address's health.
type AddrHealth struct {
	// Addr is the address, host:port.
	Addr string `json:"addr"`
	// Version is the version the address runs, as the routes say.
	Version string `json:"version"`
	// Ejected is true while the address gets no new request.
	Ejected bool `json:"ejected"`
	// Failures is the number of failed checks in a row.
	Failures int `json:"failures"`
	// LastError says why the last check failed; empty if it passed.
	LastError string `json:"last_error,omitempty"`
	// LastCheck is when the address was last checked.
	LastCheck time.Time `json:"last_check,omitzero"`
	// EjectedAt is when the address was last ejected, and ReadmittedAt
	// when it was put back into rotation after that (zero while it is
	// still ejected). No request that reached the router after EjectedAt
	// reached the address before ReadmittedAt.
	EjectedAt    time.Time `json:"ejected_at,omitzero"`
	ReadmittedAt time.Time `json:"readmitted_at,omitzero"`
}

// addrState returns the health state of addr, creating a healthy one for
// an address new to the table. The caller holds routesMu.
func (p *Proxy) addrState(addr string) *addrState {
	if st, ok := p.addrs[addr]; ok {
		return st
	}
	st := &addrState{addr: addr}
	p.addrs[addr] = st
	return st
}

// forgetAddrs drops the state of every address that is not in t. The
// caller holds routesMu.
func (p *Proxy) forgetAddrs(t *table) {
	keep := map[string]bool{}
	for _, b := range t.sets() {
		for _, tg := range b.targets {
			keep[tg.state.addr] = true
		}
	}
	for addr := range p.addrs {
		if !keep[addr] {
			delete(p.addrs, addr)
		}
	}
}

// withHealthDefaults returns a copy of h with its zero fields set to the
// defaults, or nil for nil.
func withHealthDefaults(h *rollout.RouteHealth) *rollout.RouteHealth {
	if h == nil {
		return nil
	}
	out := *h
	out.Path = cmp.Or(out.Path, defaultHealthPath)
	out.Interval = cmp.Or(out.Interval, defaultHealthInterval)
	out.Timeout = cmp.Or(out.Timeout, defaultHealthTimeout)
	out.FailureThreshold = cmp.Or(out.FailureThreshold, defaultFailureThreshold)
	return &out
}

func validateHealth(h *rollout.RouteHealth) error {
	switch {
	case h == nil:
		return nil
	case h.Path != "" && !strings.HasPrefix(h.Path, "/"):
		return &rollout.FieldError{Field: "health.path", Message: fmt.Sprintf("must start with /, got %q", h.Path)}
	case h.Interval < 0:
		return &rollout.FieldError{Field: "health.interval", Message: fmt.Sprintf("%v is negative", h.Interval)}
	case h.Timeout < 0:
		return &rollout.FieldError{Field: "health.timeout", Message: fmt.Sprintf("%v is negative", h.Timeout)}
	case h.FailureThreshold < 0:
		return &rollout.FieldError{Field: "health.failure_threshold", Message: fmt.Sprintf("%d is negative", h.FailureThreshold)}
	}
	return nil
}

// reconcileHealth decides which addresses of t get no new request, and
// publishes each backend set's live addresses. An address is ejected when
// it failed FailureThreshold checks in a row, unless that would leave one
// of its versions with no address at all: then the whole version stays in
// rotation, since a 502 from a maybe-dead instance is better than a
// certain one. It returns the addresses it ejected, for stampEjected once
// t serves. The caller holds routesMu.
//
// The two times bracket the ejection from the outside: ReadmittedAt is
// taken before the address is back in the live lists, EjectedAt after it
// left them. So no request that reached the proxy after EjectedAt reached
// the address before ReadmittedAt.
func (p *Proxy) reconcileHealth(t *table) (ejected []*addrState) {
	failing := func(st *addrState) bool {
		return t.health != nil && st.failures >= t.health.FailureThreshold
	}
	sets := t.sets()
	want := map[*addrState]bool{}
	for _, b := range sets {
		healthy := false
		for _, tg := range b.targets {
			if t.health == nil {
				tg.state.failures = 0
			}
			healthy = healthy || !failing(tg.state)
		}
		p.noteAllFailing(b, !healthy)
		for _, tg := range b.targets {
			st := tg.state
			eject, seen := want[st]
			// An address in several sets (a canary that is also the
			// preview) is ejected only if every set can spare it.
			want[st] = failing(st) && healthy && (eject || !seen)
		}
	}
	now := time.Now()
	for st, eject := range want {
		switch was := st.ejected.Load(); {
		case eject && !was:
			ejected = append(ejected, st)
		case !eject && was:
			st.readmittedAt = now
			p.logger.Info("backend back in rotation", "env", p.env, "addr", st.addr)
		default:
			continue
		}
		st.ejected.Store(eject)
	}
	for _, b := range sets {
		b.publishLive()
	}
	return ejected
}

// stampEjected records when addresses were ejected, and logs it. The
// caller holds routesMu, and calls it once the table whose live lists
// reconcileHealth changed serves.
func (p *Proxy) stampEjected(ejected []*addrState) {
	now := time.Now()
	for _, st := range ejected {
		st.ejectedAt, st.readmittedAt = now, time.Time{}
		p.logger.Warn("backend ejected: failing its health checks", "env", p.env,
			"addr", st.addr, "failures", st.failures, "error", st.lastErr)
	}
}

// noteAllFailing logs when every address of a set starts or stops
// failing its checks. The caller holds routesMu.
func (p *Proxy) noteAllFailing(b *backendSet, all bool) {
	key := b.role + "\x00" + b.version + "\x00" + strings.Join(addrsOf(b), ",")
	if p.allFailing[key] == all {
		return
	}
	if all {
		p.allFailing[key] = true
		p.logger.Error("every address of a version fails its health checks; keeping them all in rotation",
			"env", p.env, "role", b.role, "version", b.version, "addrs", addrsOf(b))
		return
	}
	delete(p.allFailing, key)
	p.logger.Info("a version has a healthy address again", "env", p.env, "role", b.role, "version", b.version)
}

func addrsOf(b *backendSet) []string {
	out := make([]string, len(b.targets))
	for i, tg := range b.targets {
		out[i] = tg.state.addr
	}
	return out
}

// runHealthChecks checks every address of the current table each
// Interval, while the table asks for checks, until ctx ends. A round
// checks all addresses at once, each bounded by Timeout.
func (p *Proxy) runHealthChecks(ctx context.Context) {
	var next time.Time
	for {
		t := p.table.Load()
		if t.health == nil {
			select {
			case <-p.routesChanged:
				continue
			case <-ctx.Done():
				return
			}
		}
		if wait := time.Until(next); wait > 0 {
			timer := time.NewTimer(wait)
			select {
			case <-timer.C:
			case <-p.routesChanged:
				timer.Stop()
				continue
			case <-ctx.Done():
				timer.Stop()
				return
			}
			t = p.table.Load()
			if t.health == nil {
				continue
			}
		}
		h := *t.health
		start := time.Now()
		var addrs []string
		for _, b := range t.sets() {
			for _, tg := range b.targets {
				if !slices.Contains(addrs, tg.state.addr) {
					addrs = append(addrs, tg.state.addr)
				}
			}
		}
		errs := make([]error, len(addrs))
		var wg sync.WaitGroup
		for i, addr := range addrs {
			wg.Go(func() { errs[i] = p.check(ctx, addr, h) })
		}
		wg.Wait()
		if ctx.Err() != nil {
			return
		}
		p.applyChecks(addrs, errs)
		next = start.Add(h.Interval)
	}
}

// check sends one health check to addr.
func (p *Proxy) check(ctx context.Context, addr string, h rollout.RouteHealth) error {
	ctx, cancel := context.WithTimeout(ctx, h.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+h.Path, nil)
	if err != nil {
		return err
	}
	req.Header.Set("User-Agent", "shipgate-router")
	resp, err := p.healthClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxHealthBody))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("GET %s: %s", h.Path, resp.Status)
	}
	return nil
}

// applyChecks records a round's results and ejects or readmits addresses.
func (p *Proxy) applyChecks(addrs []string, errs []error) {
	p.routesMu.Lock()
	defer p.routesMu.Unlock()
	now := time.Now()
	for i, addr := range addrs {
		st, ok := p.addrs[addr]
		if !ok {
			continue // left the table during the round
		}
		st.lastCheck = now
		if errs[i] == nil {
			st.failures, st.lastErr = 0, ""
			continue
		}
		st.failures++
		st.lastErr = errs[i].Error()
	}
	if t := p.table.Load(); t.health != nil {
		p.stampEjected(p.reconcileHealth(t))
	}
}

// newHealthClient returns the client of the health checks. It opens a new
// connection for every check, so a check sees what a new connection of a
// user would, and follows no redirect: a 3xx is a failed check.
func newHealthClient() *http.Client {
	return &http.Client{
		Transport: &http.Transport{
			Proxy:             nil,
			DialContext:       (&net.Dialer{Timeout: dialTimeout}).DialContext,
			DisableKeepAlives: true,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// Health returns the health of every address in the routing table, sorted
// by address. Without Routes.Health every address is in rotation.
func (p *Proxy) Health() []AddrHealth {
	t := p.table.Load()
	p.routesMu.Lock()
	defer p.routesMu.Unlock()
	var out []AddrHealth
	seen := map[string]bool{}
	for _, b := range t.sets() {
		for _, tg := range b.targets {
			st := tg.state
			if seen[st.addr] {
				continue
			}
			seen[st.addr] = true
			out = append(out, AddrHealth{
				Addr: st.addr, Version: b.version, Ejected: st.ejected.Load(), Failures: st.failures,
				LastError: st.lastErr, LastCheck: st.lastCheck, EjectedAt: st.ejectedAt, ReadmittedAt: st.readmittedAt,
			})
		}
	}
	slices.SortFunc(out, func(a, b AddrHealth) int { return strings.Compare(a.Addr, b.Addr) })
	return out
}
