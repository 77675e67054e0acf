package proxy

import (
	"context"
	"io"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/shipgate/shipgate/internal/rollout"
)

// warmConns is how many connections the router opens to an address before
// it sends users there, and warmTimeout bounds how long that may delay a
// routing change.
const (
	warmConns   = 4
	warmTimeout = 300 * time.Millisecond
)

// warm opens keep-alive connections to the addresses that r adds to the
// routing table, by sending their health check through the users'
// transport, so that the first users of a new canary do not pay for the
// connections: a canary whose first requests each wait for a dial looks
// slower than its stable and can fail a latency gate it would pass. Only
// tables with a health check are warmed (the check is the one request the
// app is known to expect); failures are ignored: health checks and the
// analysis judge the address, not the warm-up.
func (p *Proxy) warm(ctx context.Context, r rollout.Routes) {
	if r.Health == nil || r.Health.Path == "" {
		return
	}
	old := p.table.Load()
	var fresh []string
	for _, b := range []rollout.Backend{r.Stable, r.Canary} {
		for _, a := range b.Addrs {
			if old == nil || !slices.Contains(old.routes.Stable.Addrs, a) && !slices.Contains(old.routes.Canary.Addrs, a) {
				fresh = append(fresh, a)
			}
		}
	}
	if len(fresh) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, warmTimeout)
	defer cancel()
	var wg sync.WaitGroup
	for _, a := range fresh {
		for range warmConns {
			wg.Go(func() {
				req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+a+r.Health.Path, nil)
				if err != nil {
					return
				}
				req.Header.Set("User-Agent", "shipgate-router-warmup/1")
				resp, err := p.transport.RoundTrip(req)
				if err != nil {
					return
				}
				_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
				_ = resp.Body.Close()
			})
		}
	}
	wg.Wait()
}
