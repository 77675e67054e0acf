package config

import (
	"fmt"
	"maps"
	"testing"
	"time"
)

func TestConfig_Stage(t *testing.T) {
	c, err := Load("testdata/valid/pipeline.yaml")
	if err != nil {
		t.Fatal(err)
	}
	prod, err := c.Stage("production")
	if err != nil {
		t.Fatal(err)
	}
	staging, err := c.Stage("staging")
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		field     string
		got, want any
	}{
		{"production.Name", prod.Name, "production"},
		{"production.Env", prod.Env, c.Environments["production"]},
		{"production.Vars", fmt.Sprint(prod.Vars), "map[LOG_LEVEL:info REGION:eu-central-1]"},
		{"production.Instances", prod.Instances, 2},
		{"production.Previous", prod.Previous, "staging"},
		{"production.Strategy.BlueGreen", prod.Strategy.BlueGreen == nil, true},
		{"production.Strategy.Canary.Steps", stepsString(prod.Strategy.Canary.Steps), "10%/5m 50%/10m"},
		{"production.Strategy.Canary.ScaleDownDelay", prod.Strategy.Canary.ScaleDownDelay.D(), 30 * time.Second},
		{"production.Strategy.Canary.Internal.Header", prod.Strategy.Canary.Internal.Header, "X-Internal"},
		{"production.Strategy.Canary.Internal.Values", fmt.Sprint(prod.Strategy.Canary.Internal.Values), "[1 true]"},
		{"production.Strategy.Canary.Internal.Users", fmt.Sprint(prod.Strategy.Canary.Internal.Users), "[alice bob]"},
		{"production.Strategy.Canary.Internal.Bake", prod.Strategy.Canary.Internal.Bake.D(), 10 * time.Minute},
		{"production.Analysis.Gates", gatesString(prod.Analysis.Gates), "error_rate max 0.005"},
		{"production.Analysis.Interval", prod.Analysis.Interval.D(), 10 * time.Second},
		{"production.Analysis.MinRequests", prod.Analysis.MinRequests, 50},
		{"production.Smoke", smokeString(prod.Smoke), "/healthz 200 5s, /version 200 5s shop"},
		{"production.PostSmoke", smokeString(prod.PostSmoke), "/checkout/health 204 5s"},
		{"production.Env.Gates.Checks", fmt.Sprint(prod.Env.Gates.Checks), "[unit-tests e2e.checkout]"},
		{"production.Env.Gates.Approval", fmt.Sprint(*prod.Env.Gates.Approval), "{1 false []}"},
		{"production.Env.Gates.DrillWithin", prod.Env.Gates.DrillWithin.D(), 168 * time.Hour},
		{"production.Env.Gates.Drift.Against", prod.Env.Gates.Drift.Against, "staging"},
		{"production.Env.Gates.Drift.Allow", fmt.Sprint(prod.Env.Gates.Drift.Allow), "[vars instances]"},
		{"production.Env.PreviewListen", prod.Env.PreviewListen, "127.0.0.1:8081"},

		{"staging.Name", staging.Name, "staging"},
		{"staging.Vars", fmt.Sprint(staging.Vars), "map[LOG_LEVEL:debug REGION:eu-west-1]"},
		{"staging.Instances", staging.Instances, 1},
		{"staging.Previous", staging.Previous, ""},
		{"staging.Strategy.Canary", staging.Strategy.Canary == nil, true},
		{"staging.Strategy.Rolling", staging.Strategy.Rolling == nil, true},
		{"staging.Strategy.BlueGreen.KeepBlue", staging.Strategy.BlueGreen.KeepBlue.D(), 5 * time.Minute},
		{"staging.Strategy.BlueGreen.Analysis", staging.Strategy.BlueGreen.Analysis.D(), time.Minute},
		{"staging.Analysis.Gates", gatesString(staging.Analysis.Gates), "error_rate max 0.01, latency_p99 ratio 2"},
		{"staging.Smoke", smokeString(staging.Smoke), "/healthz 200 5s"},
		{"staging.PostSmoke", staging.PostSmoke != nil && len(staging.PostSmoke) == 0, true}, // post_smoke: [] turns them off
		{"staging.Env.Gates.Checks", fmt.Sprint(staging.Env.Gates.Checks), "[unit-tests lint]"},
		{"staging.Env.Gates.Drift", staging.Env.Gates.Drift == nil, true},

		{"pipeline", fmt.Sprint(c.Pipeline), "[staging production]"},
		{"hotfix.skip", fmt.Sprint(c.Hotfix.Skip), "[pipeline approval drill]"},
		{"hotfix.bake_scale", c.Hotfix.BakeScale, 0.1},
		{"strategy.canary.steps", stepsString(c.Strategy.Canary.Steps), "5%/10m 25%/15m 50%/15m"},
	} {
		if tt.got != tt.want {
			t.Errorf("%s = %v, want %v", tt.field, tt.got, tt.want)
		}
	}
	// The stage's vars are a copy: changing them changes neither the
	// app's nor the environment's.
	before := maps.Clone(c.Vars)
	prod.Vars["REGION"] = "changed"
	if !maps.Equal(c.Vars, before) || c.Environments["production"].Vars["REGION"] != "eu-central-1" {
		t.Error("Stage.Vars shares its map with the config")
	}

	_, err = c.Stage("prod")
	if got, want := errorText(err), `unknown environment "prod": testdata/valid/pipeline.yaml declares production, staging`; got != want {
		t.Errorf("Stage(prod) error = %q, want %q", got, want)
	}
}

func smokeString(checks []SmokeCheck) string {
	s := ""
	for i, c := range checks {
		if i > 0 {
			s += ", "
		}
		s += fmt.Sprintf("%s %d %s", c.Path, c.ExpectStatus, c.Timeout)
		if c.ExpectBody != "" {
			s += " " + c.ExpectBody
		}
	}
	return s
}

// TestParse_PrometheusNamespaceDefaultsToKubernetes: the issue's own
// example gives the namespace once, under kubernetes:, and the metrics of
// the app are measured in it ({{namespace}} in the preset's queries).
func TestParse_PrometheusNamespaceDefaultsToKubernetes(t *testing.T) {
	cfg, err := Parse("shipgate.yaml", []byte(`app: shop
environments:
  production:
    kubernetes:
      namespace: shop
      deployment: shop
      image: registry.example/shop:${VERSION}
      service_port: 8080
      route: {name: shop, gateway: public}
    metrics:
      prometheus: {url: "http://prometheus:9090"}
  staging:
    kubernetes:
      namespace: shop-staging
      deployment: shop
      image: registry.example/shop:${VERSION}
      service_port: 8080
      route: {name: shop, gateway: public}
    metrics:
      prometheus: {url: "http://prometheus:9090", namespace: metrics}
`))
	if err != nil {
		t.Fatalf("the issue's example config: %v", err)
	}
	if got := cfg.Environments["production"].Metrics.Prometheus.Namespace; got != "shop" {
		t.Errorf("production's Prometheus namespace = %q, want the kubernetes namespace shop", got)
	}
	if got := cfg.Environments["staging"].Metrics.Prometheus.Namespace; got != "metrics" {
		t.Errorf("staging's Prometheus namespace = %q, want the one it sets", got)
	}
}
