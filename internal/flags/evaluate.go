package flags

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"time"
)

// Reason is why an evaluation gave its value, in OpenFeature's words.
type Reason string

// Reasons.
const (
	// ReasonStatic: the flag has no targeting; its default variant.
	ReasonStatic Reason = "STATIC"
	// ReasonTargetingMatch: the targeting chose the variant.
	ReasonTargetingMatch Reason = "TARGETING_MATCH"
	// ReasonDefault: the targeting matched nothing; the default variant,
	// or, for a flag without one, no value: the client's code default.
	ReasonDefault Reason = "DEFAULT"
	// ReasonDisabled: the flag is disabled; the client uses its code default.
	ReasonDisabled Reason = "DISABLED"
	// ReasonError: the evaluation failed; see the error code.
	ReasonError Reason = "ERROR"
)

// ErrorCode is an OpenFeature error code.
type ErrorCode string

// Error codes.
const (
	CodeFlagNotFound   ErrorCode = "FLAG_NOT_FOUND"
	CodeParseError     ErrorCode = "PARSE_ERROR"
	CodeInvalidContext ErrorCode = "INVALID_CONTEXT"
	CodeGeneral        ErrorCode = "GENERAL"
)

// Result is the outcome of evaluating one flag for one context.
type Result struct {
	Key string
	// Variant and Value are set unless the reason is DISABLED or ERROR,
	// or the reason is DEFAULT and the flag has no default variant: then
	// Variant is "" and the client uses its code default.
	Variant string
	Value   any
	Reason  Reason
	// ErrorCode and ErrorDetails are set when the reason is ERROR.
	ErrorCode    ErrorCode
	ErrorDetails string
	// Metadata is the flag's metadata (nil when the flag was not found).
	Metadata map[string]any
}

// compiledFlag is a flag ready to evaluate.
type compiledFlag struct {
	flag *Flag
	rule *node
	// warnings are what looks wrong in the targeting; flagd loads it all
	// the same, and so does Shipgate.
	warnings []Problem
}

// Snapshot is an immutable, compiled set of flags and segments: what the
// server evaluates between two changes. It is safe for concurrent use.
type Snapshot struct {
	flags    map[string]*compiledFlag
	keys     []string
	segments map[string]Segment
	etag     string
	warnings []Problem
}

// Compile validates and compiles flags against segments. It returns a
// *ValidationError naming every problem with its JSON path (under
// /flags/<key>/ and /$evaluators/<name>/) for what flagd refuses to load
// too; what flagd loads and resolves at evaluation time (an unknown
// operator, a $ref to no shared rule, a result that names no variant)
// compiles, and is listed by Warnings.
func Compile(flags []*Flag, segments []Segment) (*Snapshot, error) {
	s := &Snapshot{flags: make(map[string]*compiledFlag, len(flags)), segments: map[string]Segment{}}
	var problems []Problem
	for _, seg := range segments {
		s.segments[seg.Name] = seg
	}
	refs, segProblems, segWarnings := decodeSegments(segments)
	problems = append(problems, segProblems...)
	s.warnings = append(s.warnings, segWarnings...)
	for _, f := range flags {
		cf, ps := compileFlag(f, refs, pointer("/flags", f.Key))
		problems = append(problems, ps...)
		s.warnings = append(s.warnings, cf.warnings...)
		if _, dup := s.flags[f.Key]; dup {
			problems = append(problems, Problem{Path: pointer("/flags", f.Key), Message: "the flag is defined twice"})
		}
		s.flags[f.Key] = cf
	}
	if len(problems) > 0 {
		slices.SortStableFunc(problems, func(a, b Problem) int { return cmp.Compare(a.Path, b.Path) })
		return nil, &ValidationError{Problems: problems}
	}
	s.keys = slices.Sorted(maps.Keys(s.flags))
	s.etag = s.computeETag()
	slices.SortStableFunc(s.warnings, func(a, b Problem) int { return cmp.Compare(a.Path, b.Path) })
	return s, nil
}

// Warnings lists what looks wrong in the targeting rules and shared
// rules, by JSON path; none of it stops the flags from being served.
func (s *Snapshot) Warnings() []Problem { return s.warnings }

// compileFlag validates one flag and compiles its targeting. Problems
// are what flagd refuses too; the rest goes to the flag's warnings.
func compileFlag(f *Flag, refs map[string]any, path string) (*compiledFlag, []Problem) {
	problems, warnings := checkFlag(f, path)
	cf := &compiledFlag{flag: f, warnings: warnings}
	if !hasTargeting(f.Targeting) {
		return cf, problems
	}
	var rule any
	if err := json.Unmarshal(f.Targeting, &rule); err != nil {
		return cf, append(problems, Problem{Path: path + "/targeting", Message: "not valid JSON: " + err.Error()})
	}
	// A $ref that names no shared rule stays: evaluating it fails, as in
	// flagd, where "$ref" is then an unknown operator.
	rule, ps := resolveRefs(rule, refs, path+"/targeting", nil)
	c := &compiler{variants: f.Variants, problems: ps}
	cf.rule = c.compileRule(rule, path+"/targeting")
	cf.warnings = append(cf.warnings, c.problems...)
	return cf, problems
}

// hasTargeting reports whether raw holds a rule: not absent, null or {}.
func hasTargeting(raw json.RawMessage) bool {
	if len(raw) == 0 {
		return false
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err == nil && len(m) == 0 {
		return false
	}
	return string(raw) != "null"
}

// decodeSegments decodes the rules of segments for $ref resolution. It
// returns the problems that make a segment unusable, and the warnings
// about rules that compile.
func decodeSegments(segments []Segment) (map[string]any, []Problem, []Problem) {
	refs := map[string]any{}
	var problems, warnings []Problem
	for _, seg := range segments {
		path := pointer("/$evaluators", seg.Name)
		var rule any
		if err := json.Unmarshal(seg.Rule, &rule); err != nil {
			problems = append(problems, Problem{Path: path, Message: "not valid JSON: " + err.Error()})
			continue
		}
		if _, ok := rule.(map[string]any); !ok {
			problems = append(problems, Problem{Path: path, Message: "a shared rule must be a JSON Logic object, not " + describe(rule)})
			continue
		}
		refs[seg.Name] = rule
	}
	// Check each rule compiles on its own, so that a broken segment is
	// reported where it is defined rather than in every flag using it.
	for _, seg := range segments {
		rule, ok := refs[seg.Name]
		if !ok {
			continue
		}
		path := pointer("/$evaluators", seg.Name)
		resolved, ps := resolveRefs(rule, refs, path, []string{seg.Name})
		c := &compiler{problems: ps}
		c.compileRule(resolved, path)
		warnings = append(warnings, c.problems...)
	}
	return refs, problems, warnings
}

// resolveRefs replaces every {"$ref": "name"} object with the shared rule
// it names, as flagd does when it loads a file. Other keys beside $ref
// are kept, as flagd's textual substitution keeps them.
func resolveRefs(x any, refs map[string]any, path string, stack []string) (any, []Problem) {
	switch v := x.(type) {
	case map[string]any:
		var problems []Problem
		if ref, ok := v["$ref"]; ok {
			name, isString := ref.(string)
			target, known := refs[name]
			switch {
			case !isString:
				return x, []Problem{{Path: pointer(path, "$ref"), Message: "$ref must name a shared rule (an entry of $evaluators), not " + describe(ref)}}
			case !known:
				return x, []Problem{{Path: pointer(path, "$ref"), Message: fmt.Sprintf("no shared rule (segment) named %q, so evaluating it fails with PARSE_ERROR; define it under $evaluators or with `shipgate flags segment set`", name)}}
			case slices.Contains(stack, name):
				return x, []Problem{{Path: pointer(path, "$ref"), Message: fmt.Sprintf("shared rule %q refers to itself through %v", name, stack)}}
			}
			resolved, ps := resolveRefs(target, refs, path, append(stack, name))
			if len(ps) > 0 {
				return x, ps
			}
			out := map[string]any{}
			for k, e := range v {
				if k != "$ref" {
					out[k] = e
				}
			}
			maps.Copy(out, resolved.(map[string]any))
			return out, nil
		}
		out := make(map[string]any, len(v))
		for k, e := range v {
			r, ps := resolveRefs(e, refs, pointer(path, k), stack)
			problems = append(problems, ps...)
			out[k] = r
		}
		return out, problems
	case []any:
		var problems []Problem
		out := make([]any, len(v))
		for i, e := range v {
			r, ps := resolveRefs(e, refs, index(path, i), stack)
			problems = append(problems, ps...)
			out[i] = r
		}
		return out, problems
	}
	return x, nil
}

// computeETag hashes the definitions, so that the ETag changes exactly
// when what a client would be served may have changed.
func (s *Snapshot) computeETag() string {
	h := sha256.New()
	for _, k := range s.keys {
		b, _ := json.Marshal(s.flags[k].flag)
		fmt.Fprintf(h, "%q:%s\n", k, b)
	}
	for _, name := range slices.Sorted(maps.Keys(s.segments)) {
		fmt.Fprintf(h, "$%q:%s\n", name, s.segments[name].Rule)
	}
	return `"` + hex.EncodeToString(h.Sum(nil)[:12]) + `"`
}

// ETag is a strong HTTP entity tag of the whole set of definitions.
func (s *Snapshot) ETag() string { return s.etag }

// Keys returns the flag keys, sorted.
func (s *Snapshot) Keys() []string { return s.keys }

// Flag returns a flag's definition. The caller must not change it.
func (s *Snapshot) Flag(key string) (*Flag, bool) {
	cf, ok := s.flags[key]
	if !ok {
		return nil, false
	}
	return cf.flag, true
}

// Flags returns every flag definition, by key. The caller must not
// change them.
func (s *Snapshot) Flags() []*Flag {
	out := make([]*Flag, len(s.keys))
	for i, k := range s.keys {
		out[i] = s.flags[k].flag
	}
	return out
}

// Segments returns the shared rules, by name.
func (s *Snapshot) Segments() []Segment {
	out := make([]Segment, 0, len(s.segments))
	for _, name := range slices.Sorted(maps.Keys(s.segments)) {
		out = append(out, s.segments[name])
	}
	return out
}

// Evaluate evaluates the flag key for the context ctx (a decoded JSON
// object) at time now. It gives flagd's answer for the same definition
// and context: value, variant, reason and error code.
func (s *Snapshot) Evaluate(key string, ctx map[string]any, now time.Time) Result {
	cf, ok := s.flags[key]
	if !ok {
		return Result{Key: key, Reason: ReasonError, ErrorCode: CodeFlagNotFound, ErrorDetails: fmt.Sprintf("flag %q was not found", key)}
	}
	return cf.evaluate(key, ctx, now)
}

func (cf *compiledFlag) evaluate(key string, ctx map[string]any, now time.Time) Result {
	f := cf.flag
	r := Result{Key: key, Metadata: f.Metadata}
	if f.State == Disabled {
		r.Reason = ReasonDisabled
		return r
	}
	if cf.rule == nil {
		if f.DefaultVariant == nil {
			return cf.defaultResult(r, ReasonDefault)
		}
		return cf.defaultResult(r, ReasonStatic)
	}
	e := env{data: ctx, flagKey: key, now: now.Unix()}
	v := e.eval(cf.rule)
	switch {
	case e.err != nil:
		return errorResult(r, CodeParseError, fmt.Sprintf("targeting of flag %q failed: %v", key, e.err))
	case v.k == kindNull:
		return cf.defaultResult(r, ReasonDefault)
	}
	name, ok := variantName(v)
	if !ok {
		return errorResult(r, CodeParseError, fmt.Sprintf("targeting of flag %q returned a number that has no JSON form", key))
	}
	val, ok := f.Variants[name]
	if !ok {
		return errorResult(r, CodeGeneral, fmt.Sprintf("targeting of flag %q returned %q, which is not one of its variants", key, name))
	}
	r.Variant, r.Value, r.Reason = name, val, ReasonTargetingMatch
	return r
}

// defaultResult serves the default variant; a flag without one serves no
// value, and the client its code default, as flagd does.
func (cf *compiledFlag) defaultResult(r Result, reason Reason) Result {
	r.Reason = reason
	if cf.flag.DefaultVariant == nil {
		return r
	}
	r.Variant = *cf.flag.DefaultVariant
	r.Value = cf.flag.Variants[r.Variant]
	return r
}

func errorResult(r Result, code ErrorCode, details string) Result {
	r.Reason, r.ErrorCode, r.ErrorDetails = ReasonError, code, details
	return r
}
