package plan_test

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/shipgate/shipgate/internal/config"
	"github.com/shipgate/shipgate/internal/plan"
)

const shopYAML = `
app: shop
vars: {FAIL_RATE: "0"}
run:
  command: [./shop, --port, "${PORT}"]
  env: {SHOP_PAY_FAIL_RATE: "${FAIL_RATE}"}
  instances: 2
  health: {path: /healthz, interval: 2s}
  start_timeout: 20s
environments:
  staging:
    listen: 127.0.0.1:18080
  production:
    listen: 127.0.0.1:18081
    preview_listen: 127.0.0.1:18082
    instances: 3
    vars: {FAIL_RATE: "0.5"}
    gates: {approval: {required: 2, prevent_self_approval: true}, drill_within: 24h}
pipeline: [staging, production]
strategy:
  canary:
    internal: {header: X-Internal, bake: 20s}
    steps:
      - {weight: 5, bake: 1m}
      - {weight: 50, bake: 2m}
    scale_down_delay: 10s
analysis:
  interval: 5s
  min_requests: 20
  on_inconclusive: rollback
  gates:
    - {metric: error_rate, max: 2%}
    - {metric: latency_p99, max_ratio_to_stable: 1.5}
hotfix: {skip: [approval], bake_scale: 0.5}
migrations: {dir: migrations, database: "sqlite:data/${FAIL_RATE}.db"}
`

func TestSpecs_Spec(t *testing.T) {
	dir := t.TempDir()
	cfg, err := config.Parse(filepath.Join(dir, "shipgate.yaml"), []byte(shopYAML))
	if err != nil {
		t.Fatal(err)
	}
	specs := plan.New(cfg)
	if got := specs.EnvNames(); len(got) != 2 || got[0] != "production" || got[1] != "staging" {
		t.Fatalf("EnvNames = %v", got)
	}
	st, err := specs.Spec("production")
	if err != nil {
		t.Fatal(err)
	}
	if st.App != "shop" || st.Name != "production" || st.Previous != "staging" || st.Instances != 3 || st.PreviewListen != "127.0.0.1:18082" {
		t.Fatalf("spec = %+v", st)
	}
	if c := st.Strategy.Canary; c == nil || len(c.Steps) != 2 || c.Steps[1].Bake != 2*time.Minute || c.Internal.Header != "X-Internal" || c.ScaleDownDelay != 10*time.Second {
		t.Fatalf("strategy = %+v", st.Strategy)
	}
	if a := st.Analysis; a.Interval != 5*time.Second || a.OnInconclusive != "rollback" || len(a.Gates) != 2 || *a.Gates[0].Max != 0.02 || a.Gates[1].MaxRatioToStable != 1.5 {
		t.Fatalf("analysis = %+v", st.Analysis)
	}
	if g := st.Gates; g.Approval == nil || g.Approval.Required != 2 || !g.Approval.PreventSelfApproval || g.DrillWithin != 24*time.Hour {
		t.Fatalf("gates = %+v", st.Gates)
	}
	if r := st.Run; len(r.Command) != 3 || r.Command[2] != "${PORT}" || r.Env["SHOP_PAY_FAIL_RATE"] != "${FAIL_RATE}" || r.Health.Path != "/healthz" || r.StartTimeout != 20*time.Second {
		t.Fatalf("run = %+v", st.Run)
	}
	if st.Vars["FAIL_RATE"] != "0.5" || len(st.VarNames) != 1 {
		t.Fatalf("vars = %v (%v), want the environment's value", st.Vars, st.VarNames)
	}
	if st.Hotfix == nil || st.Hotfix.BakeScale != 0.5 || st.Migrations == nil || st.Path(st.Migrations.Dir) != filepath.Join(dir, "migrations") {
		t.Fatalf("hotfix %+v, migrations %+v at %s", st.Hotfix, st.Migrations, st.BaseDir)
	}
	if _, err := specs.Spec("qa"); err == nil {
		t.Fatal("an unknown environment has a spec")
	}
}

// TestSpecs_Kubernetes: an environment on Kubernetes runs container
// images (its template, possibly none: each deploy gives --image) and
// previews by header (route.preview_header, X-Shipgate-Preview by
// default); an environment of local processes does neither.
func TestSpecs_Kubernetes(t *testing.T) {
	const yaml = `
app: shop
run:
  command: [./shop]
environments:
  staging:
    listen: 127.0.0.1:18080
  production:
    kubernetes:
      namespace: shop
      deployment: shop
      service_port: 8080
      route: {name: shop, gateway: public}
    metrics:
      prometheus: {url: "http://prometheus:9090"}
  qa:
    kubernetes:
      namespace: shop-qa
      deployment: shop
      image: registry.example/shop:${VERSION}
      service_port: 8080
      route: {name: shop, gateway: public, preview_header: X-Try-Green}
    metrics:
      prometheus: {url: "http://prometheus:9090"}
`
	cfg, err := config.Parse(filepath.Join(t.TempDir(), "shipgate.yaml"), []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	specs := plan.New(cfg)
	for _, tt := range []struct {
		env, image, header string
		containers         bool
	}{
		{"staging", "", "", false},
		{"production", "", "X-Shipgate-Preview", true},
		{"qa", "registry.example/shop:${VERSION}", "X-Try-Green", true},
	} {
		st, err := specs.Spec(tt.env)
		if err != nil {
			t.Fatal(err)
		}
		if st.Run.Image != tt.image || st.Run.Containers != tt.containers || st.PreviewHeader != tt.header {
			t.Errorf("%s: image %q, containers %v, preview header %q; want %q, %v, %q", tt.env, st.Run.Image, st.Run.Containers, st.PreviewHeader, tt.image, tt.containers, tt.header)
		}
	}
}
