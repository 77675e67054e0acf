package rollout

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/shipgate/shipgate/internal/config"
)

func TestExpand(t *testing.T) {
	vars := map[string]string{"VERSION": "v2", "MERCHANT_ID": "m-1", "EMPTY": ""}
	tests := []struct {
		in, want, wantErr string
	}{
		{"./releases/${VERSION}/shop", "./releases/v2/shop", ""},
		{"${PORT}", "${PORT}", ""},
		{"--merchant=${MERCHANT_ID}-${VERSION}", "--merchant=m-1-v2", ""},
		{"${EMPTY}", "", ""},
		{"no refs", "no refs", ""},
		{"$VERSION", "$VERSION", ""},
		{"${NOPE}", "", "variable NOPE is not set"},
	}
	for _, tt := range tests {
		got, err := Expand(tt.in, vars)
		switch {
		case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
			t.Errorf("Expand(%q) error = %v, want %q", tt.in, err, tt.wantErr)
		case tt.wantErr == "" && (err != nil || got != tt.want):
			t.Errorf("Expand(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

func TestPlan(t *testing.T) {
	st := &config.Stage{Env: &config.Environment{}, Instances: 4, Strategy: config.Strategy{Canary: &config.Canary{
		Steps:          []config.CanaryStep{{Weight: 5, Bake: config.Duration(time.Minute)}, {Weight: 50, Bake: config.Duration(2 * time.Minute)}, {Weight: 100, Bake: config.Duration(time.Minute)}},
		ScaleDownDelay: config.Duration(30 * time.Second),
	}}}
	got := Plan(st, planOptions{})
	want := []Step{
		{Kind: StepStart}, {Kind: StepSmoke},
		{Kind: StepWeight, Weight: 5, Duration: time.Minute}, {Kind: StepWeight, Weight: 50, Duration: 2 * time.Minute},
		{Kind: StepPromote}, {Kind: StepScaleDown, Duration: 30 * time.Second},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Plan = %+v\nwant %+v", got, want)
	}
	first := Plan(st, planOptions{first: true})
	if kinds := stepKinds(first); kinds != "start smoke promote" {
		t.Fatalf("first deploy plan = %s, want start smoke promote", kinds)
	}
	st.Strategy.Canary.Internal = &config.Internal{Header: "X-Internal", Bake: config.Duration(time.Minute)}
	st.PostSmoke = []config.SmokeCheck{{Path: "/"}}
	if got := stepKinds(Plan(st, planOptions{approval: true, bakeScale: 0.5})); got != "start smoke approval internal weight weight promote post_smoke scale_down" {
		t.Fatalf("canary with approval, internal users and post smoke = %s", got)
	}
	if got := Plan(st, planOptions{bakeScale: 0.5})[3]; got.Duration != 30*time.Second {
		t.Fatalf("a hotfix's first weight bakes %s, want half of 1m", got.Duration)
	}
	bg := &config.Stage{Env: &config.Environment{}, Strategy: config.Strategy{BlueGreen: &config.BlueGreen{KeepBlue: config.Duration(time.Minute), Analysis: config.Duration(time.Minute)}}}
	if got := stepKinds(Plan(bg, planOptions{})); got != "start smoke promote observe scale_down" {
		t.Fatalf("blue-green = %s", got)
	}
	ro := &config.Stage{Env: &config.Environment{}, Instances: 5, Strategy: config.Strategy{Rolling: &config.Rolling{MaxSurge: 2}}}
	steps := Plan(ro, planOptions{})
	if got := stepKinds(steps); got != "batch batch batch promote scale_down" {
		t.Fatalf("rolling = %s", got)
	}
	if steps[0].Count != 2 || steps[2].Count != 1 {
		t.Fatalf("rolling batches of %d, %d, %d; want 2, 2, 1", steps[0].Count, steps[1].Count, steps[2].Count)
	}
}

func stepKinds(steps []Step) string {
	var s []string
	for _, st := range steps {
		s = append(s, string(st.Kind))
	}
	return strings.Join(s, " ")
}

func TestInstanceSpec_MissingVariableNamesTheField(t *testing.T) {
	cfg := &config.Config{App: "shop", Environments: map[string]*config.Environment{"production": {}}, Run: config.Run{
		Command: []string{"./shop", "--port", "${PORT}"},
		Env:     map[string]string{"MERCHANT_ID": "${MERCHANT_ID}"},
	}}
	_, err := instanceSpec(cfg, "production", Release{Version: "v1"})
	var fe *FieldError
	if !errors.As(err, &fe) || fe.Field != "run.env.MERCHANT_ID" || !errors.Is(err, ErrInvalid) {
		t.Fatalf("err = %v, want a FieldError on run.env.MERCHANT_ID", err)
	}
	spec, err := instanceSpec(cfg, "production", Release{Version: "v1", Vars: map[string]string{"MERCHANT_ID": "m"}})
	if err != nil || spec.Environ["MERCHANT_ID"] != "m" || spec.Command[2] != "${PORT}" {
		t.Fatalf("spec = %+v, %v", spec, err)
	}
}

func TestJudgeOptions(t *testing.T) {
	a := config.Analysis{Interval: config.Duration(10 * time.Second), MinRequests: 50, FailConfidence: 0.99, PassConfidence: 0.95,
		Gates: []config.Gate{{Metric: config.MetricErrorRate, MaxIncreaseOverStable: &config.Threshold{Value: 0.005}, ConsecutiveFailures: 2}}}
	steps := []Step{{Kind: StepStart}, {Kind: StepWeight}, {Kind: StepWeight}, {Kind: StepWeight}, {Kind: StepPromote}}
	o := JudgeOptions(a, steps)
	if o.Steps != 3 || o.Settle != 10*time.Second || o.MinRequests != 50 {
		t.Fatalf("options = %+v, want 3 steps sharing the budget and a settle of one interval", o)
	}
	zero := config.Duration(0)
	a.Settle = &zero
	if o := JudgeOptions(a, steps); o.Settle != 0 {
		t.Fatalf("settle: 0s gives %s, want 0", o.Settle)
	}
	g := Gates(a)[0]
	if !g.HasMaxIncrease || g.MaxIncrease != 0.005 || g.ConsecutiveFailures != 2 || g.HasMax {
		t.Fatalf("gate = %+v, want an increase of 0.005 over stable, two consecutive failures", g)
	}
}
