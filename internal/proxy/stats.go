package proxy

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/shipgate/shipgate/internal/analysis"
)

// outcome is how a request ended, as the metrics label it.
type outcome int

// Outcomes. A status the backend sent falls in its class; a request the
// backend never answered (or broke off) is a transport error, whatever
// status the proxy answered it with.
const (
	outcome2xx outcome = iota
	outcome3xx
	outcome4xx
	outcome5xx
	outcomeTransportError
	numOutcomes
)

// outcomeLabels are the values of the code label, indexed by outcome.
var outcomeLabels = [numOutcomes]string{"2xx", "3xx", "4xx", "5xx", "transport_error"}

func outcomeFor(status int) outcome {
	switch {
	case status >= 500:
		return outcome5xx
	case status >= 400:
		return outcome4xx
	case status >= 300:
		return outcome3xx
	default:
		return outcome2xx
	}
}

// versionStats counts one version's requests since the proxy started. All
// fields are atomics: requests add to them concurrently without a lock,
// and readers take a snapshot field by field.
type versionStats struct {
	outcomes [numOutcomes]atomic.Uint64
	// latencyNanos is the sum of all latencies, for the Prometheus
	// histogram's _sum; it wraps after 292 years of summed latency.
	latencyNanos atomic.Int64
	latency      [analysis.NumBuckets]atomic.Uint64
}

// record counts one finished request. The latency bucket is added before
// the outcome, and snapshots read outcomes before buckets, so a snapshot
// never counts a request that its histogram lacks.
func (s *versionStats) record(o outcome, d time.Duration) {
	s.latency[analysis.BucketFor(d)].Add(1)
	s.latencyNanos.Add(int64(d))
	s.outcomes[o].Add(1)
}

// snapshot reads the counters into a Sample and the per-outcome counts.
func (s *versionStats) snapshot() (analysis.Sample, [numOutcomes]uint64) {
	var out analysis.Sample
	var counts [numOutcomes]uint64
	for i := range s.outcomes {
		counts[i] = s.outcomes[i].Load()
		out.Requests += counts[i]
	}
	out.Status5xx = counts[outcome5xx]
	out.TransportErrors = counts[outcomeTransportError]
	for i := range s.latency {
		out.Latency[i] = s.latency[i].Load()
	}
	return out, counts
}

// statsRegistry holds the counters of every version the proxy has routed
// to since it started. A version keeps its counters when it leaves the
// table, so requests still in flight to it are counted, and so that a
// window over a route change adds up. Versions are never removed: a
// process sees a handful per rollout, each under a kilobyte.
type statsRegistry struct {
	versions cowMap[*versionStats]
}

func newStatsRegistry() *statsRegistry { return &statsRegistry{} }

// get returns the counters of a version, creating them on first use.
func (r *statsRegistry) get(version string) *versionStats {
	s, _ := r.versions.getOrAdd(version, 0, func() *versionStats { return &versionStats{} })
	return s
}

// all returns every version's counters. The map must not be modified.
func (r *statsRegistry) all() map[string]*versionStats { return r.versions.all() }

// Stats returns each version's counters since the proxy started: every
// version that has been in the table, including ones that have left it.
func (p *Proxy) Stats(_ context.Context) (map[string]analysis.Sample, error) {
	all := p.stats.all()
	out := make(map[string]analysis.Sample, len(all))
	for v, s := range all {
		out[v], _ = s.snapshot()
	}
	return out, nil
}
