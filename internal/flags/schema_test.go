package flags_test

// flagd's published JSON schema (github.com/open-feature/flagd-schemas) is
// the reference for the file format: what Shipgate reads and writes must
// conform to it. Shipgate validates with its own rules at load time (the
// same rules, plus stricter ones, with JSON paths and advice); this test
// keeps the two in step.

import (
	"os"
	"strings"
	"testing"
	"time"

	schemas "github.com/open-feature/flagd-schemas/json"
	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/shipgate/shipgate/internal/flags"
)

func flagdSchema(t *testing.T) *jsonschema.Schema {
	t.Helper()
	c := jsonschema.NewCompiler()
	for url, text := range map[string]string{
		"https://flagd.dev/schema/v0/flagd.json":     schemas.FlagdSchema,
		"https://flagd.dev/schema/v0/flags.json":     schemas.FlagSchema,
		"https://flagd.dev/schema/v0/targeting.json": schemas.TargetingSchema,
	} {
		doc, err := jsonschema.UnmarshalJSON(strings.NewReader(text))
		if err != nil {
			t.Fatal(err)
		}
		if err := c.AddResource(url, doc); err != nil {
			t.Fatal(err)
		}
	}
	s, err := c.Compile("https://flagd.dev/schema/v0/flagd.json")
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func schemaValid(t *testing.T, s *jsonschema.Schema, data []byte) error {
	t.Helper()
	doc, err := jsonschema.UnmarshalJSON(strings.NewReader(string(data)))
	if err != nil {
		return err
	}
	return s.Validate(doc)
}

func TestParseFile_AgreesWithFlagdSchema(t *testing.T) {
	s := flagdSchema(t)
	data, err := os.ReadFile("testdata/flagd/flags.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := schemaValid(t, s, data); err != nil {
		t.Fatalf("the flagd fixture does not conform to flagd's schema: %v", err)
	}
	file, err := flags.ParseFile(data)
	if err != nil {
		t.Fatal(err)
	}
	// What Shipgate writes, its own metadata and plans included, is a
	// file flagd accepts.
	f := flags.NewBooleanFlag("written", "payments", "a flag", time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC), time.Now())
	p := flags.Plan{Users: []string{"u1"}, Segments: []string{"internal"}, Percent: 25, Rules: []flags.Rule{
		{Attribute: "appVersion", Op: ">=", Values: []string{"2.1.0"}}, {Attribute: "country", Op: "not_in", Values: []string{"FR"}}}}
	if err := flags.ApplyPlan(f, p, time.Now()); err != nil {
		t.Fatal(err)
	}
	out, err := flags.Marshal(append(file.Flags, f), file.Segments)
	if err != nil {
		t.Fatal(err)
	}
	if err := schemaValid(t, s, out); err != nil {
		t.Fatalf("Shipgate writes a file flagd's schema rejects: %v\n%s", err, out)
	}
	// Where a file breaks the schema, flagd only warns and loads it; so
	// does Shipgate for targeting, and it refuses mixed variant types.
	for name, refused := range map[string]bool{"invalid/mixed_variants": true, "warnings/unknown_operator": false, "warnings/one_operand": false} {
		b, err := os.ReadFile("testdata/" + name + ".json")
		if err != nil {
			t.Fatal(err)
		}
		if schemaValid(t, s, b) == nil {
			t.Errorf("%s: flagd's schema accepts it; the fixture no longer shows a schema violation", name)
		}
		f, err := flags.ParseFile(b)
		switch {
		case refused && err == nil:
			t.Errorf("%s: Shipgate accepts what flagd's schema rejects", name)
		case !refused && (err != nil || len(f.Warnings) == 0):
			t.Errorf("%s: want it loaded with a warning, got %v", name, err)
		}
	}
}
