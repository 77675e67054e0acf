package flags_test

import (
	"reflect"
	"testing"
	"time"

	"github.com/shipgate/shipgate/internal/flags"
)

// TestEvaluate_FlagdCases pins, one by one, the answers where Shipgate
// once differed from flagd core v0.16 (issue 13); the oracle module
// (oracle/) checks the same against flagd itself on generated rules.
func TestEvaluate_FlagdCases(t *testing.T) {
	half := "off"
	if flags.BucketFor("relative", "u1") < 50 {
		half = "on"
	}
	cases := []struct {
		name, targeting string
		noDefault       bool
		ctx             map[string]any
		variant         string
		reason          flags.Reason
		code            flags.ErrorCode
	}{
		{"relative weights", `{"fractional": [["on", 1], ["off", 1]]}`, false, map[string]any{"targetingKey": "u1"}, half, flags.ReasonTargetingMatch, ""},
		{"single entry", `{"fractional": [["on"]]}`, false, map[string]any{"targetingKey": "u1"}, "on", flags.ReasonTargetingMatch, ""},
		{"nested variant name", `{"fractional": [[{"if": [{"==": [{"var": "tier"}, "gold"]}, "on", "off"]}, 1]]}`, false,
			map[string]any{"targetingKey": "u1", "tier": "gold"}, "on", flags.ReasonTargetingMatch, ""},
		{"nested weight", `{"fractional": [["on", {"if": [{"var": "beta"}, 100, 0]}], ["off", 0]]}`, false,
			map[string]any{"targetingKey": "u1", "beta": true}, "on", flags.ReasonTargetingMatch, ""},
		{"fractional as a condition", `{"if": [{"fractional": [[true, 1], [false, 0]]}, "on", "off"]}`, false,
			map[string]any{"targetingKey": "u1"}, "on", flags.ReasonTargetingMatch, ""},
		{"all-zero weights", `{"fractional": [["on", 0], ["off", 0]]}`, false, map[string]any{"targetingKey": "u1"}, "off", flags.ReasonDefault, ""},
		{"negative weight", `{"fractional": [["on", -50], ["off", 10]]}`, false, map[string]any{"targetingKey": "u1"}, "off", flags.ReasonTargetingMatch, ""},
		{"null bucketing value, no key", `{"fractional": [{"var": "missing"}, ["on", 50], ["on", 50]]}`, false, map[string]any{}, "off", flags.ReasonDefault, ""},
		{"missing targeting key", `{"fractional": [["on", 50], ["on", 50]]}`, false, map[string]any{}, "off", flags.ReasonDefault, ""},
		{"empty targeting key", `{"fractional": [["on", 50], ["on", 50]]}`, false, map[string]any{"targetingKey": ""}, "off", flags.ReasonDefault, ""},
		{"numeric targeting key", `{"fractional": [["on", 50], ["on", 50]]}`, false, map[string]any{"targetingKey": 7.0}, "off", flags.ReasonDefault, ""},
		{"null targeting key", `{"fractional": [["on", 50], ["on", 50]]}`, false, map[string]any{"targetingKey": nil}, "off", flags.ReasonDefault, ""},
		{"unknown operator", `{"if": [{"equals": [1, 1]}, "on", "off"]}`, false, nil, "", flags.ReasonError, flags.CodeParseError},
		{"unknown variant", `{"if": [true, "onn", "off"]}`, false, nil, "", flags.ReasonError, flags.CodeGeneral},
		{"$ref to nothing", `{"if": [{"$ref": "nope"}, "on", "off"]}`, false, nil, "", flags.ReasonError, flags.CodeParseError},
		{"sem_ver wrong argument count", `{"if": [{"sem_ver": [{"var": "v"}, ">="]}, "on", "off"]}`, false, map[string]any{"v": "1.0.0"}, "off", flags.ReasonTargetingMatch, ""},
		{"sem_ver wrong argument count as result", `{"sem_ver": [{"var": "v"}, ">="]}`, false, map[string]any{"v": "1.0.0"}, "off", flags.ReasonDefault, ""},
		{"sem_ver unknown operator", `{"sem_ver": [{"var": "v"}, "===", "1.0.0"]}`, false, map[string]any{"v": "1.0.0"}, "off", flags.ReasonDefault, ""},
		{"sem_ver V prefix", `{"if": [{"sem_ver": [{"var": "v"}, "=", "1.0.0"]}, "on", "off"]}`, false, map[string]any{"v": "V1.0.0"}, "on", flags.ReasonTargetingMatch, ""},
		{"sem_ver invalid version", `{"sem_ver": [{"var": "v"}, "<", "2.0.0"]}`, false, map[string]any{"v": "not-a-version"}, "off", flags.ReasonDefault, ""},
		{"sem_ver 4-part literal", `{"if": [{"sem_ver": [{"var": "v"}, "=", "2.0.0.0"]}, "on", "off"]}`, false, map[string]any{"v": "2.0.0"}, "off", flags.ReasonTargetingMatch, ""},
		{"ends_with on a number", `{"ends_with": [{"var": "n"}, "3"]}`, false, map[string]any{"n": 123.0}, "off", flags.ReasonDefault, ""},
		{"starts_with on a number", `{"starts_with": [{"var": "n"}, "1"]}`, false, map[string]any{"n": 123.0}, "off", flags.ReasonDefault, ""},
		{"and over a failing operand", `{"if": [{"and": [{"starts_with": [{"var": "plan"}, "x"]}, true]}, "on", "off"]}`, false, map[string]any{}, "off", flags.ReasonTargetingMatch, ""},
		{"or over a failing operand", `{"if": [{"or": [{"starts_with": [{"var": "plan"}, "x"]}, false]}, "on", "off"]}`, false, map[string]any{}, "off", flags.ReasonTargetingMatch, ""},
		{"comparison with one operand", `{"if": [{"<": [1]}, "on", "off"]}`, false, nil, "off", flags.ReasonTargetingMatch, ""},
		{"some over the context's array", `{"if": [{"some": [{"var": "tags"}, {"==": [{"var": ""}, "beta"]}]}, "on", "off"]}`, false,
			map[string]any{"tags": []any{"eu", "beta"}}, "on", flags.ReasonTargetingMatch, ""},
		{"filter reads the element", `{"if": [{"filter": [{"var": "cart"}, {">": [{"var": "price"}, 5]}]}, "on", "off"]}`, false,
			map[string]any{"cart": []any{map[string]any{"price": 2.0}, map[string]any{"price": 9.0}}}, "on", flags.ReasonTargetingMatch, ""},
		{"filter: the context's var wins over the element's", `{"if": [{"filter": [{"var": "cart"}, {">": [{"var": "price"}, 5]}]}, "on", "off"]}`, false,
			map[string]any{"price": 1.0, "cart": []any{map[string]any{"price": 9.0}}}, "off", flags.ReasonTargetingMatch, ""},
		{"all reads the element", `{"if": [{"all": [{"var": "cart"}, {">": [{"var": "price"}, 5]}]}, "on", "off"]}`, false,
			map[string]any{"price": 1.0, "cart": []any{map[string]any{"price": 9.0}}}, "on", flags.ReasonTargetingMatch, ""},
		{"none of an empty array", `{"if": [{"none": [[], {"var": ""}]}, "on", "off"]}`, false, nil, "on", flags.ReasonTargetingMatch, ""},
		{"reduce sums", `{"if": [{">": [{"reduce": [{"var": "cart"}, {"+": [{"var": "accumulator"}, {"var": "current.price"}]}, 0]}, 10]}, "on", "off"]}`, false,
			map[string]any{"cart": []any{map[string]any{"price": 6.0}, map[string]any{"price": 6.0}}}, "on", flags.ReasonTargetingMatch, ""},
		{"map then in", `{"if": [{"in": ["b", {"map": [{"var": "cart"}, {"var": "sku"}]}]}, "on", "off"]}`, false,
			map[string]any{"cart": []any{map[string]any{"sku": "a"}, map[string]any{"sku": "b"}}}, "on", flags.ReasonTargetingMatch, ""},
		{"all over a string fails as in the library", `{"if": [{"all": [{"var": "plan"}, {"var": ""}]}, "on", "off"]}`, false,
			map[string]any{"plan": "pro"}, "", flags.ReasonError, flags.CodeParseError},
		{"reduce converts to the initial value's type", `{"if": [{"reduce": [[1], {"var": "current"}, true]}, "on", "off"]}`, false,
			nil, "on", flags.ReasonTargetingMatch, ""},
		{"contains_any", `{"if": [{"contains_any": [{"var": "tags"}, ["beta", "x"]]}, "on", "off"]}`, false,
			map[string]any{"tags": []any{"beta"}}, "on", flags.ReasonTargetingMatch, ""},
		{"contains_all of two arrays' arrays fails", `{"if": [{"contains_all": [[["x"]], [["x"]]]}, "on", "off"]}`, false,
			nil, "", flags.ReasonError, flags.CodeParseError},
		{"set", `{"if": [{"!!": [{"set": [{"var": "user"}, "beta", true]}]}, "on", "off"]}`, false,
			map[string]any{"user": map[string]any{}}, "on", flags.ReasonTargetingMatch, ""},
		{"no default variant, targeting null", `{"if": [false, "on"]}`, true, nil, "", flags.ReasonDefault, ""},
		{"no default variant, no targeting", ``, true, nil, "", flags.ReasonDefault, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			def := `"defaultVariant": "off",`
			if tc.noDefault {
				def = ""
			}
			targeting := ""
			if tc.targeting != "" {
				targeting = `, "targeting": ` + tc.targeting
			}
			file := `{"flags": {"relative": {"state": "ENABLED", "variants": {"on": true, "off": false}, ` + def + ` "metadata": {}` + targeting + `}}}`
			f, err := flags.ParseFile([]byte(file))
			if err != nil {
				t.Fatalf("ParseFile refuses what flagd loads: %v", err)
			}
			snap, err := flags.Compile(f.Flags, f.Segments)
			if err != nil {
				t.Fatal(err)
			}
			r := snap.Evaluate("relative", tc.ctx, time.Now())
			if r.Variant != tc.variant || r.Reason != tc.reason || r.ErrorCode != tc.code {
				t.Errorf("got variant %q, reason %s, code %q (%s); want %q, %s, %q", r.Variant, r.Reason, r.ErrorCode, r.ErrorDetails, tc.variant, tc.reason, tc.code)
			}
			if tc.variant == "" && r.Value != nil {
				t.Errorf("value %v, want none: the code default", r.Value)
			}
		})
	}
}

// TestParseFile_FlagSetMetadata: flags inherit the file's metadata as in
// flagd, their own keys winning, and nothing is added.
func TestParseFile_FlagSetMetadata(t *testing.T) {
	f, err := flags.ParseFile([]byte(`{"metadata": {"team": "growth", "owner": "all"}, "flags": {
		"a": {"state": "ENABLED", "variants": {"on": true}, "defaultVariant": "on", "metadata": {"owner": "web"}},
		"b": {"state": "ENABLED", "variants": {"on": true}, "defaultVariant": "on"}}}`))
	if err != nil {
		t.Fatal(err)
	}
	snap, err := flags.Compile(f.Flags, f.Segments)
	if err != nil {
		t.Fatal(err)
	}
	for key, want := range map[string]map[string]any{
		"a": {"team": "growth", "owner": "web"},
		"b": {"team": "growth", "owner": "all"},
	} {
		if got := snap.Evaluate(key, nil, time.Now()).Metadata; !reflect.DeepEqual(got, want) {
			t.Errorf("%s: metadata %v, want %v", key, got, want)
		}
	}
}
