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
	// ReasonSplit: a percentage split (fractional) chose the variant.
	// flagd says TARGETING_MATCH there; the variant is the same.
	ReasonSplit Reason = "SPLIT"
	// ReasonDefault: the targeting matched nothing; the default variant.
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
	CodeFlagNotFound        ErrorCode = "FLAG_NOT_FOUND"
	CodeParseError          ErrorCode = "PARSE_ERROR"
	CodeTargetingKeyMissing ErrorCode = "TARGETING_KEY_MISSING"
	CodeInvalidContext      ErrorCode = "INVALID_CONTEXT"
	CodeGeneral             ErrorCode = "GENERAL"
)

// Result is the outcome of evaluating one flag for one context.
type Result struct {
	Key string
	// Variant and Value are set unless the reason is DISABLED or ERROR.
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
	// usesTargetingKey is set when the rule reads or buckets by the
	// targeting key.
	usesTargetingKey bool
}

// Snapshot is an immutable, compiled set of flags and segments: what the
// server evaluates between two changes. It is safe for concurrent use.
type Snapshot struct {
	flags    map[string]*compiledFlag
	keys     []string
	segments map[string]Segment
	etag     string
}

// Compile validates and compiles flags against segments. It returns a
// *ValidationError naming every problem with its JSON path (under
// /flags/<key>/ and /$evaluators/<name>/).
func Compile(flags []*Flag, segments []Segment) (*Snapshot, error) {
	s := &Snapshot{flags: make(map[string]*compiledFlag, len(flags)), segments: map[string]Segment{}}
	var problems []Problem
	for _, seg := range segments {
		s.segments[seg.Name] = seg
	}
	refs, segProblems := decodeSegments(segments)
	problems = append(problems, segProblems...)
	for _, f := range flags {
		cf, ps := compileFlag(f, refs, pointer("/flags", f.Key))
		problems = append(problems, ps...)
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
	return s, nil
}

// compileFlag validates one flag and compiles its targeting.
func compileFlag(f *Flag, refs map[string]any, path string) (*compiledFlag, []Problem) {
	problems := checkFlag(f, path)
	cf := &compiledFlag{flag: f}
	if !hasTargeting(f.Targeting) {
		return cf, problems
	}
	var rule any
	if err := json.Unmarshal(f.Targeting, &rule); err != nil {
		return cf, append(problems, Problem{Path: path + "/targeting", Message: "not valid JSON: " + err.Error()})
	}
	rule, ps := resolveRefs(rule, refs, path+"/targeting", nil)
	problems = append(problems, ps...)
	if len(ps) > 0 {
		return cf, problems
	}
	c := &compiler{variants: f.Variants}
	cf.rule = c.compileRule(rule, path+"/targeting")
	cf.usesTargetingKey = c.usesTargetingKey
	return cf, append(problems, c.problems...)
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

// decodeSegments decodes the rules of segments for $ref resolution.
func decodeSegments(segments []Segment) (map[string]any, []Problem) {
	refs := map[string]any{}
	var problems []Problem
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
		problems = append(problems, ps...)
		if len(ps) == 0 {
			c := &compiler{}
			c.compileRule(resolved, path)
			problems = append(problems, c.problems...)
		}
	}
	return refs, problems
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
				return x, []Problem{{Path: pointer(path, "$ref"), Message: fmt.Sprintf("no shared rule (segment) named %q; define it under $evaluators or with `shipgate flags segment set`", name)}}
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
// object) at time now. It gives flagd's variant for the same definition
// and context; where flagd's answer is silently the default because the
// context lacks the targeting key a percentage split needs, it answers
// TARGETING_KEY_MISSING instead, and a disabled flag answers DISABLED.
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
		return cf.defaultResult(r, ReasonStatic)
	}
	e := env{data: ctx, flagKey: key, now: now.Unix()}
	v := e.eval(cf.rule)
	switch {
	case e.err != nil:
		return errorResult(r, CodeParseError, fmt.Sprintf("targeting of flag %q failed: %v", key, e.err))
	case e.keyMissing:
		return errorResult(r, CodeTargetingKeyMissing, fmt.Sprintf("flag %q splits users by targeting key, and the context has no targetingKey string", key))
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
	if v.split && v.k == kindString {
		r.Reason = ReasonSplit
	}
	return r
}

func (cf *compiledFlag) defaultResult(r Result, reason Reason) Result {
	if cf.flag.DefaultVariant == nil {
		// flagd's answer for a flag whose default is left to the code.
		return errorResult(r, CodeFlagNotFound, fmt.Sprintf("flag %q has no default variant: use the code default", r.Key))
	}
	r.Variant = *cf.flag.DefaultVariant
	r.Value = cf.flag.Variants[r.Variant]
	r.Reason = reason
	return r
}

func errorResult(r Result, code ErrorCode, details string) Result {
	r.Reason, r.ErrorCode, r.ErrorDetails = ReasonError, code, details
	return r
}
