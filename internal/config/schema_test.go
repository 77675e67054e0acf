package config

import (
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
)

const schemaFile = "../../docs/shipgate.schema.json"

// TestSchema_MatchesConfig walks Config by reflection next to the JSON
// Schema, so that neither can gain, lose or rename a field without the
// other, and every description stays the doc comment of its field.
func TestSchema_MatchesConfig(t *testing.T) {
	schema := readSchema(t)
	docs := fieldDocs(t)
	w := schemaWalker{t: t, defs: schema["$defs"].(map[string]any), docs: docs}
	w.walk("", reflect.TypeFor[Config](), schema)
}

type schemaWalker struct {
	t    *testing.T
	defs map[string]any
	docs map[string]map[string]string // type name → field name → doc comment
}

func (w schemaWalker) walk(path string, typ reflect.Type, node map[string]any) {
	t := w.t
	if typ.Kind() == reflect.Pointer {
		typ = typ.Elem()
	}
	ref, _ := node["$ref"].(string)
	switch typ {
	case reflect.TypeFor[Duration]():
		if ref != "#/$defs/duration" && ref != "#/$defs/positiveDuration" {
			t.Errorf("%s: schema refers to %q, want a duration", path, ref)
		}
		return
	case reflect.TypeFor[Threshold]():
		if ref != "#/$defs/threshold" {
			t.Errorf("%s: schema refers to %q, want #/$defs/threshold", path, ref)
		}
		return
	case reflect.TypeFor[Approval]():
		// approval is true/false or the mapping: walk the mapping.
		alts, _ := node["oneOf"].([]any)
		if len(alts) != 2 || alts[0].(map[string]any)["type"] != "boolean" {
			t.Errorf("%s: want oneOf boolean and the mapping, got %v", path, node)
			return
		}
		node = alts[1].(map[string]any)
	}
	node = w.resolve(node)
	switch typ.Kind() {
	case reflect.Struct:
		if got, want := node["type"], "object"; got != want {
			t.Errorf("%s: type = %v, want %v", path, got, want)
		}
		if got, want := node["additionalProperties"], false; got != want {
			t.Errorf("%s: additionalProperties = %v, want %v", path, got, want)
		}
		props, _ := node["properties"].(map[string]any)
		fields := yamlFields(typ)
		for name := range props {
			if _, ok := fields[name]; !ok {
				t.Errorf("%s: the schema has a property %q that %s does not have", path, name, typ.Name())
			}
		}
		for _, name := range sortedKeys(fields) {
			f := typ.Field(fields[name])
			p := join(path, name)
			prop, ok := props[name].(map[string]any)
			if !ok {
				t.Errorf("%s: missing from the schema", p)
				continue
			}
			if got, want := prop["description"], description(w.docs[typ.Name()][f.Name], f.Name, name); got != want {
				t.Errorf("%s: description = %q, want the doc comment of %s.%s: %q", p, got, typ.Name(), f.Name, want)
			}
			w.walk(p, f.Type, prop)
		}
	case reflect.Map:
		if got, want := node["type"], "object"; got != want {
			t.Errorf("%s: type = %v, want %v", path, got, want)
		}
		elem, ok := node["additionalProperties"].(map[string]any)
		if !ok {
			t.Errorf("%s: additionalProperties must be the schema of the values", path)
			return
		}
		w.walk(path+".*", typ.Elem(), elem)
	case reflect.Slice:
		if got, want := node["type"], "array"; got != want {
			t.Errorf("%s: type = %v, want %v", path, got, want)
		}
		items, ok := node["items"].(map[string]any)
		if !ok {
			t.Errorf("%s: items missing", path)
			return
		}
		w.walk(path+"[]", typ.Elem(), items)
	case reflect.String:
		if typ == reflect.TypeFor[Metric]() {
			if got, want := node["enum"], []any{"error_rate", "latency_p50", "latency_p95", "latency_p99"}; !reflect.DeepEqual(got, want) {
				t.Errorf("%s: enum = %v, want %v", path, got, want)
			}
			return
		}
		w.wantType(path, node, "string")
	case reflect.Int:
		w.wantType(path, node, "integer")
	case reflect.Float64:
		w.wantType(path, node, "number")
	case reflect.Bool:
		w.wantType(path, node, "boolean")
	default:
		t.Errorf("%s: the test does not know the kind %s", path, typ.Kind())
	}
}

// wantType checks that the schema's type is want or a list holding it.
func (w schemaWalker) wantType(path string, node map[string]any, want string) {
	switch got := node["type"].(type) {
	case string:
		if got == want {
			return
		}
	case []any:
		if slices.Contains(got, any(want)) {
			return
		}
	}
	w.t.Errorf("%s: type = %v, want %s", path, node["type"], want)
}

func (w schemaWalker) resolve(node map[string]any) map[string]any {
	for range 10 {
		ref, ok := node["$ref"].(string)
		if !ok {
			return node
		}
		def, ok := w.defs[strings.TrimPrefix(ref, "#/$defs/")].(map[string]any)
		if !ok {
			w.t.Fatalf("$ref %q does not resolve", ref)
		}
		node = def
	}
	w.t.Fatal("$ref loop")
	return nil
}

// description is what the schema says about a field: its doc comment on one
// line, starting with the YAML key instead of the Go name.
func description(doc, goName, yamlName string) string {
	doc = strings.Join(strings.Fields(doc), " ")
	for _, sep := range []string{" ", ", "} {
		if rest, ok := strings.CutPrefix(doc, goName+sep); ok {
			return yamlName + sep + rest
		}
	}
	return doc
}

// fieldDocs reads the doc comments of the struct fields in config.go.
func fieldDocs(t *testing.T) map[string]map[string]string {
	t.Helper()
	// The config types live in config.go and, for newer sections, in
	// files of their own (notifications.go, metrics.go).
	docs := map[string]map[string]string{}
	for _, file := range []string{"config.go", "notifications.go", "metrics.go", "kubernetes.go"} {
		f, err := parser.ParseFile(token.NewFileSet(), file, nil, parser.ParseComments)
		if err != nil {
			t.Fatal(err)
		}
		inspectDocs(f, docs)
	}
	return docs
}

func inspectDocs(f *ast.File, docs map[string]map[string]string) {
	ast.Inspect(f, func(n ast.Node) bool {
		ts, ok := n.(*ast.TypeSpec)
		if !ok {
			return true
		}
		st, ok := ts.Type.(*ast.StructType)
		if !ok {
			return false
		}
		docs[ts.Name.Name] = map[string]string{}
		for _, field := range st.Fields.List {
			for _, name := range field.Names {
				docs[ts.Name.Name][name.Name] = field.Doc.Text()
			}
		}
		return false
	})
}

func readSchema(t *testing.T) map[string]any {
	t.Helper()
	data, err := os.ReadFile(schemaFile)
	if err != nil {
		t.Fatal(err)
	}
	var schema map[string]any
	if err := json.Unmarshal(data, &schema); err != nil {
		t.Fatalf("%s: %v", schemaFile, err)
	}
	if got, want := schema["$schema"], "https://json-schema.org/draft/2020-12/schema"; got != want {
		t.Errorf("$schema = %v, want %v", got, want)
	}
	return schema
}

// TestSchema_Patterns checks that the schema's patterns accept what Parse
// accepts, so that an editor does not flag a good file or pass a bad one.
func TestSchema_Patterns(t *testing.T) {
	defs := readSchema(t)["$defs"].(map[string]any)
	pattern := func(def string) *regexp.Regexp {
		return regexp.MustCompile(defs[def].(map[string]any)["pattern"].(string))
	}
	duration := pattern("duration")
	for _, s := range []string{"10s", "1.5s", "1m30s", "250ms", "1h", "0", "0s", ".5s", "3us", "10", "-1s", "1 s", "s", "", "1d", "1.s"} {
		_, msg := parseDuration(s)
		if got, want := duration.MatchString(s), msg == ""; got != want {
			t.Errorf("duration pattern matches %q: %v, Parse accepts it: %v", s, got, want)
		}
	}
	substituted := pattern("substituted")
	for _, s := range []string{"./shop", "${PORT}", "a${B_1}c$", "$HOME", "${", "${PORT", "${1X}", "${A-B}", "x${}"} {
		d := &decoder{nodes: map[string]entry{}}
		d.checkReferences("run.command[0]", s)
		if got, want := substituted.MatchString(s), len(d.problems) == 0; got != want {
			t.Errorf("substituted pattern matches %q: %v, Parse accepts it: %v", s, got, want)
		}
	}
}
