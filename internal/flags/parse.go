package flags

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
	"unicode"
)

// File is a flagd flag-definition file: flags, shared rules and metadata.
type File struct {
	// Flags in key order.
	Flags []*Flag
	// Segments are the file's "$evaluators", by name.
	Segments []Segment
	// Metadata is the flag set's metadata. Flags inherit it, as in flagd:
	// ParseFile copies it into each flag's metadata, where the flag's own
	// keys win.
	Metadata map[string]any
	// Warnings are what looks wrong in targeting rules that flagd loads
	// all the same (see Compile).
	Warnings []Problem
}

// maxKeyLen bounds a flag key or segment name: it goes into URLs and logs.
const maxKeyLen = 256

// ParseFile parses a flagd flag-definition file (JSON) and validates it
// against flagd's schema rules and Shipgate's own (see Compile). "flags"
// may be an object keyed by flag key or, as flagd also accepts, an array
// of flags with a "key". Problems come back as one *ValidationError with
// the JSON path of each.
func ParseFile(data []byte) (*File, error) {
	var top map[string]json.RawMessage
	if err := decodeStrict(data, &top); err != nil {
		return nil, invalidf("", "the file is not a JSON object: %v", err)
	}
	var problems, warnings []Problem
	f := &File{}
	for k := range top {
		switch k {
		case "flags", "$evaluators", "metadata", "$schema":
		default:
			warnings = append(warnings, Problem{Path: pointer("", k), Message: "unknown top-level field, ignored; a flagd file has flags, $evaluators and metadata"})
		}
	}
	raw, ok := top["flags"]
	if !ok {
		problems = append(problems, Problem{Path: "/flags", Message: "is required: the object of flag definitions"})
	} else {
		flags, ps, ws := parseFlags(raw)
		f.Flags, problems, warnings = flags, append(problems, ps...), append(warnings, ws...)
	}
	if raw, ok := top["$evaluators"]; ok {
		var evals map[string]json.RawMessage
		if err := json.Unmarshal(raw, &evals); err != nil {
			problems = append(problems, Problem{Path: "/$evaluators", Message: "must be an object of named JSON Logic rules"})
		}
		for _, name := range slices.Sorted(maps.Keys(evals)) {
			if err := checkName(name); err != nil {
				problems = append(problems, Problem{Path: pointer("/$evaluators", name), Message: err.Error()})
			}
			f.Segments = append(f.Segments, Segment{Name: name, Rule: compact(evals[name])})
		}
	}
	if raw, ok := top["metadata"]; ok {
		if err := json.Unmarshal(raw, &f.Metadata); err != nil {
			problems = append(problems, Problem{Path: "/metadata", Message: "must be an object of strings, numbers and booleans"})
		}
		ps, ws := checkMetadata(f.Metadata, "/metadata")
		problems, warnings = append(problems, ps...), append(warnings, ws...)
	}
	if len(problems) == 0 {
		snap, err := Compile(f.Flags, f.Segments)
		if err != nil {
			return nil, err
		}
		f.Warnings = slices.Concat(warnings, snap.Warnings())
		slices.SortStableFunc(f.Warnings, func(a, b Problem) int { return strings.Compare(a.Path, b.Path) })
		inherit(f.Flags, f.Metadata)
		return f, nil
	}
	// Report the compile problems too, so that one run shows everything.
	var ve *ValidationError
	if _, err := Compile(f.Flags, f.Segments); errors.As(err, &ve) {
		problems = append(problems, ve.Problems...)
	}
	return nil, &ValidationError{Problems: dedupe(problems)}
}

// inherit copies the flag set's metadata into each flag's, as flagd's
// store does: a flag's own keys win, and null values are dropped.
func inherit(flags []*Flag, set map[string]any) {
	if len(set) == 0 {
		return
	}
	for _, f := range flags {
		m := make(map[string]any, len(set)+len(f.Metadata))
		for k, v := range set {
			if v != nil {
				m[k] = v
			}
		}
		for k, v := range f.Metadata {
			m[k] = v
		}
		f.Metadata = m
	}
}

// parseFlags parses the "flags" member: an object or an array.
func parseFlags(raw json.RawMessage) ([]*Flag, []Problem, []Problem) {
	var problems, warnings []Problem
	trimmed := bytes.TrimSpace(raw)
	entries := map[string]json.RawMessage{}
	paths := map[string]string{}
	switch {
	case len(trimmed) > 0 && trimmed[0] == '[':
		var list []json.RawMessage
		if err := json.Unmarshal(raw, &list); err != nil {
			return nil, []Problem{{Path: "/flags", Message: "must be an object (or array) of flag definitions"}}, nil
		}
		for i, item := range list {
			var k struct {
				Key string `json:"key"`
			}
			_ = json.Unmarshal(item, &k)
			if k.Key == "" {
				problems = append(problems, Problem{Path: index("/flags", i) + "/key", Message: "is required in the array form of flags"})
				continue
			}
			if _, dup := entries[k.Key]; dup {
				problems = append(problems, Problem{Path: index("/flags", i) + "/key", Message: fmt.Sprintf("flag %q is defined twice", k.Key)})
				continue
			}
			entries[k.Key], paths[k.Key] = item, index("/flags", i)
		}
	default:
		if err := json.Unmarshal(raw, &entries); err != nil {
			return nil, []Problem{{Path: "/flags", Message: "must be an object (or array) of flag definitions"}}, nil
		}
	}
	var flags []*Flag
	for _, key := range slices.Sorted(maps.Keys(entries)) {
		path := paths[key]
		if path == "" {
			path = pointer("/flags", key)
		}
		f, ps, ws := parseFlag(key, entries[key])
		for i := range ps {
			ps[i].Path = path + strings.TrimPrefix(ps[i].Path, pointer("/flags", key))
		}
		for i := range ws {
			ws[i].Path = path + strings.TrimPrefix(ws[i].Path, pointer("/flags", key))
		}
		problems, warnings = append(problems, ps...), append(warnings, ws...)
		if f != nil {
			flags = append(flags, f)
		}
	}
	return flags, problems, warnings
}

// ParseFlag decodes one flag definition and checks its fields (not its
// targeting, which Compile checks). Problems have paths under /flags/<key>;
// a field flagd does not know is one.
func ParseFlag(key string, raw json.RawMessage) (*Flag, []Problem) {
	f, problems, warnings := parseFlag(key, raw)
	return f, append(warnings, problems...)
}

// parseFlag is ParseFlag, with the fields flagd ignores as warnings.
func parseFlag(key string, raw json.RawMessage) (*Flag, []Problem, []Problem) {
	path := pointer("/flags", key)
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(raw, &fields); err != nil || fields == nil {
		return nil, []Problem{{Path: path, Message: "a flag definition must be a JSON object with state, variants and defaultVariant"}}, nil
	}
	var problems, warnings []Problem
	for k := range fields {
		switch k {
		case "state", "variants", "defaultVariant", "targeting", "metadata", "key", "source", "flagSetId":
		default:
			warnings = append(warnings, Problem{Path: pointer(path, k), Message: "unknown field, ignored; a flag has state, variants, defaultVariant, targeting and metadata"})
		}
	}
	f := &Flag{Key: key}
	if err := json.Unmarshal(raw, f); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return nil, append(problems, Problem{Path: path + "/" + strings.ReplaceAll(te.Field, ".", "/"), Message: fmt.Sprintf("must be %s, not %s", jsonType(te.Type.Kind().String()), te.Value)}), warnings
		}
		return nil, append(problems, Problem{Path: path, Message: err.Error()}), warnings
	}
	if _, ok := fields["state"]; !ok {
		problems = append(problems, Problem{Path: path + "/state", Message: "is required: ENABLED or DISABLED"})
	}
	if _, ok := fields["variants"]; !ok {
		problems = append(problems, Problem{Path: path + "/variants", Message: "is required: an object of variant names and values"})
	}
	if f.DefaultVariant != nil && *f.DefaultVariant == "" {
		// flagd reads an empty default as none.
		f.DefaultVariant = nil
	}
	if len(f.Targeting) > 0 {
		f.Targeting = compact(f.Targeting)
	}
	return f, problems, warnings
}

func jsonType(kind string) string {
	switch kind {
	case "string":
		return "a string"
	case "map", "struct":
		return "an object"
	case "slice":
		return "an array"
	}
	return kind
}

// checkFlag checks a decoded flag's fields: problems make it unloadable,
// warnings do not.
func checkFlag(f *Flag, path string) (problems, warnings []Problem) {
	add := func(p, format string, args ...any) {
		problems = append(problems, Problem{Path: p, Message: fmt.Sprintf(format, args...)})
	}
	if err := checkName(f.Key); err != nil {
		add(path, "flag key: %v", err)
	}
	switch f.State {
	case Enabled, Disabled:
	default:
		add(path+"/state", "must be ENABLED or DISABLED, not %q", f.State)
	}
	if len(f.Variants) == 0 {
		add(path+"/variants", "must have at least one variant, such as {\"on\": true, \"off\": false}")
	}
	kinds := map[string][]string{}
	for _, name := range slices.Sorted(maps.Keys(f.Variants)) {
		if name == "" {
			add(path+"/variants", "a variant name must not be empty")
			continue
		}
		var k string
		switch f.Variants[name].(type) {
		case bool:
			k = "boolean"
		case string:
			k = "string"
		case float64:
			k = "number"
		case map[string]any:
			k = "object"
		default:
			add(pointer(path+"/variants", name), "a variant is a boolean, a string, a number or an object, not %s", describe(f.Variants[name]))
			continue
		}
		kinds[k] = append(kinds[k], name)
	}
	if len(kinds) > 1 {
		var parts []string
		for _, k := range slices.Sorted(maps.Keys(kinds)) {
			parts = append(parts, fmt.Sprintf("%s (%s)", k, strings.Join(kinds[k], ", ")))
		}
		add(path+"/variants", "all variants must have the same type; these mix %s", strings.Join(parts, " and "))
	}
	if d := f.DefaultVariant; d != nil {
		if _, ok := f.Variants[*d]; !ok {
			add(path+"/defaultVariant", "%q is not one of the variants (%s)", *d, strings.Join(slices.Sorted(maps.Keys(f.Variants)), ", "))
		}
	}
	ps, ws := checkMetadata(f.Metadata, path+"/metadata")
	return append(problems, ps...), ws
}

// checkMetadata checks metadata values: problems are values flagd's
// schema refuses; warnings are Shipgate's own keys with a value of the
// wrong type or format, which flagd loads (Shipgate then ignores them).
func checkMetadata(m map[string]any, path string) (problems, warnings []Problem) {
	for _, k := range slices.Sorted(maps.Keys(m)) {
		p := pointer(path, k)
		switch v := m[k].(type) {
		case string:
			switch k {
			case MetaCreated, MetaExpires, MetaFullSince:
				if _, err := ParseTime(v); err != nil {
					warnings = append(warnings, Problem{Path: p, Message: fmt.Sprintf("must be a date (2025-12-31) or an RFC 3339 time, not %q; Shipgate ignores it", v)})
				}
			case MetaStage:
				switch Stage(v) {
				case StageDark, StageTargeted, StageRollout, StageReleased, StageArchived:
				default:
					warnings = append(warnings, Problem{Path: p, Message: fmt.Sprintf("must be dark, targeted, rollout, released or archived, not %q; Shipgate ignores it", v)})
				}
			}
		case bool, float64:
			switch k {
			case MetaOwner, MetaDescription, MetaCreated, MetaExpires, MetaStage, MetaFullSince:
				warnings = append(warnings, Problem{Path: p, Message: "must be a string; Shipgate ignores it"})
			}
		default:
			problems = append(problems, Problem{Path: p, Message: "metadata values are strings, numbers or booleans, not " + describe(v)})
		}
	}
	return problems, warnings
}

// ParseTime reads a date (2025-12-31, the end of that day in UTC) or an
// RFC 3339 time.
func ParseTime(s string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t.UTC(), nil
	}
	t, err := time.Parse(time.DateOnly, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is not a date (2025-12-31) or an RFC 3339 time", s)
	}
	return t.Add(24*time.Hour - time.Second).UTC(), nil
}

// checkName checks a flag key or segment name.
func checkName(name string) error {
	switch {
	case name == "":
		return errors.New("must not be empty")
	case len(name) > maxKeyLen:
		return fmt.Errorf("must be at most %d bytes", maxKeyLen)
	case strings.IndexFunc(name, unicode.IsControl) >= 0:
		return errors.New("must not contain control characters")
	}
	return nil
}

// decodeStrict decodes one JSON value and fails on anything after it.
func decodeStrict(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("there is more after the JSON value")
	}
	return nil
}

// compact returns raw without insignificant whitespace.
func compact(raw json.RawMessage) json.RawMessage {
	var b bytes.Buffer
	if err := json.Compact(&b, raw); err != nil {
		return raw
	}
	return b.Bytes()
}

// dedupe removes repeated problems, keeping the first of each.
func dedupe(ps []Problem) []Problem {
	seen := map[Problem]bool{}
	out := ps[:0]
	for _, p := range ps {
		if !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	slices.SortStableFunc(out, func(a, b Problem) int { return strings.Compare(a.Path, b.Path) })
	return out
}

// Marshal writes flags and segments as a flagd file, which flagd loads.
func Marshal(flags []*Flag, segments []Segment) ([]byte, error) {
	doc := struct {
		Schema     string                     `json:"$schema"`
		Flags      map[string]*Flag           `json:"flags"`
		Evaluators map[string]json.RawMessage `json:"$evaluators,omitempty"`
	}{Schema: "https://flagd.dev/schema/v0/flags.json", Flags: map[string]*Flag{}}
	for _, f := range flags {
		doc.Flags[f.Key] = f
	}
	if len(segments) > 0 {
		doc.Evaluators = map[string]json.RawMessage{}
		for _, s := range segments {
			doc.Evaluators[s.Name] = s.Rule
		}
	}
	return json.MarshalIndent(doc, "", "  ")
}
