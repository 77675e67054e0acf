package proxy

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"github.com/shipgate/shipgate/internal/rollout"
)

// inflightFor returns the in-flight counter of addr.
func (p *Proxy) inflightFor(addr string) *atomic.Int64 {
	if c, ok := p.inflight.Load(addr); ok {
		return c.(*atomic.Int64)
	}
	c, _ := p.inflight.LoadOrStore(addr, new(atomic.Int64))
	return c.(*atomic.Int64)
}

// InFlight returns the number of requests on their way to addr now.
func (p *Proxy) InFlight(addr string) int64 { return p.inflightFor(addr).Load() }

// drainPoll is how often Drain looks at the counters.
const drainPoll = 5 * time.Millisecond

// Drain waits until no request is on its way to any of addrs, so that
// their instances can stop without cutting one off. Call it once the
// routes no longer send new requests there. It returns nil once they are
// drained (seen idle twice in a row, so that a request that picked its
// address just before the routes changed is counted too), or, when ctx
// ends first, an error saying how many requests are still in flight
// where.
func (p *Proxy) Drain(ctx context.Context, addrs []string) error {
	t := time.NewTicker(drainPoll)
	defer t.Stop()
	idle := 0
	for {
		busy := map[string]int64{}
		for _, a := range addrs {
			if n := p.InFlight(a); n > 0 {
				busy[a] = n
			}
		}
		if len(busy) == 0 {
			if idle++; idle >= 2 {
				return nil
			}
		} else {
			idle = 0
		}
		select {
		case <-ctx.Done():
			if len(busy) == 0 {
				return nil
			}
			return fmt.Errorf("drain: %s still in flight", describeBusy(busy))
		case <-t.C:
		}
	}
}

func describeBusy(busy map[string]int64) string {
	var parts []string
	for a, n := range busy {
		parts = append(parts, fmt.Sprintf("%d request(s) to %s", n, a))
	}
	sort.Strings(parts)
	return strings.Join(parts, ", ")
}

// drainRequest is the body of POST /drain.
type drainRequest struct {
	Addrs []string `json:"addrs"`
}

// maxDrainWait bounds one POST /drain, whatever the caller's deadline.
const maxDrainWait = 2 * time.Minute

// drain answers once no request is in flight to the addresses given (see
// Proxy.Drain), or 504 with what is still in flight when the caller gives
// up or maxDrainWait passed.
func (a *controlAPI) drain(w http.ResponseWriter, r *http.Request) {
	var req drainRequest
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxRoutesBody)).Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, &rollout.FieldError{Field: "addrs", Message: "not a drain request: " + err.Error()})
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), maxDrainWait)
	defer cancel()
	if err := a.p.Drain(ctx, req.Addrs); err != nil {
		writeError(w, http.StatusGatewayTimeout, err)
		return
	}
	writeJSON(w, http.StatusOK, struct{}{})
}
