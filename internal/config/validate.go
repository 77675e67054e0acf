package config

import (
	"cmp"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

var (
	appName = regexp.MustCompile(`^[a-z][a-z0-9-]{0,62}$`)
	envName = regexp.MustCompile(`^[a-z][a-z0-9-]*$`)
	varName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
)

const varNameRule = "letters, digits and underscores, not starting with a digit"

// validate checks the decoded config, defaults included, and records every
// problem found.
func (d *decoder) validate(c *Config) {
	switch {
	case c.App == "":
		d.problemf("app", `required: the app's name, like "shop"`)
	case !appName.MatchString(c.App):
		d.problemf("app", "must be lowercase letters, digits and dashes, start with a letter and be at most 63 characters long, got %q", c.App)
	}
	for _, name := range sortedKeys(c.Vars) {
		switch {
		case !varName.MatchString(name):
			d.keyProblemf("vars."+name, "variable names must be %s, got %q", varNameRule, name)
		case name == "VERSION" || name == "PORT":
			d.keyProblemf("vars."+name, "%s is set by shipgate for every instance; choose another name", name)
		}
	}
	d.validateRun(&c.Run)
	d.validateEnvironments(c.Environments)
	d.validateCanary(c.Strategy.Canary)
	d.validateAnalysis(&c.Analysis)
	for i, s := range c.Smoke {
		d.validateSmoke(fmt.Sprintf("smoke[%d]", i), s)
	}
}

func (d *decoder) validateRun(r *Run) {
	switch {
	case len(r.Command) == 0:
		d.problemf("run.command", `required: the program and its arguments, like ["./bin/shop", "--port", "${PORT}"]`)
	case r.Command[0] == "":
		d.problemf("run.command[0]", "the program must not be empty")
	}
	for i, arg := range r.Command {
		d.checkReferences(fmt.Sprintf("run.command[%d]", i), arg)
	}
	for _, name := range sortedKeys(r.Env) {
		path := "run.env." + name
		if !varName.MatchString(name) {
			d.keyProblemf(path, "environment variable names must be %s, got %q", varNameRule, name)
		}
		d.checkReferences(path, r.Env[name])
	}
	if r.Instances < 1 || r.Instances > 100 {
		d.problemf("run.instances", "must be between 1 and 100, got %d", r.Instances)
	}
	h := r.Health
	if !strings.HasPrefix(h.Path, "/") {
		d.problemf("run.health.path", `must start with "/", got %q`, h.Path)
	}
	d.positive("run.health.interval", h.Interval)
	d.positive("run.health.timeout", h.Timeout)
	if h.FailureThreshold < 1 {
		d.problemf("run.health.failure_threshold", "must be at least 1, got %d", h.FailureThreshold)
	}
	d.positive("run.start_timeout", r.StartTimeout)
}

// checkReferences checks that every "${" in s starts a well formed ${NAME}.
func (d *decoder) checkReferences(path, s string) {
	for rest := s; ; {
		i := strings.Index(rest, "${")
		if i < 0 {
			return
		}
		rest = rest[i+2:]
		j := strings.IndexByte(rest, '}')
		if j < 0 {
			d.problemf(path, `unclosed "${" in %q; write ${NAME}`, s)
			return
		}
		if name := rest[:j]; !varName.MatchString(name) {
			d.problemf(path, "bad variable reference ${%s} in %q; the NAME in ${NAME} must be %s", name, s, varNameRule)
		}
		rest = rest[j+1:]
	}
}

func (d *decoder) validateEnvironments(envs map[string]*Environment) {
	if len(envs) == 0 {
		d.problemf("environments", `required: at least one environment, like production: {listen: "127.0.0.1:8080"}`)
		return
	}
	// In file order, so that a clash is reported on the later environment.
	names := sortedKeys(envs)
	slices.SortStableFunc(names, func(a, b string) int {
		return cmp.Compare(d.line("environments."+a), d.line("environments."+b))
	})
	type listener struct {
		env, addr string
		ap        netip.AddrPort
	}
	var listeners []listener
	for _, name := range names {
		path := "environments." + name
		if !envName.MatchString(name) {
			d.keyProblemf(path, "environment names must be lowercase letters, digits and dashes, starting with a letter, got %q", name)
		}
		env := envs[name]
		if env == nil {
			env = &Environment{}
		}
		if env.Listen == "" {
			d.problemf(path+".listen", `required: the address of this environment's router, like "127.0.0.1:8080"`)
		} else if ap, msg := parseListen(env.Listen); msg != "" {
			d.problemf(path+".listen", "bad listen address %q: %s", env.Listen, msg)
		} else {
			for _, l := range listeners {
				if !overlap(ap, l.ap) {
					continue
				}
				if l.addr == env.Listen {
					d.problemf(path+".listen", "%q is already the listen address of environment %q (line %d); give each environment its own port",
						env.Listen, l.env, d.line("environments."+l.env+".listen"))
				} else {
					d.problemf(path+".listen", "%q overlaps %q, the listen address of environment %q (line %d); give each environment its own port",
						env.Listen, l.addr, l.env, d.line("environments."+l.env+".listen"))
				}
				break
			}
			listeners = append(listeners, listener{env: name, addr: env.Listen, ap: ap})
		}
		s := env.Sticky
		if s.Header != "" && s.Cookie != "" {
			d.problemf(path+".sticky", "set header or cookie, not both")
		}
		if s.Header != "" && !isToken(s.Header) {
			d.problemf(path+".sticky.header", "must be a valid HTTP header name, like X-User-ID, got %q", s.Header)
		}
		if s.Cookie != "" && !isToken(s.Cookie) {
			d.problemf(path+".sticky.cookie", "must be a valid cookie name, like session_id, got %q", s.Cookie)
		}
	}
}

// parseListen checks a host:port listen address. It returns the address,
// with localhost as 127.0.0.1, or a message saying what is wrong.
func parseListen(addr string) (netip.AddrPort, string) {
	const want = `; write host:port, like "127.0.0.1:8080"`
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		reason := err.Error()
		if ae := (*net.AddrError)(nil); errors.As(err, &ae) {
			reason = ae.Err // without the address, which the message already quotes
		}
		return netip.AddrPort{}, reason + want
	}
	var ip netip.Addr
	switch {
	case host == "":
		return netip.AddrPort{}, `the host is missing; write "127.0.0.1:` + port + `" to serve this machine only, or "0.0.0.0:` + port + `" to serve every network`
	case host == "localhost":
		ip = netip.AddrFrom4([4]byte{127, 0, 0, 1})
	default:
		if ip, err = netip.ParseAddr(host); err != nil {
			return netip.AddrPort{}, "the host must be an IP address or localhost" + want
		}
	}
	p, err := strconv.Atoi(port)
	if err != nil || p < 1 || p > 65535 {
		return netip.AddrPort{}, "the port must be a number from 1 to 65535" + want
	}
	return netip.AddrPortFrom(ip, uint16(p)), ""
}

// overlap reports whether two listen addresses cannot both be bound: the
// same port on the same host, or on any host when one is 0.0.0.0 or ::.
func overlap(a, b netip.AddrPort) bool {
	if a.Port() != b.Port() {
		return false
	}
	return a.Addr() == b.Addr() || a.Addr().IsUnspecified() || b.Addr().IsUnspecified()
}

// isToken reports whether s is an RFC 9110 token, the syntax of header and
// cookie names.
func isToken(s string) bool {
	for _, r := range s {
		if r >= 0x7f || r <= ' ' || strings.ContainsRune(`"(),/:;<=>?@[\]{}`, r) {
			return false
		}
	}
	return s != ""
}

func (d *decoder) validateCanary(c *Canary) {
	for i, s := range c.Steps {
		path := fmt.Sprintf("strategy.canary.steps[%d].weight", i)
		switch {
		case s.Weight == 0 && !d.isSet(path):
			d.problemf(path, "required: the percentage of users sent to the canary, 1 to 100")
		case !validWeight(s.Weight):
			d.problemf(path, "must be between 1 and 100, got %d", s.Weight)
		case i > 0 && validWeight(c.Steps[i-1].Weight) && c.Steps[i-1].Weight >= s.Weight:
			d.problemf(path, "weights not increasing: %d after %d in steps[%d]; each step must send more users to the canary than the one before",
				s.Weight, c.Steps[i-1].Weight, i-1)
		}
	}
}

func validWeight(w int) bool { return w >= 1 && w <= 100 }

var metrics = []Metric{MetricErrorRate, MetricLatencyP50, MetricLatencyP95, MetricLatencyP99}

func (d *decoder) validateAnalysis(a *Analysis) {
	d.positive("analysis.interval", a.Interval)
	if a.MinRequests < 1 {
		d.problemf("analysis.min_requests", "must be at least 1, got %d", a.MinRequests)
	}
	d.confidence("analysis.fail_confidence", a.FailConfidence)
	d.confidence("analysis.pass_confidence", a.PassConfidence)
	for i, g := range a.Gates {
		d.validateGate(fmt.Sprintf("analysis.gates[%d]", i), g)
	}
}

func (d *decoder) confidence(path string, v float64) {
	if v < 0.5 || v > 0.9999 {
		d.problemf(path, "must be between 0.5 and 0.9999, got %g", v)
	}
}

func (d *decoder) validateGate(path string, g Gate) {
	switch {
	case g.Metric == "":
		d.problemf(path+".metric", "required: one of %s", metricList())
		return
	case !slices.Contains(metrics, g.Metric):
		d.problemf(path+".metric", "unknown metric %q; use one of %s", g.Metric, metricList())
		return
	}
	ratioSet := g.MaxRatioToStable != 0 || d.isSet(path+".max_ratio_to_stable")
	if g.Metric == MetricErrorRate {
		if ratioSet {
			d.problemf(path+".max_ratio_to_stable", "only latency gates can be relative to stable; for error_rate use max, like max: 0.01")
		}
		switch {
		case g.Max == nil && !ratioSet:
			d.problemf(path, "the gate has no limit: set max, like max: 0.01")
		case g.Max != nil && (g.Max.IsDuration || g.Max.Value > 1):
			d.problemf(path+".max", `must be a fraction from 0 to 1 (0.005) or a percentage up to 100%% ("0.5%%") for error_rate, got %s`, d.text(path+".max"))
		}
		return
	}
	if ratioSet && g.MaxRatioToStable < 1 {
		d.problemf(path+".max_ratio_to_stable", "must be at least 1 (1 means no slower than stable), got %g", g.MaxRatioToStable)
	}
	switch {
	case g.Max == nil && !ratioSet:
		d.problemf(path, `the gate has no limit: set max (like "250ms"), max_ratio_to_stable (like 2) or both`)
	case g.Max == nil:
	case !g.Max.IsDuration:
		d.problemf(path+".max", `must be a duration for %s, like "250ms", got %s`, g.Metric, d.text(path+".max"))
	case g.Max.Value == 0:
		d.problemf(path+".max", "must be greater than 0, got %s", d.text(path+".max"))
	}
}

func metricList() string {
	names := make([]string, len(metrics))
	for i, m := range metrics {
		names[i] = string(m)
	}
	return strings.Join(names, ", ")
}

func (d *decoder) validateSmoke(path string, s SmokeCheck) {
	switch {
	case s.Path == "" && !d.isSet(path+".path"):
		d.problemf(path+".path", `required: the path to request, like "/healthz"`)
	case !strings.HasPrefix(s.Path, "/"):
		d.problemf(path+".path", `must start with "/", got %q`, s.Path)
	}
	if s.ExpectStatus < 100 || s.ExpectStatus > 599 {
		d.problemf(path+".expect_status", "must be an HTTP status code from 100 to 599, got %d", s.ExpectStatus)
	}
	d.positive(path+".timeout", s.Timeout)
}

// positive checks a duration that must not be zero; decoding already
// refused negative ones.
func (d *decoder) positive(path string, v Duration) {
	if v <= 0 {
		d.problemf(path, "must be greater than 0, got %s", v)
	}
}

// problemf records a problem with the field at path. It points at the
// field's value, or, when the field is not in the file, at the closest
// enclosing field that is. Fields that failed to decode are skipped: their
// problem is already recorded.
func (d *decoder) problemf(path, format string, args ...any) {
	if d.hasFailed(path) {
		return
	}
	d.add(path, d.at(path), format, args...)
}

// keyProblemf records a problem with the key of the field at path, such as
// an environment's name.
func (d *decoder) keyProblemf(path, format string, args ...any) {
	n := d.at(path)
	if e, ok := d.nodes[path]; ok && e.key != nil {
		n = e.key
	}
	d.add(path, n, format, args...)
}

func (d *decoder) add(path string, n *yaml.Node, format string, args ...any) {
	d.problems = append(d.problems, Problem{File: d.file, Line: n.Line, Column: n.Column, Field: path, Message: fmt.Sprintf(format, args...)})
}

// at returns the node to report a problem with the field at path at.
func (d *decoder) at(path string) *yaml.Node {
	if e, ok := d.nodes[path]; ok {
		if isNull(e.value) && e.key != nil {
			return e.key
		}
		return e.value
	}
	for path != "" {
		path = parent(path)
		if e, ok := d.nodes[path]; ok {
			if e.key != nil {
				return e.key
			}
			return e.value
		}
	}
	return &yaml.Node{Line: 1, Column: 1} // only when nothing was decoded
}

// line returns the line of the field at path, for messages that point back.
func (d *decoder) line(path string) int { return d.at(path).Line }

// text returns the field's value as written in the file.
func (d *decoder) text(path string) string {
	if e, ok := d.nodes[path]; ok {
		return e.value.Value
	}
	return ""
}

// isSet reports whether the file gives the field at path a value.
func (d *decoder) isSet(path string) bool {
	e, ok := d.nodes[path]
	return ok && !isNull(e.value)
}

// hasFailed reports whether the field at path, a field inside it or a field
// around it could not be decoded.
func (d *decoder) hasFailed(path string) bool {
	for _, f := range d.failed {
		if f != "" && (f == path || within(path, f) || within(f, path)) {
			return true
		}
	}
	return false
}

// within reports whether the field path a is inside the field path b.
func within(a, b string) bool {
	return b == "" || strings.HasPrefix(a, b+".") || strings.HasPrefix(a, b+"[")
}

// parent returns the path of the field around path: "run" for
// "run.health", "smoke" for "smoke[0]", "" for "app".
func parent(path string) string {
	i := strings.LastIndexAny(path, ".[")
	if i < 0 {
		return ""
	}
	return path[:i]
}

func sortedKeys[V any](m map[string]V) []string {
	return slices.Sorted(maps.Keys(m))
}
