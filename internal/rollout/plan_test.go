package rollout

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/shipgate/shipgate/internal/analysis"
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
	st := &Spec{Instances: 4, Strategy: StrategySpec{Canary: &CanarySpec{
		Steps:          []CanaryStepSpec{{Weight: 5, Bake: time.Minute}, {Weight: 50, Bake: 2 * time.Minute}, {Weight: 100, Bake: time.Minute}},
		ScaleDownDelay: 30 * time.Second,
	}}}
	got := planSteps(st, planOptions{})
	want := []Step{
		{Kind: StepStart}, {Kind: StepSmoke},
		{Kind: StepWeight, Weight: 5, Duration: time.Minute}, {Kind: StepWeight, Weight: 50, Duration: 2 * time.Minute},
		{Kind: StepPromote}, {Kind: StepScaleDown, Duration: 30 * time.Second},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Plan = %+v\nwant %+v", got, want)
	}
	first := planSteps(st, planOptions{first: true})
	if kinds := stepKinds(first); kinds != "start smoke promote" {
		t.Fatalf("first deploy plan = %s, want start smoke promote", kinds)
	}
	st.Strategy.Canary.Internal = &InternalSpec{Match: Match{Header: "X-Internal"}, Bake: time.Minute}
	st.PostSmoke = []SmokeCheck{{Path: "/"}}
	if got := stepKinds(planSteps(st, planOptions{approval: true, bakeScale: 0.5})); got != "start smoke approval internal weight weight promote post_smoke scale_down" {
		t.Fatalf("canary with approval, internal users and post smoke = %s", got)
	}
	if got := planSteps(st, planOptions{bakeScale: 0.5})[3]; got.Duration != 30*time.Second {
		t.Fatalf("a hotfix's first weight bakes %s, want half of 1m", got.Duration)
	}
	bg := &Spec{Strategy: StrategySpec{BlueGreen: &BlueGreenSpec{KeepBlue: time.Minute, Analysis: time.Minute}}}
	if got := stepKinds(planSteps(bg, planOptions{})); got != "start smoke promote observe scale_down" {
		t.Fatalf("blue-green = %s", got)
	}
	ro := &Spec{Instances: 5, Strategy: StrategySpec{Rolling: &RollingSpec{MaxSurge: 2}}}
	steps := planSteps(ro, planOptions{})
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
	st := &Spec{App: "shop", Name: "production", Run: RunSpec{
		Command: []string{"./shop", "--port", "${PORT}"},
		Env:     map[string]string{"MERCHANT_ID": "${MERCHANT_ID}"},
	}}
	_, err := instanceSpecFor(st, Release{Version: "v1"})
	var fe *FieldError
	if !errors.As(err, &fe) || fe.Field != "run.env.MERCHANT_ID" || !errors.Is(err, ErrInvalid) {
		t.Fatalf("err = %v, want a FieldError on run.env.MERCHANT_ID", err)
	}
	spec, err := instanceSpecFor(st, Release{Version: "v1", Vars: map[string]string{"MERCHANT_ID": "m"}})
	if err != nil || spec.Environ["MERCHANT_ID"] != "m" || spec.Command[2] != "${PORT}" {
		t.Fatalf("spec = %+v, %v", spec, err)
	}
}

func TestEvidenceNeeds(t *testing.T) {
	maxRate := 0.01
	st := &Spec{Name: "production", Instances: 4,
		Strategy: StrategySpec{Canary: &CanarySpec{Steps: []CanaryStepSpec{
			{Weight: 5, Bake: 10 * time.Minute}, {Weight: 50, Bake: 10 * time.Second},
		}}},
		Analysis: AnalysisSpec{MinRequests: 50, PassConfidence: 0.95, OnInconclusive: InconclusivePause,
			Gates: []GateSpec{{Metric: MetricErrorRate, Max: &maxRate}}},
	}
	needs := EvidenceNeeds(st)
	if len(needs) != 2 {
		t.Fatalf("needs = %+v, want one per weight", needs)
	}
	// The need is what the judge itself asks: it passes the gate with that
	// many requests, none failed, and not with one fewer.
	n := needs[0].Requests
	gates, opts := Gates(st.Analysis), JudgeOptions(st.Analysis, planSteps(st, planOptions{}))
	if v, _ := analysis.Judge(gates, analysis.Sample{Requests: uint64(n)}, analysis.Sample{}, opts); v != analysis.Pass {
		t.Fatalf("the judge does not pass %d error-free requests: %v", n, v)
	}
	if v, _ := analysis.Judge(gates, analysis.Sample{Requests: uint64(n - 1)}, analysis.Sample{}, opts); v == analysis.Pass {
		t.Fatalf("the judge already passes %d error-free requests, need says %d", n-1, n)
	}
	if got := needs[0]; n < 100 || got.Share != 0.05 || math.Abs(got.RPS-float64(n)/0.05/600) > 1e-9 {
		t.Fatalf("5%% for 10m: %+v, want ~%d requests at %.2f/s", got, n, float64(n)/0.05/600)
	}
	if w := EvidenceWarnings(st); w != nil {
		t.Fatalf("warnings without expected_rps: %v", w)
	}
	st.Analysis.ExpectedRPS = 5
	w := EvidenceWarnings(st)
	if len(w) != 2 || !strings.Contains(w[0], fmt.Sprintf("step 3 (weight 5%% for 10m0s) needs %d canary requests to pass error_rate <= 1%%", n)) || !strings.Contains(w[0], "pause for a person") {
		t.Fatalf("warnings at 5/s = %q", w)
	}
	// At n/10 requests/s the 10-minute step at 5% gets 3n canary requests
	// and the 10-second step at 50% only n/2.
	st.Analysis.ExpectedRPS = float64(n) / 10
	if w := EvidenceWarnings(st); len(w) != 1 || !strings.Contains(w[0], "weight 50%") {
		t.Fatalf("warnings at %g/s = %q, want the 10s step only", st.Analysis.ExpectedRPS, w)
	}
}

func TestJudgeOptions(t *testing.T) {
	increase := 0.005
	a := AnalysisSpec{Interval: 10 * time.Second, MinRequests: 50, FailConfidence: 0.99, PassConfidence: 0.95,
		Gates: []GateSpec{{Metric: MetricErrorRate, MaxIncreaseOverStable: &increase, ConsecutiveFailures: 2}}}
	steps := []Step{{Kind: StepStart}, {Kind: StepWeight}, {Kind: StepWeight}, {Kind: StepWeight}, {Kind: StepPromote}}
	o := JudgeOptions(a, steps)
	if o.Steps != 3 || o.Settle != 10*time.Second || o.MinRequests != 50 {
		t.Fatalf("options = %+v, want 3 steps sharing the budget and a settle of one interval", o)
	}
	zero := time.Duration(0)
	a.Settle = &zero
	if o := JudgeOptions(a, steps); o.Settle != 0 {
		t.Fatalf("settle: 0s gives %s, want 0", o.Settle)
	}
	g := Gates(a)[0]
	if !g.HasMaxIncrease || g.MaxIncrease != 0.005 || g.ConsecutiveFailures != 2 || g.HasMax {
		t.Fatalf("gate = %+v, want an increase of 0.005 over stable, two consecutive failures", g)
	}
}

// TestInstanceSpec_Image: a release's own image (deploy --image) replaces
// the environment's template on Kubernetes; without one the template is
// expanded; an environment that runs images refuses a release with none,
// and a local-process environment refuses a release with one, naming the
// environment.
func TestInstanceSpec_Image(t *testing.T) {
	kube := &Spec{App: "shop", Name: "production", Run: RunSpec{Image: "registry.example/shop:${VERSION}", Containers: true}}
	bare := &Spec{App: "shop", Name: "production", Run: RunSpec{Containers: true}}
	local := &Spec{App: "shop", Name: "staging", Run: RunSpec{Command: []string{"./shop"}}}
	tests := []struct {
		name      string
		st        *Spec
		rel       Release
		want      string
		wantField string
		wantIn    string
	}{
		{"template", kube, Release{App: "shop", Version: "v2"}, "registry.example/shop:v2", "", ""},
		{"own image over the template", kube, Release{App: "shop", Version: "v2", Image: "other.example/shop@sha256:abc"}, "other.example/shop@sha256:abc", "", ""},
		{"own image, no template", bare, Release{App: "shop", Version: "v2", Image: "registry.example/shop:v2"}, "registry.example/shop:v2", "", ""},
		{"no image at all", bare, Release{App: "shop", Version: "v2"}, "", "image", "deploy --image, or set environments.production.kubernetes.image"},
		{"local process", local, Release{App: "shop", Version: "v2"}, "", "", ""},
		{"image on a local process", local, Release{App: "shop", Version: "v2", Image: "registry.example/shop:v2"}, "", "image", "environment staging runs local processes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spec, err := instanceSpecFor(tt.st, tt.rel)
			if tt.wantField != "" {
				var fe *FieldError
				if !errors.As(err, &fe) || fe.Field != tt.wantField || !strings.Contains(fe.Message, tt.wantIn) {
					t.Fatalf("err = %v, want a FieldError on %s saying %q", err, tt.wantField, tt.wantIn)
				}
				return
			}
			if err != nil || spec.Image != tt.want {
				t.Fatalf("image = %q, %v; want %q", spec.Image, err, tt.want)
			}
		})
	}
}

// TestReleaseDigest_Image: the image is part of a release's identity as
// approved and audited, and a release without one keeps the digest it had
// before images existed.
func TestReleaseDigest_Image(t *testing.T) {
	e := &deps{digestKey: []byte("0123456789abcdef0123456789abcdef")}
	rel := Release{App: "shop", Version: "v2", Commit: "abc", Vars: map[string]string{"A": "1"}}
	plain := e.releaseDigest(rel)
	withImage := rel
	withImage.Image = "registry.example/shop:v2"
	other := rel
	other.Image = "registry.example/shop:v3"
	if a, b, c := plain, e.releaseDigest(withImage), e.releaseDigest(other); a == b || b == c || a == c {
		t.Fatalf("digests without image, with one and with another: %s %s %s; want three different", a, b, c)
	}
	// The digest of a release without an image, as computed before images
	// (version, commit, checks, vars): unchanged.
	h := hmac.New(sha256.New, e.digestKey)
	fmt.Fprintf(h, "%s\x00%s\x00", rel.Version, rel.Commit)
	fmt.Fprintf(h, "var %s=%s\x00", "A", "1")
	if want := hex.EncodeToString(h.Sum(nil))[:32]; plain != want {
		t.Errorf("digest of a release without an image = %s, want the old %s", plain, want)
	}
}
