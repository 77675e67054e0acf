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
	cfg := &config.Config{Strategy: config.Strategy{Canary: &config.Canary{
		Steps:          []config.CanaryStep{{Weight: 5, Bake: config.Duration(time.Minute)}, {Weight: 50, Bake: config.Duration(2 * time.Minute)}, {Weight: 100, Bake: config.Duration(time.Minute)}},
		ScaleDownDelay: config.Duration(30 * time.Second),
	}}}
	got := Plan(cfg, false)
	want := []Step{
		{Kind: StepStart}, {Kind: StepSmoke},
		{Kind: StepWeight, Weight: 5, Duration: time.Minute}, {Kind: StepWeight, Weight: 50, Duration: 2 * time.Minute},
		{Kind: StepPromote}, {Kind: StepScaleDown, Duration: 30 * time.Second},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Plan = %+v\nwant %+v", got, want)
	}
	first := Plan(cfg, true)
	if kinds := stepKinds(first); kinds != "start smoke promote" {
		t.Fatalf("first deploy plan = %s, want start smoke promote", kinds)
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
	cfg := &config.Config{App: "shop", Run: config.Run{
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
