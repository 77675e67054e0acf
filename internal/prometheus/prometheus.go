// Package prometheus measures releases from a Prometheus server: for one
// version and one window it runs PromQL templates over the HTTP API and
// returns an analysis.Sample, so the same judges run on Prometheus data as
// on the builtin proxy's counters.
//
// It implements the measurement port the rollout engine is to declare
// (issue 15 splits the old Router into traffic and measurement):
//
//	// MetricSource measures a version's traffic.
//	type MetricSource interface {
//		// Window returns what version served from since until now. It
//		// returns an error wrapping ErrNoData when the source has no
//		// data for it, which the engine must judge inconclusive.
//		Window(ctx context.Context, version string, since time.Time) (analysis.Sample, error)
//	}
//
// Unlike the builtin proxy's Stats, a Window is already the difference over
// the window (PromQL's increase), so the engine must not subtract a
// baseline from it.
//
// # Latency histograms
//
// Prometheus histograms are cumulative counts per upper bound "le", with
// bounds the app chose (often 5ms, 10ms, 25ms, ... 10s). The analysis
// histogram has its own fixed, finer bounds. A request counted in the
// Prometheus bucket (a, b] is known only to be at most b, so Window puts it
// in the analysis bucket that holds b: it is reported at b, never faster
// than it was, and the +Inf bucket goes to the analysis overflow bucket.
// A latency gate therefore errs towards failing: with coarse Prometheus
// buckets a request of 30ms in (25ms, 50ms] counts as 50ms, so choose "le"
// bounds close to the thresholds the gates use.
package prometheus

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/shipgate/shipgate/internal/analysis"
)

// ErrNoData is wrapped by the errors of Window when Prometheus has no
// series for the version in the window: the app is not scraped, the labels
// do not match, or the window is shorter than two scrapes. It is never a
// pass; the caller judges the window inconclusive.
var ErrNoData = errors.New("no data")

// QueryError is a query that Prometheus refused or could not run.
type QueryError struct {
	// Name is the query's name in Queries: requests, errors or latency_buckets.
	Name string
	// Query is the PromQL that was sent.
	Query string
	// Status is the HTTP status code, 0 when no response came back.
	Status int
	// Type is Prometheus' errorType (bad_data, execution, timeout...), or
	// "transport" when no response came back.
	Type string
	// Message is Prometheus' error text.
	Message string
}

func (e *QueryError) Error() string {
	return fmt.Sprintf("prometheus %s query failed: %s: %s (query: %s)", e.Name, e.Type, e.Message, e.Query)
}

// Options configure a Source.
type Options struct {
	// URL is the Prometheus server's base URL, e.g. http://prometheus:9090.
	URL string
	// Namespace fills {{namespace}}: the Kubernetes namespace the app runs in.
	Namespace string
	// App fills {{app}}: the app's name.
	App string
	// Queries are the templates; the zero value means DefaultQueries.
	Queries Queries
	// Timeout bounds each query, on both sides: the HTTP request and
	// Prometheus' own evaluation. Default 10s.
	Timeout time.Duration
	// Header is added to every request, e.g. an Authorization header.
	Header http.Header
	// Client sends the requests; default a new http.Client.
	Client *http.Client
	// Now is the clock that ends each window; default time.Now.
	Now func() time.Time
}

// Source measures versions from one Prometheus server.
type Source struct {
	base    *url.URL
	queries Queries
	scale   float64 // seconds per unit of the "le" bounds
	values  map[string]string
	timeout time.Duration
	header  http.Header
	client  *http.Client
	now     func() time.Time
}

// New checks the options and the templates and returns a Source. Errors
// name the field: url, namespace, app, queries.requests...
func New(o Options) (*Source, error) {
	u, err := url.Parse(o.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("url: %q is not an http(s) URL of a Prometheus server", o.URL)
	}
	s := &Source{base: u, queries: o.Queries, values: map[string]string{}, timeout: o.Timeout,
		header: o.Header, client: o.Client, now: o.Now}
	if s.queries == (Queries{}) {
		s.queries = DefaultQueries
	}
	have := map[string]bool{}
	for name, v := range map[string]string{"namespace": o.Namespace, "app": o.App} {
		if v == "" {
			continue
		}
		if err := checkValue(name, v); err != nil {
			return nil, err
		}
		s.values[name], have[name] = v, true
	}
	for _, q := range []struct{ field, tmpl string }{
		{"queries.requests", s.queries.Requests},
		{"queries.errors", s.queries.Errors},
		{"queries.latency_buckets", s.queries.LatencyBuckets},
	} {
		if err := validate(q.field, q.tmpl, have); err != nil {
			return nil, err
		}
	}
	switch s.queries.LatencyUnit {
	case "", "seconds", "s":
		s.scale = 1
	case "milliseconds", "ms":
		s.scale = 1e-3
	default:
		return nil, fmt.Errorf("queries.latency_unit: %q is not seconds or milliseconds", s.queries.LatencyUnit)
	}
	if s.timeout <= 0 {
		s.timeout = 10 * time.Second
	}
	if s.client == nil {
		s.client = &http.Client{}
	}
	if s.now == nil {
		s.now = time.Now
	}
	return s, nil
}

// Window returns what version served from since until now: requests,
// 5xx responses and the latency histogram. Errors wrap ErrNoData when
// Prometheus has no series for the version, or are a *QueryError naming
// the query when Prometheus fails it. Calling it twice is safe.
func (s *Source) Window(ctx context.Context, version string, since time.Time) (analysis.Sample, error) {
	if err := checkValue("version", version); err != nil {
		return analysis.Sample{}, err
	}
	now := s.now()
	d := now.Sub(since)
	if d <= 0 {
		return analysis.Sample{}, fmt.Errorf("window for version %q: starts at %s, not before now (%s)", version, since.Format(time.RFC3339Nano), now.Format(time.RFC3339Nano))
	}
	values := map[string]string{"version": version, "window": strconv.FormatInt(int64(math.Ceil(d.Seconds())), 10) + "s"}
	for k, v := range s.values {
		values[k] = v
	}

	var out analysis.Sample
	q := render(s.queries.Requests, values)
	requests, ok, err := s.scalar(ctx, "requests", q, now)
	if err != nil {
		return out, err
	}
	if !ok {
		return out, fmt.Errorf("version %q: the requests query returned no series (%w): %s", version, ErrNoData, q)
	}
	out.Requests = requests

	q = render(s.queries.Errors, values)
	errs, _, err := s.scalar(ctx, "errors", q, now)
	if err != nil {
		return out, err
	}
	// Counters scraped a moment apart can disagree by a request or two.
	out.Status5xx = min(errs, out.Requests)

	q = render(s.queries.LatencyBuckets, values)
	series, err := s.query(ctx, "latency_buckets", q, now)
	if err != nil {
		return out, err
	}
	if len(series) == 0 {
		if out.Requests == 0 {
			return out, nil
		}
		// Requests without latencies would pass every latency gate.
		return out, fmt.Errorf("version %q: the latency_buckets query returned no series (%w): %s", version, ErrNoData, q)
	}
	if out.Latency, err = s.histogram(series); err != nil {
		return out, &QueryError{Name: "latency_buckets", Query: q, Type: "bad_result", Message: err.Error()}
	}
	return out, nil
}

// sample is one element of a Prometheus instant vector.
type sample struct {
	Metric map[string]string `json:"metric"`
	Value  [2]any            `json:"value"`
}

func (p sample) float() (float64, error) {
	str, ok := p.Value[1].(string)
	if !ok {
		return 0, fmt.Errorf("value %v is not a string", p.Value[1])
	}
	return strconv.ParseFloat(str, 64)
}

// scalar runs a query that must return at most one number, rounded to a
// count (increase extrapolates, so it is rarely whole). ok is false when
// there was no series or the value is not a number.
func (s *Source) scalar(ctx context.Context, name, q string, at time.Time) (n uint64, ok bool, err error) {
	series, err := s.query(ctx, name, q, at)
	if err != nil || len(series) == 0 {
		return 0, false, err
	}
	if len(series) > 1 {
		return 0, false, &QueryError{Name: name, Query: q, Type: "bad_result",
			Message: fmt.Sprintf("returned %d series, want one number (wrap the query in sum(...))", len(series))}
	}
	v, err := series[0].float()
	if err != nil {
		return 0, false, &QueryError{Name: name, Query: q, Type: "bad_result", Message: err.Error()}
	}
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return 0, false, nil
	}
	return count(v), true, nil
}

// count turns a PromQL increase into a count: rounded, never negative.
func count(v float64) uint64 {
	if v <= 0 || math.IsNaN(v) {
		return 0
	}
	return uint64(math.Round(v))
}

// histogram maps cumulative Prometheus buckets onto the analysis
// histogram, each bucket's requests at its upper bound (see the package
// comment).
func (s *Source) histogram(series []sample) (analysis.Histogram, error) {
	type bucket struct {
		le  float64
		cum float64
	}
	buckets := make([]bucket, 0, len(series))
	for _, p := range series {
		le, ok := p.Metric["le"]
		if !ok {
			return analysis.Histogram{}, errors.New(`a series has no "le" label (group the buckets with sum by (le))`)
		}
		b, err := strconv.ParseFloat(le, 64)
		if err != nil {
			return analysis.Histogram{}, fmt.Errorf("le %q is not a number", le)
		}
		v, err := p.float()
		if err != nil {
			return analysis.Histogram{}, err
		}
		if math.IsNaN(v) {
			v = 0
		}
		buckets = append(buckets, bucket{b, v})
	}
	slices.SortFunc(buckets, func(a, b bucket) int { return cmp.Compare(a.le, b.le) })
	var h analysis.Histogram
	var prev uint64
	for _, b := range buckets {
		// Rounded cumulative counts, kept monotonic: extrapolation may
		// make a higher bound a fraction smaller than a lower one.
		cum := max(count(b.cum), prev)
		n := cum - prev
		prev = cum
		if n == 0 {
			continue
		}
		i := analysis.NumBuckets - 1
		if !math.IsInf(b.le, 1) {
			d := time.Duration(math.Round(b.le * s.scale * float64(time.Second)))
			i = analysis.BucketFor(d)
		}
		h[i] += n
	}
	return h, nil
}

// apiResponse is the envelope of every Prometheus HTTP API answer.
type apiResponse struct {
	Status    string `json:"status"`
	ErrorType string `json:"errorType"`
	Error     string `json:"error"`
	Data      struct {
		ResultType string          `json:"resultType"`
		Result     json.RawMessage `json:"result"`
	} `json:"data"`
}

// query runs an instant query at time at and returns its vector; a scalar
// result is returned as a vector of one sample.
func (s *Source) query(ctx context.Context, name, q string, at time.Time) ([]sample, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	form := url.Values{
		"query":   {q},
		"time":    {strconv.FormatFloat(float64(at.UnixMilli())/1000, 'f', 3, 64)},
		"timeout": {s.timeout.String()},
	}
	endpoint := s.base.JoinPath("api/v1/query")
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint.String(), strings.NewReader(form.Encode()))
	if err != nil {
		return nil, &QueryError{Name: name, Query: q, Type: "transport", Message: err.Error()}
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for k, vs := range s.header {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, &QueryError{Name: name, Query: q, Type: "transport", Message: err.Error()}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return nil, &QueryError{Name: name, Query: q, Status: resp.StatusCode, Type: "transport", Message: err.Error()}
	}
	var r apiResponse
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, &QueryError{Name: name, Query: q, Status: resp.StatusCode, Type: "bad_response",
			Message: fmt.Sprintf("HTTP %d, not a Prometheus API answer: %.200s", resp.StatusCode, body)}
	}
	if r.Status != "success" {
		return nil, &QueryError{Name: name, Query: q, Status: resp.StatusCode, Type: r.ErrorType, Message: r.Error}
	}
	switch r.Data.ResultType {
	case "vector":
		var v []sample
		if err := json.Unmarshal(r.Data.Result, &v); err != nil {
			return nil, &QueryError{Name: name, Query: q, Status: resp.StatusCode, Type: "bad_response", Message: err.Error()}
		}
		return v, nil
	case "scalar":
		var v [2]any
		if err := json.Unmarshal(r.Data.Result, &v); err != nil {
			return nil, &QueryError{Name: name, Query: q, Status: resp.StatusCode, Type: "bad_response", Message: err.Error()}
		}
		return []sample{{Value: v}}, nil
	default:
		return nil, &QueryError{Name: name, Query: q, Status: resp.StatusCode, Type: "bad_result",
			Message: fmt.Sprintf("returned a %s, want an instant vector", r.Data.ResultType)}
	}
}
