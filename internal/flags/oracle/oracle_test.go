package flags_test

// These tests use flagd's own evaluator (github.com/open-feature/flagd/core)
// as the oracle: the same flagd file and the same contexts must give the
// same variants, values and errors here as there.

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"reflect"
	"testing"
	"time"

	"github.com/open-feature/flagd/core/pkg/evaluator"
	"github.com/open-feature/flagd/core/pkg/logger"
	"github.com/open-feature/flagd/core/pkg/model"
	"github.com/open-feature/flagd/core/pkg/store"
	flagdsync "github.com/open-feature/flagd/core/pkg/sync"
	"go.uber.org/zap"

	"github.com/shipgate/shipgate/internal/flags"
)

// flagdEvaluator loads a flagd file into flagd's evaluator.
func flagdEvaluator(tb testing.TB, data []byte) *evaluator.JSON {
	tb.Helper()
	log := logger.NewLogger(zap.NewNop(), false)
	s, err := store.NewStore(log, []string{"file"})
	if err != nil {
		tb.Fatal(err)
	}
	je := evaluator.NewJSON(log, s)
	if err := je.SetState(flagdsync.DataSync{FlagData: string(data), Source: "file"}); err != nil {
		tb.Fatalf("flagd rejects the file: %v", err)
	}
	return je
}

// flagdOutcome is what flagd's evaluator answered, in Shipgate's terms.
type outcome struct {
	Variant string
	Value   any
	Reason  string
	Code    string
}

func fromFlagd(v evaluator.AnyValue) outcome {
	if v.Error != nil {
		code := v.Error.Error()
		switch code {
		case model.FlagDisabledErrorCode:
			return outcome{Reason: string(flags.ReasonDisabled)}
		case model.ErrorReason:
			code = model.GeneralErrorCode
		}
		return outcome{Reason: string(flags.ReasonError), Code: code}
	}
	return outcome{Variant: v.Variant, Value: v.Value, Reason: v.Reason}
}

func fromShipgate(r flags.Result) outcome {
	o := outcome{Variant: r.Variant, Value: r.Value, Reason: string(r.Reason), Code: string(r.ErrorCode)}
	if r.Reason == flags.ReasonSplit {
		// flagd has no SPLIT; the variant is what must agree.
		o.Reason = string(flags.ReasonTargetingMatch)
	}
	if r.Reason == flags.ReasonError {
		o.Variant, o.Value = "", nil
	}
	return o
}

// randomContext returns a context with a mix of present, missing and
// oddly typed attributes.
func randomContext(rng *rand.Rand) map[string]any {
	ctx := map[string]any{}
	pick := func(options ...any) any { return options[rng.IntN(len(options))] }
	if rng.IntN(20) != 0 {
		ctx["targetingKey"] = fmt.Sprintf("user-%d", rng.IntN(5000))
	}
	if rng.IntN(5) != 0 {
		ctx["email"] = fmt.Sprintf("%s%d@%s", pick("ana", "bo", "admin", "admin.ops", "zoe").(string), rng.IntN(100),
			pick("example.com", "shipgate.dev", "mail.test", "EXAMPLE.com").(string))
	}
	if rng.IntN(4) != 0 {
		ctx["plan"] = pick("free", "pro", "staff", "enterprise", "")
	}
	if rng.IntN(4) != 0 {
		ctx["country"] = pick("CA", "US", "MX", "FR", "CAN", "ca", "C")
	}
	if rng.IntN(4) != 0 {
		ctx["age"] = pick(float64(rng.IntN(90)), float64(rng.IntN(90))+0.5, "42", "abc", nil)
	}
	if rng.IntN(3) != 0 {
		ctx["appVersion"] = pick("2.1.0", "2.0.9", "1.9.4", "1.10.0", "v2.3.1", "3.0.0-beta.1", "not-a-version", 2.0, "1.9")
	}
	return ctx
}

func TestEvaluate_MatchesFlagd(t *testing.T) {
	data, err := os.ReadFile("testdata/flagd/flags.json")
	if err != nil {
		t.Fatal(err)
	}
	oracle := flagdEvaluator(t, data)
	file, err := flags.ParseFile(data)
	if err != nil {
		t.Fatalf("ParseFile: %v", err)
	}
	snap, err := flags.Compile(file.Flags, file.Segments)
	if err != nil {
		t.Fatalf("Compile: %v", err)
	}

	rng := rand.New(rand.NewPCG(1, 2))
	const contexts = 3000
	var compared, keyMissing int
	splits := map[string]map[string]int{}
	for i := range contexts {
		ctx := randomContext(rng)
		for _, key := range snap.Keys() {
			got := snap.Evaluate(key, ctx, time.Now())
			want := fromFlagd(oracle.ResolveAsAnyValue(context.Background(), "test", key, ctx))
			if got.ErrorCode == flags.CodeTargetingKeyMissing {
				// flagd's fractional gives up silently without a targeting
				// key, and the rule falls to its default.
				keyMissing++
				if _, ok := ctx["targetingKey"]; ok {
					t.Errorf("context %d, flag %s: TARGETING_KEY_MISSING although the context has a targetingKey", i, key)
				}
				if want.Reason != string(flags.ReasonDefault) {
					t.Errorf("context %d, flag %s: flagd answered %+v where Shipgate says the targeting key is missing", i, key, want)
				}
				continue
			}
			if g := fromShipgate(got); !reflect.DeepEqual(g, want) {
				t.Errorf("context %d %v, flag %s:\n shipgate %+v\n flagd    %+v", i, ctx, key, g, want)
			}
			if got.Reason == flags.ReasonSplit {
				if splits[key] == nil {
					splits[key] = map[string]int{}
				}
				splits[key][got.Variant]++
			}
			compared++
		}
		if t.Failed() {
			t.FailNow()
		}
	}
	t.Logf("%d evaluations compared, %d answered TARGETING_KEY_MISSING; splits: %v", compared, keyMissing, splits)
	// The split flags were exercised, every variant of them.
	if got := len(splits["new-checkout"]); got != 2 {
		t.Errorf("new-checkout split into %d variants, want 2", got)
	}
	if got := len(splits["header-color"]); got != 3 {
		t.Errorf("header-color split into %d variants, want 3", got)
	}
	if got := len(splits["equal-split"]); got != 3 {
		t.Errorf("equal-split split into %d variants, want 3", got)
	}
}

// TestBucketingGolden_MatchesFlagd checks the published bucketing vectors
// against flagd: the variant at 5%, 25% and 50% for each flag key and
// targeting key.
func TestBucketingGolden_MatchesFlagd(t *testing.T) {
	b, err := os.ReadFile("testdata/bucketing.golden.json")
	if err != nil {
		t.Fatal(err)
	}
	var vectors []struct {
		FlagKey      string `json:"flagKey"`
		TargetingKey string `json:"targetingKey"`
		At5          string `json:"at5"`
		At25         string `json:"at25"`
		At50         string `json:"at50"`
	}
	if err := json.Unmarshal(b, &vectors); err != nil {
		t.Fatal(err)
	}
	// flagd hashes flag key + targeting key; an explicit bucketing value
	// of the same concatenation lets one file hold every percentage.
	file := `{"flags": {`
	for i, p := range []int{5, 25, 50} {
		if i > 0 {
			file += ","
		}
		file += fmt.Sprintf(`"p%d": {"state": "ENABLED", "variants": {"on": true, "off": false}, "defaultVariant": "off",
			"targeting": {"fractional": [{"cat": [{"var": "fk"}, {"var": "targetingKey"}]}, ["on", %d], ["off", %d]]}}`, p, p, 100-p)
	}
	file += `}}`
	oracle := flagdEvaluator(t, []byte(file))
	for _, v := range vectors {
		ctx := map[string]any{"targetingKey": v.TargetingKey, "fk": v.FlagKey}
		for key, want := range map[string]string{"p5": v.At5, "p25": v.At25, "p50": v.At50} {
			got := oracle.ResolveAsAnyValue(context.Background(), "golden", key, ctx)
			if got.Error != nil || got.Variant != want {
				t.Errorf("%s/%s at %s: flagd says %q (%v), golden says %q", v.FlagKey, v.TargetingKey, key, got.Variant, got.Error, want)
			}
		}
	}
}
