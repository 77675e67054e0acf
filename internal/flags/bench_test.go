package flags_test

import (
	"os"
	"testing"
	"time"

	"github.com/shipgate/shipgate/internal/flags"
)

// The benchmarks evaluate the definitions of testdata/bench.flagd.json;
// the oracle module (oracle/) runs the same ones in flagd's own
// evaluator (flagd/core v0.16.1):
//
//	go test -run '^$' -bench . -benchmem -count 5 ./internal/flags/
//	(cd internal/flags/oracle && go test -run '^$' -bench . -benchmem -count 5 .)
//
// BENCHMARKS.md ("## Flags") has the figures and the ratio.

var benchCtx = map[string]any{"targetingKey": "user-4711", "email": "ana@example.com", "country": "US", "plan": "pro"}

func benchSnapshot(b *testing.B) *flags.Snapshot {
	data, err := os.ReadFile("testdata/bench.flagd.json")
	if err != nil {
		b.Fatal(err)
	}
	f, err := flags.ParseFile(data)
	if err != nil {
		b.Fatal(err)
	}
	s, err := flags.Compile(f.Flags, f.Segments)
	if err != nil {
		b.Fatal(err)
	}
	return s
}

func benchShipgate(b *testing.B, key, want string) {
	s := benchSnapshot(b)
	now := time.Now()
	if r := s.Evaluate(key, benchCtx, now); r.Variant != want {
		b.Fatalf("%s: %+v, want %s", key, r, want)
	}
	b.ReportAllocs()
	for b.Loop() {
		s.Evaluate(key, benchCtx, now)
	}
}

func BenchmarkEvaluate_Targeted(b *testing.B) {
	b.Run("shipgate", func(b *testing.B) { benchShipgate(b, "targeted", "on") })
}

func BenchmarkEvaluate_Fractional(b *testing.B) {
	want := "off"
	if flags.BucketFor("fractional", "user-4711") < 25 {
		want = "on"
	}
	b.Run("shipgate", func(b *testing.B) { benchShipgate(b, "fractional", want) })
}

// BenchmarkEvaluate_Iterating is a rule with some over a list: Shipgate
// compiles such a rule's body at each evaluation (iter.go).
func BenchmarkEvaluate_Iterating(b *testing.B) {
	b.Run("shipgate", func(b *testing.B) { benchShipgate(b, "iterating", "on") })
}
