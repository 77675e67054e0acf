package flags

import (
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"os"
	"testing"

	twmb "github.com/twmb/murmur3"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

func TestMurmur3_MatchesReference(t *testing.T) {
	inputs := []string{"", "a", "ab", "abc", "abcd", "abcde", "new-checkoutuser-1", "héllo wörld", "0123456789abcdef0"}
	for _, a := range inputs {
		for _, b := range inputs {
			if got, want := murmur3(a, b), twmb.StringSum32(a+b); got != want {
				t.Errorf("murmur3(%q, %q) = %#x, want %#x", a, b, got, want)
			}
		}
	}
}

// golden is one published bucketing vector.
type golden struct {
	FlagKey      string  `json:"flagKey"`
	TargetingKey string  `json:"targetingKey"`
	Hash         uint32  `json:"murmur3"`
	Bucket       float64 `json:"bucket"`
	// At5, At25 and At50 are the variant of [["on", p], ["off", 100-p]].
	At5  string `json:"at5"`
	At25 string `json:"at25"`
	At50 string `json:"at50"`
}

func rollout(p int) *distribution {
	c := &compiler{}
	n := node{}
	c.compileFractional(&n, []any{[]any{"on", float64(p)}, []any{"off", float64(100 - p)}}, "")
	return n.frac
}

// variantAt is the variant name a distribution gives a hash.
func variantAt(d *distribution, h uint32) string {
	v := d.pick(h)
	return v.s
}

// TestBucketFor_Golden checks the published vectors of
// testdata/bucketing.golden.json: the murmur3 hash of flag key + targeting
// key, the bucket, and the variant at 5%, 25% and 50%. Run with -update
// to rewrite them; TestEvaluate_MatchesFlagd checks flagd agrees.
func TestBucketFor_Golden(t *testing.T) {
	var vectors []golden
	for i := range 40 {
		for _, key := range []string{"new-checkout", "dark-mode"} {
			tk := fmt.Sprintf("user-%d", i*37)
			h := murmur3(key, tk)
			b := BucketFor(key, tk)
			vectors = append(vectors, golden{FlagKey: key, TargetingKey: tk, Hash: h, Bucket: b,
				At5: variantAt(rollout(5), h), At25: variantAt(rollout(25), h), At50: variantAt(rollout(50), h)})
		}
	}
	const path = "testdata/bucketing.golden.json"
	if *update {
		b, err := json.MarshalIndent(vectors, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, append(b, '\n'), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var want []golden
	if err := json.Unmarshal(b, &want); err != nil {
		t.Fatal(err)
	}
	if len(want) != len(vectors) {
		t.Fatalf("%d vectors, golden has %d", len(vectors), len(want))
	}
	for i, w := range want {
		if got := vectors[i]; got != w {
			t.Errorf("vector %d: got %+v, want %+v", i, got, w)
		}
	}
}

func TestFractional_Sticky(t *testing.T) {
	// A user on at a lower percentage stays on at every higher one.
	steps := []int{1, 5, 25, 50, 100}
	for i := range 5000 {
		h := murmur3("sticky", fmt.Sprintf("u%d", i))
		on := false
		for _, p := range steps {
			now := variantAt(rollout(p), h) == "on"
			if want := BucketFor("sticky", fmt.Sprintf("u%d", i)) < float64(p); now != want {
				t.Fatalf("user u%d at %d%%: on = %v, but BucketFor says %v", i, p, now, want)
			}
			if on && !now {
				t.Fatalf("user u%d was on and is off at %d%%", i, p)
			}
			on = now
		}
	}
}

func TestDistribution_Extremes(t *testing.T) {
	// The smallest hash falls in the first variant, the largest in the
	// last, and every weight 0 gives no variant (null: the default).
	d := rollout(50)
	if got := variantAt(d, 0); got != "on" {
		t.Errorf("hash 0: %q, want on", got)
	}
	if got := variantAt(d, math.MaxUint32); got != "off" {
		t.Errorf("hash 2^32-1: %q, want off", got)
	}
	if got := variantAt(d, 1<<31-1); got != "on" {
		t.Errorf("hash 2^31-1: %q, want on", got)
	}
	if got := variantAt(d, 1<<31); got != "off" {
		t.Errorf("hash 2^31: %q, want off", got)
	}
	zero, ok := parseDistributions([]value{{k: kindArray, arr: []any{"a", 0.0}}, {k: kindArray, arr: []any{"b", -5.0}}})
	if !ok || zero.pick(12345).k != kindNull {
		t.Errorf("all-zero weights: %+v, %v; want null", zero.pick(12345), ok)
	}
}
