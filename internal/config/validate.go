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
	// checkName is the syntax of a release check's name (gates.checks).
	checkName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)
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
	d.validateVars("vars", c.Vars)
	d.validateRun(&c.Run, allKubernetes(c))
	d.validateEnvironments(c)
	d.validateStrategy("strategy", &c.Strategy, false)
	d.validateAnalysis("analysis", &c.Analysis)
	d.validateSmoke("smoke", c.Smoke)
	d.validateSmoke("post_smoke", c.PostSmoke)
	d.validatePipeline(c)
	d.emptySection("hotfix")
	if c.Hotfix != nil {
		d.validateHotfix(c.Hotfix)
	}
	if !d.emptySection("migrations") && c.Migrations != nil {
		d.validateMigrations(c.Migrations)
	}
	if c.Notifications != nil {
		d.validateNotifications(c.Notifications) // notifications.go
	}
	if c.DORA != nil {
		d.validateDORA(c.DORA)
	}
	if !d.emptySection("retire") && c.Retire != nil {
		d.validateRetire(c.Retire)
	}
	if !d.emptySection("tests") && c.Tests != nil {
		d.validateTests(c.Tests)
	}
	if !d.emptySection("doctor") && c.Doctor != nil {
		d.checkList("doctor.required", c.Doctor.Required, "gate", DoctorGates)
	}
}

// validateMigrations checks the migrations section.
func (d *decoder) validateMigrations(m *Migrations) {
	if m.Dir == "" {
		d.problemf("migrations.dir", `required: the directory of migration files, like "./migrations"`)
	}
	d.checkReferences("migrations.dir", m.Dir)
	switch {
	case m.Database == "":
		d.problemf("migrations.database", `required: the database URL, like "postgres://app@127.0.0.1:5432/shop" or "sqlite:./shop.db"`)
	case !strings.HasPrefix(m.Database, "postgres://") && !strings.HasPrefix(m.Database, "postgresql://") &&
		!strings.HasPrefix(m.Database, "sqlite:") && !strings.HasPrefix(m.Database, "${"):
		d.problemf("migrations.database", "must be a postgres:// URL or sqlite:PATH, got %q", redactURL(m.Database))
	}
	d.checkReferences("migrations.database", m.Database)
	switch m.Format {
	case "", "auto", "golang-migrate", "stem", "goose", "sql-migrate", "dbmate", "flyway":
	default:
		d.problemf("migrations.format", "unknown migration format %q: want golang-migrate, stem, goose, sql-migrate, dbmate or flyway (or leave it out to recognise each file)", m.Format)
	}
}

// redactURL hides a password in a database URL that goes into an error.
func redactURL(s string) string {
	at := strings.LastIndexByte(s, '@')
	scheme := strings.Index(s, "://")
	if at < 0 || scheme < 0 || at < scheme {
		return s
	}
	userinfo := s[scheme+3 : at]
	if i := strings.IndexByte(userinfo, ':'); i >= 0 {
		return s[:scheme+3] + userinfo[:i] + ":xxxxx" + s[at:]
	}
	return s
}

// emptySection reports a section whose presence means something (a
// strategy, a hotfix, an internal step, a drift gate) written with no value,
// like "blue_green:" alone on its line. An empty value leaves the default,
// which for these is "not set": rarely what the writer meant.
func (d *decoder) emptySection(path string) bool {
	e, ok := d.nodes[path]
	if !ok || !isNull(e.value) {
		return false
	}
	name := path[strings.LastIndexByte(path, '.')+1:]
	d.problemf(path, "%s is empty, which leaves it unset; write %s: {} to set it with its defaults, or remove it", name, name)
	return true
}

// validateVars checks the names of the release variables at path: the
// app's vars or an environment's.
func (d *decoder) validateVars(path string, vars map[string]string) {
	for _, name := range sortedKeys(vars) {
		switch {
		case !varName.MatchString(name):
			d.keyProblemf(path+"."+name, "variable names must be %s, got %q", varNameRule, name)
		case name == "VERSION" || name == "PORT":
			d.keyProblemf(path+"."+name, "%s is set by shipgate for every instance; choose another name", name)
		}
	}
}

func (d *decoder) validateRun(r *Run, noProcesses bool) {
	switch {
	case len(r.Command) == 0 && noProcesses:
		// Every environment runs on Kubernetes: nothing starts a process.
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
	d.instances("run.instances", r.Instances)
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

func (d *decoder) instances(path string, n int) {
	if n < 1 || n > 100 {
		d.problemf(path, "must be between 1 and 100, got %d", n)
	}
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

func (d *decoder) validateEnvironments(c *Config) {
	envs := c.Environments
	if len(envs) == 0 {
		d.problemf("environments", `required: at least one environment, like production: {listen: "127.0.0.1:8080"}`)
		return
	}
	// In file order, so that a problem between two environments is
	// reported on the later one.
	names := sortedKeys(envs)
	slices.SortStableFunc(names, func(a, b string) int {
		return cmp.Compare(d.line("environments."+a), d.line("environments."+b))
	})
	var addrs []listenAddress
	for _, name := range names {
		path := "environments." + name
		if !envName.MatchString(name) {
			d.keyProblemf(path, "environment names must be lowercase letters, digits and dashes, starting with a letter, got %q", name)
		}
		env := envs[name]
		if env == nil {
			env = &Environment{}
		}
		if env.Kubernetes != nil {
			d.validateKubernetes(path+".kubernetes", env.Kubernetes)
			if env.Metrics == nil || env.Metrics.Prometheus == nil {
				d.problemf(path+".kubernetes", "needs metrics.prometheus in this environment: on Kubernetes, releases are measured by Prometheus (the Gateway API does not count requests)")
			}
		}
		if env.Listen == "" && env.Kubernetes == nil {
			d.problemf(path+".listen", `required: the address of this environment's router, like "127.0.0.1:8080"`)
		} else if env.Listen != "" || d.isSet(path+".listen") {
			if a, ok := d.listenAddress(name, "listen", env.Listen); ok {
				addrs = append(addrs, a)
			}
		}
		if env.PreviewListen != "" || d.isSet(path+".preview_listen") {
			if a, ok := d.listenAddress(name, "preview_listen", env.PreviewListen); ok {
				addrs = append(addrs, a)
			}
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
		d.validateVars(path+".vars", env.Vars)
		if env.Instances != 0 || d.isSet(path+".instances") {
			d.instances(path+".instances", env.Instances)
		}
		d.validateGates(c, name, &env.Gates)
		if env.Strategy != nil {
			d.validateStrategy(path+".strategy", env.Strategy, true)
		}
		if env.Analysis != nil {
			d.validateAnalysis(path+".analysis", env.Analysis)
		}
		d.validateSmoke(path+".smoke", env.Smoke)
		d.validateSmoke(path+".post_smoke", env.PostSmoke)
		d.checkInternalUsers(c, name, env)
		if env.Metrics != nil {
			if p := env.Metrics.Prometheus; p != nil && p.Namespace == "" && env.Kubernetes != nil {
				// The app's metrics are in the namespace it runs in.
				p.Namespace = env.Kubernetes.Namespace
			}
			d.validateMetrics(c, path+".metrics", env.Metrics)
		}
	}
	d.checkClashes(addrs)
}

// listenAddress is an address a router binds: an environment's listen or
// preview_listen.
type listenAddress struct {
	env, field, text string
	ap               netip.AddrPort
}

func (a listenAddress) path() string { return "environments." + a.env + "." + a.field }

// listenAddress parses the address text of the field (listen or
// preview_listen) of environment env, and reports it when it is bad.
func (d *decoder) listenAddress(env, field, text string) (listenAddress, bool) {
	a := listenAddress{env: env, field: field, text: text}
	ap, msg := parseListen(text)
	if msg != "" {
		d.problemf(a.path(), "bad %s address %q: %s", field, text, msg)
		return a, false
	}
	a.ap = ap
	return a, true
}

// checkClashes reports every address that cannot be bound because an
// address earlier in the file takes it.
func (d *decoder) checkClashes(addrs []listenAddress) {
	slices.SortStableFunc(addrs, func(a, b listenAddress) int {
		na, nb := d.at(a.path()), d.at(b.path())
		return cmp.Or(cmp.Compare(na.Line, nb.Line), cmp.Compare(na.Column, nb.Column))
	})
	for i, a := range addrs {
		for _, b := range addrs[:i] {
			if !overlap(a.ap, b.ap) {
				continue
			}
			fix := "give each environment its own port"
			if a.field != "listen" || b.field != "listen" {
				fix = "give every listen and preview_listen address its own port"
			}
			if a.text == b.text {
				d.problemf(a.path(), "%q is already the %s address of environment %q (line %d); %s",
					a.text, b.field, b.env, d.line(b.path()), fix)
			} else {
				d.problemf(a.path(), "%q overlaps %q, the %s address of environment %q (line %d); %s",
					a.text, b.text, b.field, b.env, d.line(b.path()), fix)
			}
			break
		}
	}
}

// checkInternalUsers checks that an environment whose strategy lists
// internal users can recognise them: a user's id is read from the
// environment's sticky header or cookie.
func (d *decoder) checkInternalUsers(c *Config, name string, env *Environment) {
	if env.Sticky.Header != "" || env.Sticky.Cookie != "" {
		return
	}
	s, from, fix := &c.Strategy, "strategy", ", or give this environment a strategy of its own"
	if env.Strategy != nil {
		s, from, fix = env.Strategy, "environments."+name+".strategy", ""
	}
	if s.Canary == nil || s.Canary.Internal == nil || len(s.Canary.Internal.Users) == 0 {
		return
	}
	users := from + ".canary.internal.users"
	d.problemf("environments."+name+".sticky", "required by %s (line %d): internal users are recognised by the user id in the sticky header or cookie, and this environment sets neither; set sticky.header or sticky.cookie%s",
		users, d.line(users), fix)
}

func (d *decoder) validateGates(c *Config, env string, g *Gates) {
	path := "environments." + env + ".gates"
	for i, name := range g.Checks {
		p := fmt.Sprintf("%s.checks[%d]", path, i)
		switch j := slices.Index(g.Checks[:i], name); {
		case !checkName.MatchString(name):
			d.problemf(p, "check names must be letters, digits, dots, dashes and underscores, starting with a letter or digit, like unit-tests, got %q", name)
		case j >= 0:
			d.problemf(p, "%q is already listed (checks[%d]); remove one", name, j)
		}
	}
	if a := g.Approval; a != nil {
		if a.Required < 1 || a.Required > 10 {
			d.problemf(path+".approval.required", "must be from 1 to 10, got %d", a.Required)
		}
		for i, role := range a.Roles {
			if role != "deployer" && role != "admin" {
				d.problemf(fmt.Sprintf("%s.approval.roles[%d]", path, i), "must be deployer or admin (the roles that can call approve), got %q", role)
			}
		}
	}
	d.emptySection(path + ".drift")
	if g.Drift != nil {
		d.validateDrift(c, env, path+".drift", g.Drift)
	}
	d.validateTestGates(c, path, g)
}

var driftKinds = []string{"vars", "command", "instances", "migrations"}

func (d *decoder) validateDrift(c *Config, env, path string, g *DriftGate) {
	var others []string
	for _, name := range sortedKeys(c.Environments) {
		if name != env {
			others = append(others, name)
		}
	}
	like := ""
	if len(others) > 0 {
		like = ", like against: " + others[0]
	}
	switch {
	case len(others) == 0:
		d.problemf(path, "there is no other environment to compare %q with; remove drift", env)
	case g.Against == "" && c.previous(env) != "":
		// The environment before this one in the pipeline is wrong and
		// reported as such; fillEmpty fills in any other.
	case g.Against == "":
		d.problemf(path+".against", "required: %q has no environment before it in the pipeline; name the environment to compare with%s", env, like)
	case g.Against == env:
		d.problemf(path+".against", "%q is this environment; name another one to compare with%s", env, like)
	case !slices.Contains(others, g.Against):
		d.problemf(path+".against", "%s", unknownName("environment", g.Against, others))
	}
	d.checkList(path+".allow", g.Allow, "kind of difference", driftKinds)
}

// checkList checks that every element of list, the field at path, is one
// of known and is listed once.
func (d *decoder) checkList(path string, list []string, what string, known []string) {
	for i, v := range list {
		p := fmt.Sprintf("%s[%d]", path, i)
		switch j := slices.Index(list[:i], v); {
		case !slices.Contains(known, v):
			d.problemf(p, "%s", unknownName(what, v, known))
		case j >= 0:
			d.problemf(p, "%q is already listed (%s[%d]); remove one", v, path[strings.LastIndexByte(path, '.')+1:], j)
		}
	}
}

// unknownName says that name is not one of known, and which one was
// probably meant.
func unknownName(what, name string, known []string) string {
	if best := closest(name, known); best != "" {
		return fmt.Sprintf("unknown %s %q; did you mean %q?", what, name, best)
	}
	return fmt.Sprintf("unknown %s %q; use one of %s", what, name, strings.Join(known, ", "))
}

func (d *decoder) validatePipeline(c *Config) {
	if len(c.Environments) == 0 {
		return // reported already; every name would be unknown
	}
	names := sortedKeys(c.Environments)
	for i, name := range c.Pipeline {
		path := fmt.Sprintf("pipeline[%d]", i)
		switch j := slices.Index(c.Pipeline[:i], name); {
		case !slices.Contains(names, name):
			d.problemf(path, "%s", unknownName("environment", name, names))
		case j >= 0:
			d.problemf(path, "%q is already in the pipeline (pipeline[%d]); list each environment once", name, j)
		}
	}
}

// hotfixGates are the gates a hotfix may skip, in the order a deploy
// checks them.
var hotfixGates = append([]string{"pipeline", "checks", "approval", "drill", "drift"}, hotfixTestGates...)

func (d *decoder) validateHotfix(h *Hotfix) {
	for i, gate := range h.Skip {
		path := fmt.Sprintf("hotfix.skip[%d]", i)
		switch j := slices.Index(h.Skip[:i], gate); {
		case gate == "smoke" || gate == "post_smoke":
			d.problemf(path, "%s checks are never skipped, not even by a hotfix: a release that fails them is broken; remove %s", gate, gate)
		case !slices.Contains(hotfixGates, gate):
			d.problemf(path, "%s", unknownName("gate", gate, hotfixGates))
		case j >= 0:
			d.problemf(path, "%q is already listed (skip[%d]); remove one", gate, j)
		}
	}
	if h.BakeScale <= 0 || h.BakeScale > 1 {
		d.problemf("hotfix.bake_scale", "must be greater than 0 and at most 1 (0.1 makes every bake a tenth as long), got %g", h.BakeScale)
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
	switch host {
	case "":
		return netip.AddrPort{}, `the host is missing; write "127.0.0.1:` + port + `" to serve this machine only, or "0.0.0.0:` + port + `" to serve every network`
	case "localhost":
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

// strategies are the fields of Strategy, in the order of the struct.
var strategies = []string{"canary", "blue_green", "rolling"}

// set returns the YAML names of the strategies s sets.
func (s *Strategy) set() []string {
	var names []string
	for i, ok := range []bool{s.Canary != nil, s.BlueGreen != nil, s.Rolling != nil} {
		if ok {
			names = append(names, strategies[i])
		}
	}
	return names
}

// validateStrategy checks the strategy at path: the app's, or with override
// an environment's, which must set one.
func (d *decoder) validateStrategy(path string, s *Strategy, override bool) {
	set := s.set()
	empty := false
	for _, name := range strategies {
		empty = d.emptySection(path+"."+name) || empty
	}
	switch {
	case len(set) == 0 && override && !empty:
		d.problemf(path, "set one of %s, or leave strategy out to use the app's", strings.Join(strategies, ", "))
	case len(set) > 1:
		slices.SortStableFunc(set, func(a, b string) int {
			return cmp.Compare(d.keyAt(path+"."+a).Line, d.keyAt(path+"."+b).Line)
		})
		for _, name := range set[1:] {
			d.keyProblemf(path+"."+name, "%s is already set (line %d); set only one of %s",
				set[0], d.keyAt(path+"."+set[0]).Line, strings.Join(strategies, ", "))
		}
	}
	if s.Canary != nil {
		d.validateCanary(path+".canary", s.Canary)
	}
	if r := s.Rolling; r != nil {
		path := path + ".rolling"
		if r.MaxSurge < 0 {
			d.problemf(path+".max_surge", "must be at least 0, got %d", r.MaxSurge)
		}
		if r.MaxUnavailable < 0 {
			d.problemf(path+".max_unavailable", "must be at least 0, got %d", r.MaxUnavailable)
		}
		// max_surge defaults to 1, so both are 0 only when the file says
		// max_surge: 0.
		if r.MaxSurge == 0 && r.MaxUnavailable == 0 && !d.hasFailed(path+".max_unavailable") {
			d.problemf(path+".max_surge", "max_surge and max_unavailable cannot both be 0, or no instance could ever be replaced; "+
				"set max_surge: 1 to start each new instance before an old one stops, or max_unavailable: 1 to stop an old one first")
		}
	}
}

func (d *decoder) validateCanary(path string, c *Canary) {
	for i, s := range c.Steps {
		path := fmt.Sprintf("%s.steps[%d].weight", path, i)
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
	d.emptySection(path + ".internal")
	if c.Internal != nil {
		d.validateInternal(path+".internal", c.Internal)
	}
}

func (d *decoder) validateInternal(path string, in *Internal) {
	header := in.Header != "" || d.isSet(path+".header")
	cookie := in.Cookie != "" || d.isSet(path+".cookie")
	if !header && !cookie && len(in.Users) == 0 {
		d.problemf(path, "set at least one of header, cookie and users, to say who is internal")
	}
	if header && !isToken(in.Header) {
		d.problemf(path+".header", "must be a valid HTTP header name, like X-Internal, got %q", in.Header)
	}
	if cookie && !isToken(in.Cookie) {
		d.problemf(path+".cookie", "must be a valid cookie name, like internal, got %q", in.Cookie)
	}
	if len(in.Values) > 0 && !header && !cookie {
		d.problemf(path+".values", "values are matched against the header or the cookie, and neither is set; set header or cookie, or remove values")
	}
	for i, u := range in.Users {
		p := fmt.Sprintf("%s.users[%d]", path, i)
		switch j := slices.Index(in.Users[:i], u); {
		case u == "":
			d.problemf(p, "must be a user id, as sent in the sticky header or cookie; got an empty string")
		case j >= 0:
			d.problemf(p, "%q is already listed (users[%d]); remove one", u, j)
		}
	}
}

func validWeight(w int) bool { return w >= 1 && w <= 100 }

var metrics = []Metric{MetricErrorRate, MetricLatencyP50, MetricLatencyP95, MetricLatencyP99}

// validateAnalysis checks the analysis at path: the app's or an
// environment's.
func (d *decoder) validateAnalysis(path string, a *Analysis) {
	d.positive(path+".interval", a.Interval)
	if a.MinRequests < 1 {
		d.problemf(path+".min_requests", "must be at least 1, got %d", a.MinRequests)
	}
	d.confidence(path+".fail_confidence", a.FailConfidence)
	d.confidence(path+".pass_confidence", a.PassConfidence)
	if p := a.OnInconclusive; p != InconclusivePause && p != InconclusiveExtend && p != InconclusiveRollback {
		d.problemf(path+".on_inconclusive", "must be pause, extend or rollback, got %q", p)
	}
	if a.ExpectedRPS < 0 {
		d.problemf(path+".expected_rps", "must not be negative, got %g", a.ExpectedRPS)
	}
	if a.Settle != nil && a.Settle.D() < 0 {
		d.problemf(path+".settle", "must be 0s or more, got %s", a.Settle.D())
	}
	for i, g := range a.Gates {
		d.validateGate(fmt.Sprintf("%s.gates[%d]", path, i), g)
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
	if ratioSet && g.MaxRatioToStable <= 0 {
		d.problemf(path+".max_ratio_to_stable", "must be greater than 0 (1 means no worse than stable), got %g", g.MaxRatioToStable)
	}
	if g.ConsecutiveFailures < 0 || g.ConsecutiveFailures == 0 && d.isSet(path+".consecutive_failures") {
		d.problemf(path+".consecutive_failures", "must be at least 1, got %d", g.ConsecutiveFailures)
	}
	if g.Metric == MetricErrorRate {
		inc := g.MaxIncreaseOverStable
		switch {
		case g.Max == nil && !ratioSet && inc == nil:
			d.problemf(path, "the gate has no limit: set max (like max: 0.01), max_increase_over_stable (like 0.005) or max_ratio_to_stable (like 1.5)")
		case g.Max != nil && (g.Max.IsDuration || g.Max.Value > 1):
			d.problemf(path+".max", `must be a fraction from 0 to 1 (0.005) or a percentage up to 100%% ("0.5%%") for error_rate, got %s`, d.text(path+".max"))
		}
		if inc != nil && (inc.IsDuration || inc.Value > 1) {
			d.problemf(path+".max_increase_over_stable", `must be a fraction from 0 to 1 (0.005) or a percentage up to 100%% ("0.5%%"), got %s`, d.text(path+".max_increase_over_stable"))
		}
		return
	}
	if g.MaxIncreaseOverStable != nil {
		d.problemf(path+".max_increase_over_stable", "only error_rate gates have an increase over stable; for %s use max_ratio_to_stable, like 2", g.Metric)
		return
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

// validateSmoke checks the list of smoke checks at path: smoke or
// post_smoke, the app's or an environment's.
func (d *decoder) validateSmoke(path string, checks []SmokeCheck) {
	for i, s := range checks {
		d.validateSmokeCheck(fmt.Sprintf("%s[%d]", path, i), s)
	}
}

func (d *decoder) validateSmokeCheck(path string, s SmokeCheck) {
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
	d.add(path, d.keyAt(path), format, args...)
}

// keyAt returns the key of the field at path, or the node problems with the
// field are reported at when it has no key (a list item).
func (d *decoder) keyAt(path string) *yaml.Node {
	if e, ok := d.nodes[path]; ok && e.key != nil {
		return e.key
	}
	return d.at(path)
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

// allKubernetes reports whether every environment runs on Kubernetes: then
// run.command, which starts local processes, is not needed.
func allKubernetes(c *Config) bool {
	for _, env := range c.Environments {
		if env == nil || env.Kubernetes == nil {
			return false
		}
	}
	return len(c.Environments) > 0
}
