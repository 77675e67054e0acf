package oracle_test

import (
	"context"
	"os"
	"testing"

	"github.com/shipgate/shipgate/internal/flags"
)

// The benchmarks evaluate testdata/bench.flagd.json in flagd's own
// evaluator, as internal/flags's benchmarks do in Shipgate's:
//
//	go test -run '^$' -bench . -benchmem -count 5 ../
//	go test -run '^$' -bench . -benchmem -count 5 .
//
// BENCHMARKS.md ("## Flags") has the figures and the ratio.

var benchCtx = map[string]any{"targetingKey": "user-4711", "email": "ana@example.com", "country": "US", "plan": "pro"}

func benchFlagd(b *testing.B, key, want string) {
	data, err := os.ReadFile("../testdata/bench.flagd.json")
	if err != nil {
		b.Fatal(err)
	}
	je, err := flagdEvaluator(b, data)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	if r := je.ResolveAsAnyValue(ctx, "bench", key, benchCtx); r.Variant != want {
		b.Fatalf("%s: %+v, want %s", key, r, want)
	}
	b.ReportAllocs()
	for b.Loop() {
		je.ResolveAsAnyValue(ctx, "bench", key, benchCtx)
	}
}

func BenchmarkEvaluate_Targeted(b *testing.B) {
	b.Run("flagd", func(b *testing.B) { benchFlagd(b, "targeted", "on") })
}

func BenchmarkEvaluate_Fractional(b *testing.B) {
	want := "off"
	if flags.BucketFor("fractional", "user-4711") < 25 {
		want = "on"
	}
	b.Run("flagd", func(b *testing.B) { benchFlagd(b, "fractional", want) })
}

// BenchmarkEvaluate_Iterating is a rule with some over a list: Shipgate
// compiles such a rule's body at each evaluation (iter.go).
func BenchmarkEvaluate_Iterating(b *testing.B) {
	b.Run("flagd", func(b *testing.B) { benchFlagd(b, "iterating", "on") })
}
