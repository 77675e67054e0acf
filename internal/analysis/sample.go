// Package analysis judges a canary against its thresholds and against the
// stable release, from traffic samples that a router measured.
//
// It is pure: it imports no transport and no storage. Routers produce
// Samples (cumulative counters and a fixed-bucket latency histogram), the
// rollout engine subtracts the snapshot taken at the start of a window, and
// Judge turns the two windows into a Verdict per gate.
package analysis

import (
	"math"
	"time"
)

// NumBuckets is the number of latency histogram buckets, the last one being
// the overflow bucket for anything slower than the largest bound.
const NumBuckets = 96

// bucketBase is the upper bound of the first bucket and bucketGrowth the
// factor between two neighbouring bounds: 100µs × 1.15^94 ≈ 51s, so the
// bounds cover every latency an HTTP service shows with a relative error
// of at most 15%, which is fine enough to judge a "2× stable" gate.
const (
	bucketBase   = 100 * time.Microsecond
	bucketGrowth = 1.15
)

// Bounds holds the inclusive upper bound of each bucket but the last; the
// last bucket (index NumBuckets-1) holds everything above Bounds[NumBuckets-2].
var Bounds = func() [NumBuckets - 1]time.Duration {
	var b [NumBuckets - 1]time.Duration
	v := float64(bucketBase)
	for i := range b {
		b[i] = time.Duration(v)
		v *= bucketGrowth
	}
	return b
}()

// BucketFor returns the index of the bucket that holds latency d.
func BucketFor(d time.Duration) int {
	if d <= bucketBase {
		return 0
	}
	i := int(math.Ceil(math.Log(float64(d)/float64(bucketBase)) / math.Log(bucketGrowth)))
	// Floating point may put a value that sits exactly on a bound one off.
	for i > 0 && i < len(Bounds) && d <= Bounds[i-1] {
		i--
	}
	for i < len(Bounds) && d > Bounds[i] {
		i++
	}
	if i >= NumBuckets {
		return NumBuckets - 1
	}
	return i
}

// Histogram counts requests per latency bucket (see Bounds). It is a value
// type so that snapshots can be copied and subtracted without allocation.
type Histogram [NumBuckets]uint64

// Observe adds one request of latency d.
func (h *Histogram) Observe(d time.Duration) { h[BucketFor(d)]++ }

// Count returns the number of observations.
func (h *Histogram) Count() uint64 {
	var n uint64
	for _, c := range h {
		n += c
	}
	return n
}

// Quantile returns the upper bound of the bucket that holds the q-quantile
// (0 < q ≤ 1), or 0 when the histogram is empty. Reporting the bucket's
// upper bound errs on the side of calling a release slower than it is.
func (h *Histogram) Quantile(q float64) time.Duration {
	n := h.Count()
	if n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(n)))
	if rank == 0 {
		rank = 1
	}
	var seen uint64
	for i, c := range h {
		seen += c
		if seen >= rank {
			return bucketUpper(i)
		}
	}
	return bucketUpper(NumBuckets - 1)
}

// CountAbove returns how many observations are certainly slower than d: the
// observations in buckets whose lower bound is at least d.
func (h *Histogram) CountAbove(d time.Duration) uint64 {
	var n uint64
	for i := NumBuckets - 1; i > 0; i-- {
		if Bounds[i-1] < d {
			break
		}
		n += h[i]
	}
	return n
}

func bucketUpper(i int) time.Duration {
	if i >= len(Bounds) {
		// The overflow bucket has no upper bound; report twice the last one.
		return 2 * Bounds[len(Bounds)-1]
	}
	return Bounds[i]
}

// Sample is what a router measured for one release: counters since the
// router started. Subtract two Samples to get a window.
type Sample struct {
	// Requests is the number of requests that completed (any outcome).
	Requests uint64 `json:"requests"`
	// Status5xx is the number of responses with a 5xx status from the app.
	Status5xx uint64 `json:"status_5xx"`
	// TransportErrors is the number of requests that never got a response
	// from the app (connection refused or reset, timeout); the router
	// answered those with 502 or 504 itself.
	TransportErrors uint64 `json:"transport_errors"`
	// Latency is the latency histogram of all completed requests.
	Latency Histogram `json:"-"`
}

// Errors returns the requests that failed for the user: 5xx and transport errors.
func (s Sample) Errors() uint64 { return s.Status5xx + s.TransportErrors }

// ErrorRate returns Errors/Requests, or 0 when there were no requests.
func (s Sample) ErrorRate() float64 {
	if s.Requests == 0 {
		return 0
	}
	return float64(s.Errors()) / float64(s.Requests)
}

// Sub returns the window s - prev. A counter that went backwards means the
// router restarted; the window is then s itself.
func (s Sample) Sub(prev Sample) Sample {
	if s.Requests < prev.Requests || s.Status5xx < prev.Status5xx || s.TransportErrors < prev.TransportErrors {
		return s
	}
	out := Sample{
		Requests:        s.Requests - prev.Requests,
		Status5xx:       s.Status5xx - prev.Status5xx,
		TransportErrors: s.TransportErrors - prev.TransportErrors,
	}
	for i := range s.Latency {
		if s.Latency[i] < prev.Latency[i] {
			return s
		}
		out.Latency[i] = s.Latency[i] - prev.Latency[i]
	}
	return out
}

// Add returns the sum of two samples.
func (s Sample) Add(o Sample) Sample {
	out := Sample{
		Requests:        s.Requests + o.Requests,
		Status5xx:       s.Status5xx + o.Status5xx,
		TransportErrors: s.TransportErrors + o.TransportErrors,
	}
	for i := range s.Latency {
		out.Latency[i] = s.Latency[i] + o.Latency[i]
	}
	return out
}
