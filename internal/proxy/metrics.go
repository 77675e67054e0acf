package proxy

import (
	"maps"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/shipgate/shipgate/internal/analysis"
)

// promBucketStep picks every fifth analysis bound for the Prometheus
// histogram: 1.15^5 ≈ 2, so the 19 bounds double from 100µs to 29s. Each is
// an analysis bound, so the cumulative counts are exact sums of the
// analysis buckets below it.
const promBucketStep = 5

var (
	requestsDesc = prometheus.NewDesc(
		"shipgate_router_requests_total",
		"Requests the builtin router finished, by version and status class; transport_error means the backend never answered.",
		[]string{"env", "version", "code"}, nil)
	durationDesc = prometheus.NewDesc(
		"shipgate_router_request_duration_seconds",
		"Time from receiving a request to the end of writing its response, by version.",
		[]string{"env", "version"}, nil)
	weightDesc = prometheus.NewDesc(
		"shipgate_router_canary_weight",
		"Percentage of users the builtin router sends to the canary.",
		[]string{"env"}, nil)
	flagRequestsDesc = prometheus.NewDesc(
		"shipgate_router_flag_requests_total",
		"Requests whose response reported a feature flag variant in an X-Flag-<key> header, by flag, variant and status class.",
		[]string{"env", "flag", "variant", "code"}, nil)
	previewRequestsDesc = prometheus.NewDesc(
		"shipgate_router_preview_requests_total",
		"Requests the preview listener finished, by version and status class; kept apart from the users' requests.",
		[]string{"env", "version", "code"}, nil)
	backendUpDesc = prometheus.NewDesc(
		"shipgate_router_backend_up",
		"1 while a backend address gets requests, 0 while it is ejected for failing its health checks.",
		[]string{"env", "version", "addr"}, nil)
	flagDroppedDesc = prometheus.NewDesc(
		"shipgate_router_flag_dropped_total",
		"Flag variants reported by responses that the router did not count: beyond 64 keys, 8 variants per key, or 64 bytes.",
		[]string{"env"}, nil)
)

// noReleaseVersion is the version label of the requests answered 503
// because no release was live.
const noReleaseVersion = "none"

// Collector returns a Prometheus collector for the proxy's request counts,
// latency histograms, canary weight, flag variant counts, preview requests
// and backend health. It reads the same counters as
// Stats at scrape time, so the two never disagree.
func (p *Proxy) Collector() prometheus.Collector { return collector{p} }

type collector struct{ p *Proxy }

// Describe implements prometheus.Collector.
func (c collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- requestsDesc
	ch <- durationDesc
	ch <- weightDesc
	ch <- flagRequestsDesc
	ch <- flagDroppedDesc
	ch <- previewRequestsDesc
	ch <- backendUpDesc
}

// Collect implements prometheus.Collector.
func (c collector) Collect(ch chan<- prometheus.Metric) {
	env := c.p.env
	ch <- prometheus.MustNewConstMetric(weightDesc, prometheus.GaugeValue,
		float64(c.p.table.Load().weight), env)
	for version, s := range c.p.stats.all() {
		collectVersion(ch, env, version, s)
	}
	if c.p.noRelease.outcomes[outcome5xx].Load() > 0 {
		collectVersion(ch, env, noReleaseVersion, &c.p.noRelease)
	}
	c.p.flags.each(func(key, variant string, s *versionStats) {
		_, counts := s.snapshot()
		for o, n := range counts {
			ch <- prometheus.MustNewConstMetric(flagRequestsDesc, prometheus.CounterValue,
				float64(n), env, key, variant, outcomeLabels[o])
		}
	})
	ch <- prometheus.MustNewConstMetric(flagDroppedDesc, prometheus.CounterValue,
		float64(c.p.flags.dropped.Load()), env)
	previews := c.p.previewStats.all()
	if c.p.previewNone.outcomes[outcome5xx].Load() > 0 {
		previews = maps.Clone(previews)
		previews[noReleaseVersion] = &c.p.previewNone
	}
	for version, s := range previews {
		_, counts := s.snapshot()
		for o, n := range counts {
			ch <- prometheus.MustNewConstMetric(previewRequestsDesc, prometheus.CounterValue,
				float64(n), env, version, outcomeLabels[o])
		}
	}
	seen := map[[2]string]bool{}
	for _, b := range c.p.table.Load().sets() {
		for _, tg := range b.targets {
			key := [2]string{b.version, tg.state.addr}
			if seen[key] {
				continue
			}
			seen[key] = true
			up := 1.0
			if tg.state.ejected.Load() {
				up = 0
			}
			ch <- prometheus.MustNewConstMetric(backendUpDesc, prometheus.GaugeValue, up, env, b.version, tg.state.addr)
		}
	}
}

// collectVersion sends the request counts and the latency histogram of one
// version.
func collectVersion(ch chan<- prometheus.Metric, env, version string, s *versionStats) {
	sample, counts := s.snapshot()
	for o, n := range counts {
		ch <- prometheus.MustNewConstMetric(requestsDesc, prometheus.CounterValue,
			float64(n), env, version, outcomeLabels[o])
	}
	buckets := make(map[float64]uint64, len(analysis.Bounds)/promBucketStep+1)
	var cumulative uint64
	for i, bound := range analysis.Bounds {
		cumulative += sample.Latency[i]
		if i%promBucketStep == 0 {
			buckets[bound.Seconds()] = cumulative
		}
	}
	sum := float64(s.latencyNanos.Load()) / 1e9
	ch <- prometheus.MustNewConstHistogram(durationDesc, sample.Latency.Count(), sum, buckets,
		env, version)
}
