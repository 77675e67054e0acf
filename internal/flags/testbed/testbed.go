// Package testbed runs flagd's conformance scenarios (the Gherkin suites
// of open-feature/flagd-testbed, vendored under
// internal/flags/testdata/flagd-testbed) against a flag resolver: Shipgate's
// evaluator directly, or Shipgate's OFREP server through the OpenFeature
// Go SDK. It holds the step definitions both share; it is used by tests
// only.
package testbed

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"reflect"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/cucumber/godog"
)

// Details is the outcome of one typed evaluation, as an OpenFeature
// client sees it: the code default is already substituted where the
// flag gave no value.
type Details struct {
	Value     any
	Variant   string
	Reason    string
	ErrorCode string
	Metadata  map[string]any
}

// Resolver evaluates flags as an OpenFeature client does.
type Resolver interface {
	// Resolve evaluates key as kind (Boolean, String, Integer, Float or
	// Object), with def as the code default: bool, string, int64,
	// float64 or map[string]any.
	Resolve(ctx context.Context, kind, key string, def any, evalCtx map[string]any) (Details, error)
}

// Suite is one run of feature files.
type Suite struct {
	// Paths are the feature files or directories.
	Paths []string
	// Tags is a godog tag expression choosing the scenarios, such as
	// "~@fractional-v1 && ~@deprecated".
	Tags string
	// Resolver returns the resolver serving a flag set: selector is the
	// value of the scenario's "selector" option ("" when it has none),
	// naming the flag file a flagd provider would select.
	Resolver func(selector string) (Resolver, error)
}

// Dir returns the vendored testbed's directory.
func Dir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "testdata", "flagd-testbed")
}

// Run runs the suite, each scenario as a subtest of t; undefined or
// pending steps fail.
func (s Suite) Run(t *testing.T) {
	suite := godog.TestSuite{
		Name:                "flagd-testbed",
		ScenarioInitializer: s.initScenario,
		Options: &godog.Options{
			Format:   "progress",
			Paths:    s.Paths,
			Tags:     s.Tags,
			Strict:   true,
			TestingT: t,
		},
	}
	if status := suite.Run(); status != 0 {
		t.Fatalf("the flagd-testbed scenarios failed (status %d)", status)
	}
}

// scenario is the state of one scenario.
type scenario struct {
	suite    Suite
	selector string
	kind     string
	key      string
	def      any
	ctx      map[string]any
	details  Details
	err      error
}

func (s Suite) initScenario(sc *godog.ScenarioContext) {
	st := &scenario{suite: s}
	sc.Before(func(ctx context.Context, _ *godog.Scenario) (context.Context, error) {
		*st = scenario{suite: s, ctx: map[string]any{}}
		return ctx, nil
	})
	sc.Step(`^an evaluator$`, func() error { return nil })
	sc.Step(`^a (?:stable|metadata) flagd provider$`, func() error { return nil })
	sc.Step(`^an option "([^"]*)" of type "([^"]*)" with value "([^"]*)"$`, st.option)
	sc.Step(`^a ([A-Za-z]+)-flag with key "([^"]*)" and a (?:fallback|default) value "(.*)"$`, st.flag)
	sc.Step(`^a context containing a key "([^"]*)", with type "([^"]*)" and with value "(.*)"$`, st.contextKey)
	sc.Step(`^a context containing a targeting key with value "(.*)"$`, func(v string) error {
		st.ctx["targetingKey"] = v
		return nil
	})
	sc.Step(`^a context containing a nested property with outer key "([^"]*)" and inner key "([^"]*)", with value "(.*)"$`,
		func(outer, inner, v string) error {
			st.ctx[outer] = map[string]any{inner: v}
			return nil
		})
	sc.Step(`^the flag was evaluated with details$`, st.evaluate)
	sc.Step(`^the resolved details value should be "(.*)"$`, st.valueShouldBe)
	sc.Step(`^the reason should be "([^"]*)"$`, func(want string) error {
		if st.details.Reason != want {
			return fmt.Errorf("reason %q, want %q (%+v)", st.details.Reason, want, st.details)
		}
		return nil
	})
	sc.Step(`^the error-code should be "([^"]*)"$`, func(want string) error {
		if st.details.ErrorCode != want {
			return fmt.Errorf("error code %q, want %q (%+v)", st.details.ErrorCode, want, st.details)
		}
		return nil
	})
	sc.Step(`^the variant should be "([^"]*)"$`, func(want string) error {
		if st.details.Variant != want {
			return fmt.Errorf("variant %q, want %q (%+v)", st.details.Variant, want, st.details)
		}
		return nil
	})
	sc.Step(`^the resolved metadata should contain$`, st.metadataContains)
	sc.Step(`^the resolved metadata is empty$`, func() error {
		if len(st.details.Metadata) != 0 {
			return fmt.Errorf("metadata %v, want none", st.details.Metadata)
		}
		return nil
	})
}

// option reads a provider option. Only the selector changes what is
// served (the flag set); the others configure a flagd provider's
// transport and caching, which OFREP and the evaluator do not have.
func (st *scenario) option(name, _, value string) error {
	if name == "selector" {
		st.selector = value
	}
	return nil
}

func (st *scenario) flag(kind, key, def string) error {
	v, err := parse(kind, def)
	if err != nil {
		return fmt.Errorf("default value: %w", err)
	}
	st.kind, st.key, st.def = kind, key, v
	return nil
}

func (st *scenario) contextKey(key, kind, value string) error {
	v, err := parse(kind, value)
	if err != nil {
		return fmt.Errorf("context value: %w", err)
	}
	st.ctx[key] = v
	return nil
}

func (st *scenario) evaluate(ctx context.Context) error {
	r, err := st.suite.Resolver(st.selector)
	if err != nil {
		return err
	}
	st.details, st.err = r.Resolve(ctx, st.kind, st.key, st.def, st.ctx)
	return st.err
}

func (st *scenario) valueShouldBe(want string) error {
	w, err := parse(st.kind, want)
	if err != nil {
		return err
	}
	if !reflect.DeepEqual(st.details.Value, w) {
		return fmt.Errorf("value %#v, want %#v (%+v)", st.details.Value, w, st.details)
	}
	return nil
}

func (st *scenario) metadataContains(table *godog.Table) error {
	var problems []string
	for i, row := range table.Rows {
		if i == 0 {
			continue
		}
		key, kind, want := row.Cells[0].Value, row.Cells[1].Value, row.Cells[2].Value
		got, ok := st.details.Metadata[key]
		if !ok {
			problems = append(problems, fmt.Sprintf("no %q", key))
			continue
		}
		w, err := parse(kind, want)
		if err != nil {
			return err
		}
		if !sameMeta(got, w) {
			problems = append(problems, fmt.Sprintf("%s = %#v, want %#v", key, got, w))
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("metadata %v: %s", st.details.Metadata, strings.Join(problems, "; "))
	}
	return nil
}

// sameMeta compares a metadata value with a parsed expectation; numbers
// compare by value, whatever their Go type.
func sameMeta(got, want any) bool {
	g, gok := number(got)
	w, wok := number(want)
	if gok && wok {
		return g == w
	}
	return reflect.DeepEqual(got, want)
}

func number(x any) (float64, bool) {
	switch v := x.(type) {
	case float64:
		return v, true
	case int64:
		return float64(v), true
	case int:
		return float64(v), true
	}
	return 0, false
}

// parse reads a step's value as the named type.
func parse(kind, s string) (any, error) {
	switch kind {
	case "Boolean":
		return strconv.ParseBool(s)
	case "String":
		return s, nil
	case "Integer":
		return strconv.ParseInt(s, 10, 64)
	case "Float":
		return strconv.ParseFloat(s, 64)
	case "Object":
		var m map[string]any
		err := json.Unmarshal([]byte(strings.ReplaceAll(s, `\"`, `"`)), &m)
		return m, err
	}
	return nil, fmt.Errorf("unknown type %q", kind)
}

// Typed applies an OpenFeature client's typing to a resolved value: the
// value must be of kind, integers are whole numbers, and a mismatch is
// TYPE_MISMATCH with the code default.
func Typed(kind string, v any) (any, error) {
	switch kind {
	case "Boolean":
		if b, ok := v.(bool); ok {
			return b, nil
		}
	case "String":
		if s, ok := v.(string); ok {
			return s, nil
		}
	case "Integer":
		if f, ok := v.(float64); ok && f == math.Trunc(f) {
			return int64(f), nil
		}
	case "Float":
		if f, ok := v.(float64); ok {
			return f, nil
		}
	case "Object":
		if m, ok := v.(map[string]any); ok {
			return m, nil
		}
	}
	return nil, ErrTypeMismatch
}

// ErrTypeMismatch is a value of another type than the one asked for.
var ErrTypeMismatch = errors.New("TYPE_MISMATCH")
