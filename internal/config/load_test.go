package config

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

var update = flag.Bool("update", false, "rewrite testdata/invalid/*.err with the errors Load returns now")

func TestParse_Valid(t *testing.T) {
	files, err := filepath.Glob("testdata/valid/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 2 {
		t.Fatalf("found %d valid configs in testdata/valid, want at least full.yaml and minimal.yaml", len(files))
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			c, err := Load(file)
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			if got, want := c.Source, file; got != want {
				t.Errorf("Source = %q, want %q", got, want)
			}
			if !filepath.IsAbs(c.Run.Dir) {
				t.Errorf("Run.Dir = %q, want an absolute path", c.Run.Dir)
			}
		})
	}
}

func TestParse_Defaults(t *testing.T) {
	c, err := Load("testdata/valid/minimal.yaml")
	if err != nil {
		t.Fatal(err)
	}
	dir, err := filepath.Abs("testdata/valid")
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		field     string
		got, want any
	}{
		{"run.dir", c.Run.Dir, dir},
		{"run.instances", c.Run.Instances, 2},
		{"run.health.path", c.Run.Health.Path, "/healthz"},
		{"run.health.interval", c.Run.Health.Interval.D(), time.Second},
		{"run.health.timeout", c.Run.Health.Timeout.D(), time.Second},
		{"run.health.failure_threshold", c.Run.Health.FailureThreshold, 3},
		{"run.start_timeout", c.Run.StartTimeout.D(), 30 * time.Second},
		{"run.stop_grace", c.Run.StopGrace.D(), 10 * time.Second},
		{"strategy.canary.steps", stepsString(c.Strategy.Canary.Steps), "5%/10m 25%/15m 50%/15m"},
		{"strategy.canary.scale_down_delay", c.Strategy.Canary.ScaleDownDelay.D(), 30 * time.Second},
		{"analysis.interval", c.Analysis.Interval.D(), 10 * time.Second},
		{"analysis.min_requests", c.Analysis.MinRequests, 50},
		{"analysis.fail_confidence", c.Analysis.FailConfidence, 0.99},
		{"analysis.pass_confidence", c.Analysis.PassConfidence, 0.95},
		{"analysis.gates", gatesString(c.Analysis.Gates), "error_rate max 0.01, latency_p99 ratio 2"},
	} {
		if tt.got != tt.want {
			t.Errorf("%s = %v, want %v", tt.field, tt.got, tt.want)
		}
	}
}

func TestParse_Full(t *testing.T) {
	c, err := Load("testdata/valid/full.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		field     string
		got, want any
	}{
		{"app", c.App, "shop"},
		{"vars.MERCHANT_ID", c.Vars["MERCHANT_ID"], "m-123"},
		{"run.command", strings.Join(c.Run.Command, " "), "./releases/${VERSION}/shop --port ${PORT} --pay-fail-rate ${PAY_FAIL_RATE}"},
		{"run.env.MERCHANT_ID", c.Run.Env["MERCHANT_ID"], "${MERCHANT_ID}"},
		{"environments.production.listen", c.Environments["production"].Listen, "127.0.0.1:8080"},
		{"environments.production.sticky.header", c.Environments["production"].Sticky.Header, "X-User-ID"},
		{"strategy.canary.steps", stepsString(c.Strategy.Canary.Steps), "5%/10m 25%/15m 50%/15m"},
		{"analysis.gates", gatesString(c.Analysis.Gates), "error_rate max 0.005, latency_p99 ratio 2"},
		{"smoke[0].timeout", c.Smoke[0].Timeout.D(), 5 * time.Second},
	} {
		if tt.got != tt.want {
			t.Errorf("%s = %v, want %v", tt.field, tt.got, tt.want)
		}
	}
}

// TestParse_Everything checks that values the file sets win over defaults,
// zero included.
func TestParse_Everything(t *testing.T) {
	c, err := Load("testdata/valid/everything.yaml")
	if err != nil {
		t.Fatal(err)
	}
	dir, err := filepath.Abs("testdata/apps/billing")
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		field     string
		got, want any
	}{
		{"vars.WORKERS", c.Vars["WORKERS"], "4"},
		{"run.dir", c.Run.Dir, dir},
		{"run.instances", c.Run.Instances, 3},
		{"run.health.interval", c.Run.Health.Interval.D(), 500 * time.Millisecond},
		{"run.health.failure_threshold", c.Run.Health.FailureThreshold, 5},
		{"run.stop_grace", c.Run.StopGrace.D(), time.Duration(0)},
		{"strategy.canary.steps", stepsString(c.Strategy.Canary.Steps), "1%/0s 10%/10m 100%/1h"},
		{"strategy.canary.scale_down_delay", c.Strategy.Canary.ScaleDownDelay.D(), 2 * time.Minute},
		{"analysis.fail_confidence", c.Analysis.FailConfidence, 0.9999},
		{"analysis.pass_confidence", c.Analysis.PassConfidence, 0.5},
		{"analysis.gates", gatesString(c.Analysis.Gates), "error_rate max 0.005 ratio 1.5 increase 0.0025 consecutive 3, latency_p50 max 100ms, latency_p95 max 1.5s ratio 1, latency_p99 ratio 1.5"},
		{"analysis.settle", *c.Analysis.Settle, Duration(0)},
		{"environments.staging.sticky.cookie", c.Environments["staging"].Sticky.Cookie, "session_id"},
		{"smoke[0].expect_status", c.Smoke[0].ExpectStatus, 200},
		{"smoke[1].expect_status", c.Smoke[1].ExpectStatus, 204},
		{"smoke[1].timeout", c.Smoke[1].Timeout.D(), 2 * time.Second},
		{"strategy.canary.internal.bake", c.Strategy.Canary.Internal.Bake.D(), time.Hour},
		{"strategy.canary.internal.values", fmt.Sprint(c.Strategy.Canary.Internal.Values), "[yes]"},
		{"environments.staging.instances", c.Environments["staging"].Instances, 1},
		{"environments.staging.gates.approval", c.Environments["staging"].Gates.Approval == nil, true},
		{"environments.staging.gates.drill_within", c.Environments["staging"].Gates.DrillWithin.D(), time.Duration(0)},
		{"environments.staging.strategy.rolling.max_surge", c.Environments["staging"].Strategy.Rolling.MaxSurge, 0},
		{"environments.staging.strategy.rolling.max_unavailable", c.Environments["staging"].Strategy.Rolling.MaxUnavailable, 1},
		{"environments.staging.strategy.rolling.bake", c.Environments["staging"].Strategy.Rolling.Bake.D(), time.Duration(0)},
		{"environments.staging.analysis.interval", c.Environments["staging"].Analysis.Interval.D(), time.Second},
		{"environments.staging.analysis.gates", gatesString(c.Environments["staging"].Analysis.Gates), "latency_p99 max 2s"},
		{"environments.staging.post_smoke[0].expect_status", c.Environments["staging"].PostSmoke[0].ExpectStatus, 202},
		{"environments.production.gates.drift.against", c.Environments["production"].Gates.Drift.Against, "staging"},
		{"environments.production.strategy.blue_green.keep_blue", c.Environments["production"].Strategy.BlueGreen.KeepBlue.D(), time.Duration(0)},
		{"environments.production.strategy.blue_green.analysis", c.Environments["production"].Strategy.BlueGreen.Analysis.D(), 30 * time.Second},
		{"post_smoke[0].timeout", c.PostSmoke[0].Timeout.D(), time.Second},
		{"hotfix.bake_scale", c.Hotfix.BakeScale, 1.0},
	} {
		if tt.got != tt.want {
			t.Errorf("%s = %v, want %v", tt.field, tt.got, tt.want)
		}
	}
}

// TestParse_StrategyDefaults checks the defaults of the strategies, of
// hotfixes and of an environment's overrides, which replace the app's
// settings as a whole and are filled like them.
func TestParse_StrategyDefaults(t *testing.T) {
	c, err := Parse("shipgate.yaml", []byte(`app: api
run: {command: [./api]}
environments:
  production:
    listen: 127.0.0.1:8080
    strategy: {canary: {internal: {header: X-Internal}}}
    analysis: {min_requests: 5}
    smoke: [{path: /a}]
    post_smoke: [{path: /b}]
  staging:
    listen: 127.0.0.1:9080
    strategy: {rolling: {}}
strategy: {blue_green: {}}
post_smoke: [{path: /c}]
hotfix: {}
`))
	if err != nil {
		t.Fatal(err)
	}
	prod, staging := c.Environments["production"], c.Environments["staging"]
	for _, tt := range []struct {
		field     string
		got, want any
	}{
		{"strategy.canary", c.Strategy.Canary == nil, true}, // no default canary beside blue_green
		{"strategy.blue_green.keep_blue", c.Strategy.BlueGreen.KeepBlue.D(), 10 * time.Minute},
		{"strategy.blue_green.analysis", c.Strategy.BlueGreen.Analysis.D(), time.Minute},
		{"post_smoke", smokeString(c.PostSmoke), "/c 200 5s"},
		{"hotfix.bake_scale", c.Hotfix.BakeScale, 0.1},
		{"hotfix.skip", len(c.Hotfix.Skip), 0},
		{"environments.production.strategy.canary.steps", stepsString(prod.Strategy.Canary.Steps), "5%/10m 25%/15m 50%/15m"},
		{"environments.production.strategy.canary.scale_down_delay", prod.Strategy.Canary.ScaleDownDelay.D(), 30 * time.Second},
		{"environments.production.strategy.canary.internal.bake", prod.Strategy.Canary.Internal.Bake.D(), 10 * time.Minute},
		{"environments.production.analysis.min_requests", prod.Analysis.MinRequests, 5},
		{"environments.production.analysis.interval", prod.Analysis.Interval.D(), 10 * time.Second},
		{"environments.production.analysis.fail_confidence", prod.Analysis.FailConfidence, 0.99},
		{"environments.production.analysis.gates", gatesString(prod.Analysis.Gates), "error_rate max 0.01, latency_p99 ratio 2"},
		{"environments.production.smoke", smokeString(prod.Smoke), "/a 200 5s"},
		{"environments.production.post_smoke", smokeString(prod.PostSmoke), "/b 200 5s"},
		{"environments.staging.strategy.rolling.max_surge", staging.Strategy.Rolling.MaxSurge, 1},
		{"environments.staging.strategy.rolling.max_unavailable", staging.Strategy.Rolling.MaxUnavailable, 0},
		{"environments.staging.strategy.rolling.bake", staging.Strategy.Rolling.Bake.D(), 30 * time.Second},
		{"environments.staging.strategy.canary", staging.Strategy.Canary == nil, true},
		{"environments.staging.analysis", staging.Analysis == nil, true},
		{"environments.staging.instances", staging.Instances, 0},
	} {
		if tt.got != tt.want {
			t.Errorf("%s = %v, want %v", tt.field, tt.got, tt.want)
		}
	}
}

func TestParse_Anchors(t *testing.T) {
	c, err := Load("testdata/valid/anchors.yaml")
	if err != nil {
		t.Fatal(err)
	}
	prod := c.Environments["production"]
	if got, want := prod.Listen, "127.0.0.1:8080"; got != want {
		t.Errorf("production listen = %q, want %q (the mapping's own key wins over the merged one)", got, want)
	}
	if got, want := prod.Sticky, (Sticky{Header: "X-User-ID"}); got != want {
		t.Errorf("production sticky = %+v, want %+v", got, want)
	}
	if got, want := c.Smoke[1].Path, "/version"; got != want {
		t.Errorf("smoke[1].path = %q, want %q", got, want)
	}
	if got, want := c.Smoke[1].Timeout.D(), time.Second; got != want {
		t.Errorf("smoke[1].timeout = %v, want %v (merged from smoke[0])", got, want)
	}
}

// TestParse_Invalid checks each testdata/invalid/<case>.yaml against the
// exact error in <case>.err. Run with -update to rewrite the .err files,
// then read the diff: each line must say where, which field and what to do.
func TestParse_Invalid(t *testing.T) {
	files, err := filepath.Glob("testdata/invalid/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, file := range files {
		t.Run(strings.TrimSuffix(filepath.Base(file), ".yaml"), func(t *testing.T) {
			c, err := Load(file)
			if err == nil {
				t.Fatalf("Load returned a config (app %q), want an error", c.App)
			}
			var cerr *Error
			if !errors.As(err, &cerr) {
				t.Fatalf("Load error is a %T, want a *config.Error: %v", err, err)
			}
			if c != nil {
				t.Errorf("Load returned a config along with its error")
			}
			golden := strings.TrimSuffix(file, ".yaml") + ".err"
			got := err.Error() + "\n"
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if got != string(want) {
				t.Errorf("Load(%s) error:\n%s\nwant (%s):\n%s", file, got, golden, want)
			}
		})
	}
}

// TestParse_Aliases checks that anchors cannot make Parse loop or blow up:
// an anchor that merges itself, and one that expands exponentially.
func TestParse_Aliases(t *testing.T) {
	ten := strings.Repeat("*x, ", 9) + "*x"
	for _, tt := range []struct {
		name, yaml, want string
	}{
		{"self merge", "run: &x {<<: *x}\n", "shipgate.yaml:1:10: run: merge keys (<<) nest too deep; is an anchor merging itself?"},
		{"exponential merge", "run: &x {<<: [" + ten + "]}\n", "shipgate.yaml:1:10: run: the file expands to too many values; are aliases (*name) repeating a big anchor?"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("shipgate.yaml", []byte(tt.yaml))
			if got := errorText(err); !strings.Contains(got, tt.want) {
				t.Errorf("error:\n%s\nwant a line:\n%s", got, tt.want)
			}
		})
	}
}

func TestError_Error(t *testing.T) {
	e := &Error{Problems: []Problem{
		{File: "shipgate.yaml", Line: 12, Column: 5, Field: "strategy.canary.steps[1].weight", Message: "must be between 1 and 100, got 120"},
		{File: "shipgate.yaml", Line: 14, Message: "invalid YAML: mapping values are not allowed in this context"},
		{File: "shipgate.yaml", Message: emptyMessage},
	}}
	want := "shipgate.yaml:12:5: strategy.canary.steps[1].weight: must be between 1 and 100, got 120\n" +
		"shipgate.yaml:14: invalid YAML: mapping values are not allowed in this context\n" +
		"shipgate.yaml: " + emptyMessage
	if got := e.Error(); got != want {
		t.Errorf("Error() =\n%s\nwant\n%s", got, want)
	}
}

func TestParse_Duration(t *testing.T) {
	for _, tt := range []struct {
		value string
		want  time.Duration
		err   string
	}{
		{value: "10m", want: 10 * time.Minute},
		{value: "1.5s", want: 1500 * time.Millisecond},
		{value: "1h30m", want: 90 * time.Minute},
		{value: `"0s"`, want: 0},
		{value: "10", err: `must be a duration with a unit, like "10s" or "1m30s", got the bare number 10`},
		{value: "1.5", err: `must be a duration with a unit, like "10s" or "1m30s", got the bare number 1.5`},
		{value: "ten minutes", err: `must be a duration like "10s" or "1m30s", got "ten minutes"`},
		{value: "-1s", err: "must not be negative, got -1s"},
		{value: "[1s]", err: `must be a duration like "10s" or "1m30s", got a list`},
		{value: "true", err: `must be a duration like "10s" or "1m30s", got true`},
	} {
		t.Run(tt.value, func(t *testing.T) {
			line := "run: {command: [./api], stop_grace: " + tt.value + "}"
			c, err := Parse("shipgate.yaml", minimal(line))
			if tt.err != "" {
				at := fmt.Sprintf("shipgate.yaml:3:%d: ", strings.Index(line, tt.value)+1)
				if got, want := errorText(err), at+"run.stop_grace: "+tt.err; got != want {
					t.Errorf("error = %s, want %s", got, want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got, want := c.Run.StopGrace.D(), tt.want; got != want {
				t.Errorf("stop_grace = %v, want %v", got, want)
			}
		})
	}
}

func TestParse_Threshold(t *testing.T) {
	for _, tt := range []struct {
		metric, value string
		want          Threshold
		err           string
	}{
		{metric: "error_rate", value: "0.005", want: Threshold{Value: 0.005}},
		{metric: "error_rate", value: "0", want: Threshold{Value: 0}},
		{metric: "error_rate", value: "1", want: Threshold{Value: 1}},
		{metric: "error_rate", value: "0.5%", want: Threshold{Value: 0.005}},
		{metric: "error_rate", value: `"100%"`, want: Threshold{Value: 1}},
		{metric: "latency_p99", value: "250ms", want: Threshold{Value: 0.25, IsDuration: true}},
		{metric: "latency_p50", value: "2s", want: Threshold{Value: 2, IsDuration: true}},
		{metric: "error_rate", value: "1.5", err: `must be a fraction from 0 to 1 (0.005) or a percentage up to 100% ("0.5%") for error_rate, got 1.5`},
		{metric: "error_rate", value: "150%", err: `must be a fraction from 0 to 1 (0.005) or a percentage up to 100% ("0.5%") for error_rate, got 150%`},
		{metric: "error_rate", value: "250ms", err: `must be a fraction from 0 to 1 (0.005) or a percentage up to 100% ("0.5%") for error_rate, got 250ms`},
		{metric: "error_rate", value: "-0.1", err: "must not be negative, got -0.1"},
		{metric: "error_rate", value: ".nan", err: `must be a fraction (0.005), a percentage ("0.5%") or a duration ("250ms"), got .nan`},
		{metric: "error_rate", value: "1e2%", err: `must be a fraction (0.005), a percentage ("0.5%") or a duration ("250ms"), got "1e2%"`},
		{metric: "latency_p99", value: "0.25", err: `must be a duration for latency_p99, like "250ms", got 0.25`},
		{metric: "latency_p99", value: "0s", err: "must be greater than 0, got 0s"},
		{metric: "latency_p99", value: "-1s", err: "must not be negative, got -1s"},
	} {
		t.Run(tt.metric+" "+tt.value, func(t *testing.T) {
			line := "analysis: {gates: [{metric: " + tt.metric + ", max: " + tt.value + "}]}"
			c, err := Parse("shipgate.yaml", minimal(line))
			if tt.err != "" {
				at := fmt.Sprintf("shipgate.yaml:3:%d: ", strings.Index(line, tt.value)+1)
				if got, want := errorText(err), at+"analysis.gates[0].max: "+tt.err; got != want {
					t.Errorf("error = %s, want %s", got, want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got, want := *c.Analysis.Gates[0].Max, tt.want; got != want {
				t.Errorf("max = %+v, want %+v", got, want)
			}
		})
	}
}

func TestParse_Listen(t *testing.T) {
	for _, tt := range []struct {
		listen, err string
	}{
		{listen: "127.0.0.1:8080"},
		{listen: "localhost:1"},
		{listen: `"[::1]:65535"`},
		{listen: "0.0.0.0:80"},
		{listen: `"8080"`, err: `bad listen address "8080": missing port in address; write host:port, like "127.0.0.1:8080"`},
		{listen: `":8080"`, err: `bad listen address ":8080": the host is missing; write "127.0.0.1:8080" to serve this machine only, or "0.0.0.0:8080" to serve every network`},
		{listen: "example.com:80", err: `bad listen address "example.com:80": the host must be an IP address or localhost; write host:port, like "127.0.0.1:8080"`},
		{listen: "127.0.0.1:0", err: `bad listen address "127.0.0.1:0": the port must be a number from 1 to 65535; write host:port, like "127.0.0.1:8080"`},
		{listen: "127.0.0.1:http", err: `bad listen address "127.0.0.1:http": the port must be a number from 1 to 65535; write host:port, like "127.0.0.1:8080"`},
		{listen: `"::1:80"`, err: `bad listen address "::1:80": too many colons in address; write host:port, like "127.0.0.1:8080"`},
	} {
		t.Run(tt.listen, func(t *testing.T) {
			line := "environments: {production: {listen: " + tt.listen + "}}"
			_, err := Parse("shipgate.yaml", []byte("app: api\nrun: {command: [./api]}\n"+line+"\n"))
			if tt.err == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			at := fmt.Sprintf("shipgate.yaml:3:%d: ", strings.Index(line, tt.listen)+1)
			if got, want := errorText(err), at+"environments.production.listen: "+tt.err; got != want {
				t.Errorf("error = %s, want %s", got, want)
			}
		})
	}
}

func TestLoad_MissingFile(t *testing.T) {
	_, err := Load("testdata/no-such-file.yaml")
	if !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Load error = %v, want one wrapping os.ErrNotExist", err)
	}
}

func TestParse_RunDir(t *testing.T) {
	for _, tt := range []struct {
		name, dir, want string
	}{
		{name: "/srv/shop/shipgate.yaml", want: "/srv/shop"},
		{name: "/srv/shop/shipgate.yaml", dir: "bin", want: "/srv/shop/bin"},
		{name: "/srv/shop/shipgate.yaml", dir: "../shared", want: "/srv/shared"},
		{name: "/srv/shop/shipgate.yaml", dir: "/opt/shop", want: "/opt/shop"},
	} {
		t.Run(tt.dir, func(t *testing.T) {
			c, err := Parse(tt.name, minimal("run: {command: [./api], dir: '"+tt.dir+"'}"))
			if err != nil {
				t.Fatal(err)
			}
			if got, want := c.Run.Dir, tt.want; got != want {
				t.Errorf("Run.Dir = %q, want %q", got, want)
			}
		})
	}
}

func TestConfig_DefaultEnv(t *testing.T) {
	for _, tt := range []struct {
		envs []string
		want string
		err  string
	}{
		{envs: []string{"staging", "production"}, want: "production"},
		{envs: []string{"staging"}, want: "staging"},
		{envs: []string{"staging", "preview"}, err: "shipgate.yaml has several environments (preview, staging) and none is named production; choose one with --env"},
		{envs: nil, err: "shipgate.yaml declares no environments; add one under environments"},
	} {
		t.Run(strings.Join(tt.envs, ","), func(t *testing.T) {
			c := &Config{Source: "shipgate.yaml", Environments: map[string]*Environment{}}
			for _, name := range tt.envs {
				c.Environments[name] = &Environment{}
			}
			got, err := c.DefaultEnv()
			if got, want := errorText(err), tt.err; got != want {
				t.Fatalf("error = %q, want %q", got, want)
			}
			if got != tt.want {
				t.Errorf("DefaultEnv() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestConfig_Environment(t *testing.T) {
	prod := &Environment{Listen: "127.0.0.1:8080"}
	c := &Config{Source: "shipgate.yaml", Environments: map[string]*Environment{"production": prod, "staging": {}}}
	if got, err := c.Environment("production"); err != nil || got != prod {
		t.Errorf("Environment(production) = %v, %v; want the production environment", got, err)
	}
	_, err := c.Environment("prod")
	if got, want := errorText(err), `unknown environment "prod": shipgate.yaml declares production, staging`; got != want {
		t.Errorf("Environment(prod) error = %q, want %q", got, want)
	}
}

// minimal returns a valid config with the line extra on line 3, followed by
// a run unless extra is one.
func minimal(extra string) []byte {
	s := "app: api\nenvironments: {production: {listen: 127.0.0.1:8080}}\n" + extra + "\n"
	if !strings.HasPrefix(extra, "run:") {
		s += "run: {command: [./api]}\n"
	}
	return []byte(s)
}

func errorText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func stepsString(steps []CanaryStep) string {
	parts := make([]string, len(steps))
	for i, s := range steps {
		parts[i] = strconv.Itoa(s.Weight) + "%/" + s.Bake.String()
	}
	return strings.Join(parts, " ")
}

func gatesString(gates []Gate) string {
	parts := make([]string, len(gates))
	for i, g := range gates {
		s := string(g.Metric)
		if g.Max != nil {
			s += fmt.Sprint(" max ", g.Max.value())
		}
		if g.MaxRatioToStable != 0 {
			s += fmt.Sprint(" ratio ", g.MaxRatioToStable)
		}
		if g.MaxIncreaseOverStable != nil {
			s += fmt.Sprint(" increase ", g.MaxIncreaseOverStable.value())
		}
		if g.ConsecutiveFailures != 0 {
			s += fmt.Sprint(" consecutive ", g.ConsecutiveFailures)
		}
		parts[i] = s
	}
	return strings.Join(parts, ", ")
}

// TestConfig_RoundTrip checks that a config marshalled to YAML parses back
// to the same config, and that JSON does the same: durations and
// thresholds are written the way shipgate.yaml writes them.
func TestConfig_RoundTrip(t *testing.T) {
	// pipeline.yaml is left out: its post_smoke: [] (no checks in this
	// environment) is written back as no post_smoke (the app's checks),
	// because omitempty cannot tell an empty list from a missing one.
	for _, file := range []string{"testdata/valid/full.yaml", "testdata/valid/everything.yaml"} {
		t.Run(filepath.Base(file), func(t *testing.T) {
			c, err := Load(file)
			if err != nil {
				t.Fatal(err)
			}
			data, err := yaml.Marshal(c)
			if err != nil {
				t.Fatal(err)
			}
			again, err := Parse(file, data)
			if err != nil {
				t.Fatalf("marshalled config does not parse: %v\n%s", err, data)
			}
			if !reflect.DeepEqual(again, c) {
				t.Errorf("YAML round trip changed the config:\n%s", data)
			}

			data, err = json.Marshal(c)
			if err != nil {
				t.Fatal(err)
			}
			var fromJSON Config
			if err := json.Unmarshal(data, &fromJSON); err != nil {
				t.Fatal(err)
			}
			fromJSON.Source = c.Source
			if !reflect.DeepEqual(&fromJSON, c) {
				t.Errorf("JSON round trip changed the config:\n%s", data)
			}
		})
	}
}
