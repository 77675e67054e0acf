package proxy

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"reflect"
	"slices"
	"sync"
	"time"

	"github.com/shipgate/shipgate/internal/analysis"
	"github.com/shipgate/shipgate/internal/rollout"
)

// The proxy as the engine's TrafficRouter and MetricSource: its routing
// table read back verifies a change, and its counters answer windows.

var (
	_ rollout.TrafficRouter = (*Proxy)(nil)
	_ rollout.MetricSource  = (*Proxy)(nil)
	_ rollout.TrafficRouter = (*Client)(nil)
	_ rollout.MetricSource  = (*Client)(nil)
)

// maxMarks bounds the counters the proxy keeps for windows.
const maxMarks = 4096

// mark is every version's counters at one moment.
type mark struct {
	at    time.Time
	stats map[string]analysis.Sample
}

// marks are the moments windows can start at: the proxy's start, every
// routing change, and every window asked to start after the last mark.
type marks struct {
	mu   sync.Mutex
	list []mark
}

// mark records the counters now.
func (p *Proxy) mark() mark {
	stats, _ := p.Stats(context.Background())
	m := mark{at: p.now(), stats: stats}
	p.marks.mu.Lock()
	defer p.marks.mu.Unlock()
	p.marks.list = append(p.marks.list, m)
	if len(p.marks.list) > maxMarks {
		// Keep the start, drop the oldest after it.
		p.marks.list = slices.Delete(p.marks.list, 1, 2)
	}
	return m
}

// Window returns what the proxy counted for version since the first
// moment at or after since that it marked: its start, a routing change,
// or a window asked to start after them (the engine asks when a bake
// starts). A since before the proxy started counts from its start: a
// router that restarted counts again from there.
func (p *Proxy) Window(_ context.Context, version string, since time.Time) (analysis.Sample, error) {
	p.marks.mu.Lock()
	i, _ := slices.BinarySearchFunc(p.marks.list, since, func(m mark, t time.Time) int { return m.at.Compare(t) })
	var base mark
	found := i < len(p.marks.list)
	if found {
		base = p.marks.list[i]
	}
	p.marks.mu.Unlock()
	if !found {
		base = p.mark()
	}
	stats, _ := p.Stats(context.Background())
	return stats[version].Sub(base.stats[version]), nil
}

// VerifyRoutes returns nil when the proxy serves r: it applies a table
// before SetRoutes returns, so a difference means another table was set
// since.
func (p *Proxy) VerifyRoutes(_ context.Context, r rollout.Routes) error {
	return verifySame(p.env, p.Routes(), r)
}

// VerifyRoutes reads the router process's table back.
func (c *Client) VerifyRoutes(ctx context.Context, r rollout.Routes) error {
	got, err := c.Routes(ctx)
	if err != nil {
		return fmt.Errorf("read the routes back: %w", err)
	}
	return verifySame(c.env, got, r)
}

// Window asks the router process (see Proxy.Window).
func (c *Client) Window(ctx context.Context, version string, since time.Time) (analysis.Sample, error) {
	var w map[string]wireSample
	q := "/window?version=" + url.QueryEscape(version) + "&since=" + url.QueryEscape(since.UTC().Format(time.RFC3339Nano))
	if err := c.call(ctx, "GET", q, nil, &w, true); err != nil {
		return analysis.Sample{}, fmt.Errorf("router %s window of %s: %w", c.env, version, err)
	}
	s, err := fromWire(w)
	if err != nil {
		return analysis.Sample{}, err
	}
	return s[version], nil
}

// errOtherRoutes is a table read back that is not the one set.
var errOtherRoutes = errors.New("the router serves other routes")

func verifySame(env string, got, want rollout.Routes) error {
	norm := func(r rollout.Routes) rollout.Routes {
		r.Health = nil // defaults are filled in by the proxy
		for _, b := range []*rollout.Backend{&r.Stable, &r.Canary, &r.Preview} {
			if len(b.Addrs) == 0 {
				b.Addrs = nil
			}
		}
		if r.Canary.Version == "" {
			r.Weight = 0
		}
		return r
	}
	if g, w := norm(got), norm(want); !reflect.DeepEqual(g, w) {
		return fmt.Errorf("router %s: %w: stable %s, canary %s at %d%%; want stable %s, canary %s at %d%%",
			env, errOtherRoutes, g.Stable.Version, g.Canary.Version, g.Weight, w.Stable.Version, w.Canary.Version, w.Weight)
	}
	return nil
}
