package flags

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// FuzzParseFile feeds arbitrary bytes to the flag-file parser: it must
// never panic, and whatever it accepts must compile and evaluate.
func FuzzParseFile(f *testing.F) {
	for _, glob := range []string{"testdata/flagd/*.json", "testdata/invalid/*.json", "testdata/*.json"} {
		files, _ := filepath.Glob(glob)
		for _, p := range files {
			if b, err := os.ReadFile(p); err == nil {
				f.Add(b)
			}
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		file, err := ParseFile(data)
		if err != nil {
			return
		}
		snap, err := Compile(file.Flags, file.Segments)
		if err != nil {
			t.Fatalf("ParseFile accepted a file Compile rejects: %v", err)
		}
		for _, k := range snap.Keys() {
			snap.Evaluate(k, map[string]any{"targetingKey": "u1", "email": "a@b.c", "n": 3.0}, time.Unix(1700000000, 0))
		}
	})
}

// FuzzCompileRule feeds arbitrary JSON Logic to the compiler and arbitrary
// contexts to the evaluator: neither may panic, and a rule that compiles
// evaluates to a result or an error code, never something else.
func FuzzCompileRule(f *testing.F) {
	seeds := []struct{ rule, ctx string }{
		{`{"if":[{"==":[{"var":"plan"},"pro"]},"on","off"]}`, `{"plan":"pro"}`},
		{`{"fractional":[["on",50],["off",50]]}`, `{"targetingKey":"u"}`},
		{`{"fractional":[{"cat":[{"var":"$flagd.flagKey"},{"var":"email"}]},["on",25],["off",75]]}`, `{"email":"x"}`},
		{`{"sem_ver":[{"var":"v"},">=","1.2.3"]}`, `{"v":"1.3.0"}`},
		{`{"in":[{"var":"c"},["a","b",[1,3]]]}`, `{"c":2}`},
		{`{"substr":[{"var":"s"},-3,{"var":"n"}]}`, `{"s":"hello","n":-1}`},
		{`{"and":[{"missing":["a","b"]},{"missing_some":[1,["c"]]}]}`, `{"a":[1,{"b":null}]}`},
		{`{"var":["items.1.name","none"]}`, `{"items":[{"name":"x"},{"name":"y"}]}`},
		{`{"cat":[{"var":""},{"merge":[1,[2,3]]},{"max":[1,2]},{"%":[7,3]}]}`, `{}`},
		{`{"if":[true,{"var":"obj"}]}`, `{"obj":{"==":[1,1]}}`},
		{`{"starts_with":[{"var":"e"},"a"]}`, `{"e":5}`},
		{`{"some":[{"var":"tags"},{"filter":[{"var":"cart"},{">":[{"var":"price"},{"var":""}]}]}]}`, `{"tags":[1,"a"],"cart":[{"price":3}]}`},
		{`{"reduce":[{"map":[{"var":"c"},{"var":"n"}]},{"+":[{"var":"accumulator"},{"var":"current"}]},{"var":"z"}]}`, `{"c":[{"n":1},null,{"n":"2"}],"z":0}`},
		{`{"contains_any":[{"set":[{"var":"o"},"k",[1]]},[[1]]]}`, `{"o":{}}`},
	}
	for _, s := range seeds {
		f.Add(s.rule, s.ctx)
	}
	variants := map[string]any{"on": true, "off": false}
	f.Fuzz(func(t *testing.T, rule, ctx string) {
		var r any
		if json.Unmarshal([]byte(rule), &r) != nil {
			return
		}
		c := &compiler{variants: variants}
		n := c.compileRule(r, "/targeting")
		if n == nil {
			t.Fatal("no rule compiled")
		}
		var data map[string]any
		if json.Unmarshal([]byte(ctx), &data) != nil {
			data = map[string]any{}
		}
		off := "off"
		cf := &compiledFlag{flag: &Flag{Key: "f", State: Enabled, Variants: variants, DefaultVariant: &off}, rule: n}
		res := cf.evaluate("f", data, time.Unix(1700000000, 0))
		switch res.Reason {
		case ReasonTargetingMatch, ReasonDefault:
			if _, ok := variants[res.Variant]; !ok {
				t.Fatalf("reason %s with variant %q", res.Reason, res.Variant)
			}
		case ReasonError:
			if res.ErrorCode == "" {
				t.Fatal("an error without a code")
			}
		default:
			t.Fatalf("unexpected reason %s", res.Reason)
		}
	})
}
