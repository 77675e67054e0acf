package config

import (
	"fmt"
	"strings"

	"github.com/shipgate/shipgate/internal/prometheus"
)

// Metrics says where an environment's releases are measured. Without it
// the builtin router measures them.
type Metrics struct {
	// Prometheus measures the releases from a Prometheus server, with
	// PromQL queries per version.
	Prometheus *PrometheusMetrics `yaml:"prometheus,omitempty" json:"prometheus,omitempty"`
}

// PrometheusMetrics is a Prometheus server and the queries that measure a
// version's requests, errors and latency there.
type PrometheusMetrics struct {
	// URL is the Prometheus server's base URL, like
	// http://prometheus:9090. Required.
	URL string `yaml:"url" json:"url"`
	// Namespace fills {{namespace}} in the queries: the namespace the app
	// runs in. Default: the environment's kubernetes.namespace.
	Namespace string `yaml:"namespace,omitempty" json:"namespace,omitempty"`
	// Preset names built-in queries: app (the default: the app exports
	// http_requests_total{code,version} and
	// http_request_duration_seconds_bucket{version}), istio or
	// ingress-nginx.
	Preset string `yaml:"preset,omitempty" json:"preset,omitempty"`
	// Timeout bounds each query. Default 10s.
	Timeout Duration `yaml:"timeout,omitempty" json:"timeout,omitempty"`
	// Queries replace the preset's query of the same name.
	Queries PrometheusQueries `yaml:"queries,omitempty" json:"queries,omitempty"`
}

// PrometheusQueries are PromQL templates with the placeholders
// {{version}} (required in each), {{namespace}}, {{app}} and {{window}}.
type PrometheusQueries struct {
	// Requests returns one number: the requests the version completed in
	// the window.
	Requests string `yaml:"requests,omitempty" json:"requests,omitempty"`
	// Errors returns one number: those that failed for the user (5xx).
	Errors string `yaml:"errors,omitempty" json:"errors,omitempty"`
	// LatencyBuckets returns one series per histogram bucket, each with
	// its le label, counting the requests at or below le in the window.
	LatencyBuckets string `yaml:"latency_buckets,omitempty" json:"latency_buckets,omitempty"`
	// LatencyUnit is the unit of the le bounds: seconds (the default) or
	// milliseconds.
	LatencyUnit string `yaml:"latency_unit,omitempty" json:"latency_unit,omitempty"`
}

// PrometheusOptions returns the options of the Prometheus source that m
// describes for app, with the preset's queries under m's own.
func (m *PrometheusMetrics) PrometheusOptions(app string) (prometheus.Options, error) {
	q, err := prometheus.QueriesFor(m.Preset, prometheus.Queries{
		Requests: m.Queries.Requests, Errors: m.Queries.Errors,
		LatencyBuckets: m.Queries.LatencyBuckets, LatencyUnit: m.Queries.LatencyUnit,
	})
	if err != nil {
		return prometheus.Options{}, err
	}
	return prometheus.Options{URL: m.URL, Namespace: m.Namespace, App: app, Queries: q, Timeout: m.Timeout.D()}, nil
}

// validateMetrics checks an environment's metrics by building the source
// they describe: a bad URL, preset or query is reported at its field.
func (d *decoder) validateMetrics(c *Config, path string, m *Metrics) {
	p := m.Prometheus
	if p == nil {
		d.problemf(path, "set prometheus: {url: ...}, or leave metrics out to measure with the builtin router")
		return
	}
	path += ".prometheus"
	if p.URL == "" {
		d.problemf(path+".url", "required: the Prometheus server's base URL, like http://prometheus:9090")
		return
	}
	if _, ok := prometheus.Presets[p.Preset]; !ok && p.Preset != "" {
		d.problemf(path+".preset", "must be app, istio or ingress-nginx, got %q", p.Preset)
		return
	}
	if d.isSet(path + ".timeout") {
		d.positive(path+".timeout", p.Timeout)
	}
	opts, err := p.PrometheusOptions(c.App)
	if err == nil {
		_, err = prometheus.New(opts)
	}
	if err != nil {
		// The source's errors start with the option at fault: "url: ...",
		// "queries.requests: ...".
		field, msg, ok := strings.Cut(err.Error(), ": ")
		if !ok || strings.ContainsAny(field, " \"") {
			d.problemf(path, "%v", err)
			return
		}
		d.problemf(fmt.Sprintf("%s.%s", path, field), "%s", msg)
	}
}
