package shopapp

import (
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"
)

// The shop exports its traffic the conventional way, in Prometheus' text
// format on GET /metrics: a counter http_requests_total{code,version} and
// a histogram http_request_duration_seconds{version,le}. That is what
// Shipgate's default Prometheus queries read (docs/prometheus.md).

// latencyBounds are the histogram's upper bounds, in seconds.
var latencyBounds = []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}

// metrics counts the requests the shop answered.
type metrics struct {
	version string

	mu      sync.Mutex
	byCode  map[int]uint64
	buckets []uint64 // per bound, not cumulative; the last is +Inf
	sum     float64
	count   uint64
}

func newMetrics(version string) *metrics {
	return &metrics{version: version, byCode: map[int]uint64{}, buckets: make([]uint64, len(latencyBounds)+1)}
}

// observe counts one answered request.
func (m *metrics) observe(code int, d time.Duration) {
	s := d.Seconds()
	i, _ := slices.BinarySearch(latencyBounds, s)
	m.mu.Lock()
	defer m.mu.Unlock()
	m.byCode[code]++
	m.buckets[i]++
	m.sum += s
	m.count++
}

// counted wraps h so that every request it answers is counted.
func (m *metrics) counted(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w, code: http.StatusOK}
		h.ServeHTTP(sw, r)
		m.observe(sw.code, time.Since(start))
	})
}

// serve writes the counters in Prometheus' text format.
func (m *metrics) serve(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; version=0.0.4")
	m.mu.Lock()
	defer m.mu.Unlock()
	v := strconv.Quote(m.version)
	writef(w, "# TYPE http_requests_total counter\n")
	codes := make([]int, 0, len(m.byCode))
	for c := range m.byCode {
		codes = append(codes, c)
	}
	slices.Sort(codes)
	for _, c := range codes {
		writef(w, "http_requests_total{code=\"%d\",version=%s} %d\n", c, v, m.byCode[c])
	}
	writef(w, "# TYPE http_request_duration_seconds histogram\n")
	var cum uint64
	for i, b := range latencyBounds {
		cum += m.buckets[i]
		writef(w, "http_request_duration_seconds_bucket{version=%s,le=\"%g\"} %d\n", v, b, cum)
	}
	writef(w, "http_request_duration_seconds_bucket{version=%s,le=\"+Inf\"} %d\n", v, m.count)
	writef(w, "http_request_duration_seconds_sum{version=%s} %g\n", v, m.sum)
	writef(w, "http_request_duration_seconds_count{version=%s} %d\n", v, m.count)
}

func writef(w io.Writer, format string, args ...any) { _, _ = fmt.Fprintf(w, format, args...) }

// statusWriter remembers the status code of a response.
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	w.code = code
	w.ResponseWriter.WriteHeader(code)
}
