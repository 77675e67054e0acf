package prometheus

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// Queries are the PromQL templates a Source runs for one version and one
// window. Each may use the placeholders {{version}} and {{namespace}}
// (inside a double-quoted string: they become the body of a label value),
// and {{window}} (outside strings: it becomes a range such as 45s).
type Queries struct {
	// Requests is a query that returns one number: the requests the
	// version completed in the window, whatever their outcome. No series
	// at all means no data (ErrNoData); 0 means no traffic.
	Requests string `json:"requests" yaml:"requests"`
	// Errors is a query that returns one number: the requests of the
	// version that failed for the user (5xx) in the window. No series
	// means none failed.
	Errors string `json:"errors" yaml:"errors"`
	// LatencyBuckets is a query that returns one series per histogram
	// bucket, each with its "le" label, holding the cumulative number of
	// requests at or below that bound in the window (what
	// `sum by (le) (increase(..._bucket[...]))` gives).
	LatencyBuckets string `json:"latency_buckets" yaml:"latency_buckets"`
	// LatencyUnit is the unit of the "le" bounds: "seconds" (the
	// Prometheus convention, the default) or "milliseconds" (Istio).
	LatencyUnit string `json:"latency_unit,omitempty" yaml:"latency_unit,omitempty"`
}

// DefaultQueries measure an app instrumented the conventional way: a
// counter http_requests_total{code,version} and a histogram
// http_request_duration_seconds{le,version}, scraped with a namespace label
// (as Kubernetes service discovery and the Prometheus Operator add).
var DefaultQueries = Queries{
	Requests:       `sum(increase(http_requests_total{namespace="{{namespace}}",version="{{version}}"}[{{window}}]))`,
	Errors:         `sum(increase(http_requests_total{namespace="{{namespace}}",version="{{version}}",code=~"5.."}[{{window}}]))`,
	LatencyBuckets: `sum by (le) (increase(http_request_duration_seconds_bucket{namespace="{{namespace}}",version="{{version}}"}[{{window}}]))`,
	LatencyUnit:    "seconds",
}

// Presets are documented templates for metrics that a data plane exports
// rather than the app; docs/prometheus.md says what each assumes.
var Presets = map[string]Queries{
	"app": DefaultQueries,
	// Istio's standard metrics, reported by the destination's sidecar;
	// destination_version comes from the pod's "version" label.
	"istio": {
		Requests:       `sum(increase(istio_requests_total{reporter="destination",destination_workload_namespace="{{namespace}}",destination_version="{{version}}"}[{{window}}]))`,
		Errors:         `sum(increase(istio_requests_total{reporter="destination",destination_workload_namespace="{{namespace}}",destination_version="{{version}}",response_code=~"5.."}[{{window}}]))`,
		LatencyBuckets: `sum by (le) (increase(istio_request_duration_milliseconds_bucket{reporter="destination",destination_workload_namespace="{{namespace}}",destination_version="{{version}}"}[{{window}}]))`,
		LatencyUnit:    "milliseconds",
	},
	// ingress-nginx's controller metrics, per backend Service; this
	// assumes the canary and stable Services are named <app>-<version>.
	"ingress-nginx": {
		Requests:       `sum(increase(nginx_ingress_controller_requests{exported_namespace="{{namespace}}",service="{{app}}-{{version}}"}[{{window}}]))`,
		Errors:         `sum(increase(nginx_ingress_controller_requests{exported_namespace="{{namespace}}",service="{{app}}-{{version}}",status=~"5.."}[{{window}}]))`,
		LatencyBuckets: `sum by (le) (increase(nginx_ingress_controller_request_duration_seconds_bucket{exported_namespace="{{namespace}}",service="{{app}}-{{version}}"}[{{window}}]))`,
		LatencyUnit:    "seconds",
	},
}

// placeholder matches a {{name}} in a template.
var placeholder = regexp.MustCompile(`\{\{\s*([A-Za-z_]+)\s*\}\}`)

// safeValue is what a version or a namespace may be made of: enough for
// semantic versions, image tags, dates and Kubernetes names, and nothing
// that can end a PromQL string or start an escape.
var safeValue = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:+@-]{0,252}$`)

// checkValue rejects a placeholder value that could change the query's
// meaning rather than fill in a label value.
func checkValue(name, v string) error {
	if !safeValue.MatchString(v) {
		return fmt.Errorf("%s %q cannot go into a PromQL query: use letters, digits and . _ : + @ - (at most 253, starting with a letter or digit)", name, v)
	}
	return nil
}

// validate checks one template: known placeholders only, {{version}},
// {{namespace}} and {{app}} inside a double-quoted string, {{window}} outside any
// string, every value it uses set, and {{version}} present (without it canary and stable would be
// measured as one).
func validate(field, tmpl string, have map[string]bool) error {
	if strings.TrimSpace(tmpl) == "" {
		return fmt.Errorf("%s: a query is required", field)
	}
	sawVersion := false
	for _, m := range placeholder.FindAllStringSubmatchIndex(tmpl, -1) {
		name := tmpl[m[2]:m[3]]
		quote := quoteAt(tmpl, m[0])
		switch name {
		case "version", "namespace", "app":
			if quote != '"' {
				return fmt.Errorf("%s: {{%s}} must be inside a double-quoted label value, e.g. %s=\"{{%s}}\"", field, name, name, name)
			}
			if name == "version" {
				sawVersion = true
			}
			if name != "version" && !have[name] {
				return fmt.Errorf("%s: uses {{%s}} but no %s is set", field, name, name)
			}
		case "window":
			if quote != 0 {
				return fmt.Errorf("%s: {{window}} must be outside strings, e.g. [{{window}}]", field)
			}
		default:
			return fmt.Errorf("%s: unknown placeholder {{%s}} (known: {{version}}, {{namespace}}, {{app}}, {{window}})", field, name)
		}
	}
	if !sawVersion {
		return fmt.Errorf("%s: must select the version with {{version}}, or canary and stable would be measured as one", field)
	}
	return nil
}

// quoteAt returns the quote character of the PromQL string that position
// pos of s is inside, or 0 when it is outside any string. PromQL strings
// are "...", '...' (both with backslash escapes) and `...` (raw).
func quoteAt(s string, pos int) byte {
	var q byte
	for i := 0; i < pos; i++ {
		c := s[i]
		switch {
		case q == 0 && (c == '"' || c == '\'' || c == '`'):
			q = c
		case q == 0 && c == '#': // a comment runs to the end of the line
			for i < pos && s[i] != '\n' {
				i++
			}
		case q != 0 && q != '`' && c == '\\':
			i++
		case q != 0 && c == q:
			q = 0
		}
	}
	return q
}

// render fills in a validated template. The values were checked by
// checkValue, so they need no escaping inside a string literal.
func render(tmpl string, values map[string]string) string {
	return placeholder.ReplaceAllStringFunc(tmpl, func(m string) string {
		return values[placeholder.FindStringSubmatch(m)[1]]
	})
}

// QueriesFor returns the templates of a preset ("" means "app") with each
// non-empty field of overrides in place of the preset's, as a config with
// `preset:` and `queries:` would give them. The result is checked by New.
func QueriesFor(preset string, overrides Queries) (Queries, error) {
	if preset == "" {
		preset = "app"
	}
	q, ok := Presets[preset]
	if !ok {
		names := make([]string, 0, len(Presets))
		for name := range Presets {
			names = append(names, name)
		}
		slices.Sort(names)
		return Queries{}, fmt.Errorf("preset: %q is not one of %s", preset, strings.Join(names, ", "))
	}
	for _, f := range []struct {
		dst *string
		src string
	}{
		{&q.Requests, overrides.Requests},
		{&q.Errors, overrides.Errors},
		{&q.LatencyBuckets, overrides.LatencyBuckets},
		{&q.LatencyUnit, overrides.LatencyUnit},
	} {
		if f.src != "" {
			*f.dst = f.src
		}
	}
	return q, nil
}
