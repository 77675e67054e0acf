package flags_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/shipgate/shipgate/internal/flags"
	"github.com/shipgate/shipgate/internal/flags/testbed"
)

// evaluatorResolver resolves flags with Shipgate's evaluator directly,
// typed as an OpenFeature client types them.
type evaluatorResolver struct{ snap *flags.Snapshot }

func (r evaluatorResolver) Resolve(_ context.Context, kind, key string, def any, evalCtx map[string]any) (testbed.Details, error) {
	res := r.snap.Evaluate(key, evalCtx, time.Now())
	d := testbed.Details{Value: def, Variant: res.Variant, Reason: string(res.Reason), ErrorCode: string(res.ErrorCode), Metadata: res.Metadata}
	if res.Reason == flags.ReasonError || res.Variant == "" {
		// An error, a disabled flag, or no default variant: the code
		// default.
		return d, nil
	}
	v, err := testbed.Typed(kind, res.Value)
	if err != nil {
		d.Reason, d.ErrorCode, d.Variant = string(flags.ReasonError), "TYPE_MISMATCH", ""
		return d, nil
	}
	d.Value = v
	return d, nil
}

// TestTestbed_Evaluator runs flagd-testbed's evaluator suite (v3.9.0)
// against Shipgate's evaluator. Skipped: @fractional-v1, the legacy
// bucketing that flagd core v0.16 no longer has (flagd skips it too).
func TestTestbed_Evaluator(t *testing.T) {
	dir := testbed.Dir()
	data, err := os.ReadFile(filepath.Join(dir, "evaluator", "flags", "testkit-flags.json"))
	if err != nil {
		t.Fatal(err)
	}
	file, err := flags.ParseFile(data)
	if err != nil {
		t.Fatalf("the testbed's flags do not load: %v", err)
	}
	snap, err := flags.Compile(file.Flags, file.Segments)
	if err != nil {
		t.Fatal(err)
	}
	testbed.Suite{
		Paths:    []string{filepath.Join(dir, "evaluator", "gherkin")},
		Tags:     "~@fractional-v1",
		Resolver: func(string) (testbed.Resolver, error) { return evaluatorResolver{snap}, nil },
	}.Run(t)
}
