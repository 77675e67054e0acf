package flags

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// This file builds the JSON Logic of everyday flags, so that nobody has
// to write it by hand: users by targeting key, attribute rules, segments
// (shared rules), and a percentage of everyone else. Such a Plan is
// written as one flagd rule:
//
//	{"if": [users, "on", {"$ref": "internal"}, "on", rule, "on",
//	        {"fractional": [["on", 5], ["off", 95]]}]}
//
// and read back from it, so that `rollout 25%` keeps the users and
// segments set before.

// Plan is who gets a flag's "on" variant.
type Plan struct {
	// Users are targeting keys that get the flag.
	Users []string `json:"users,omitempty"`
	// Segments are shared rules ($evaluators) whose users get the flag.
	Segments []string `json:"segments,omitempty"`
	// Rules are attribute rules; a user matching any gets the flag.
	Rules []Rule `json:"rules,omitempty"`
	// Percent of the other users get the flag, 0 to 100.
	Percent int `json:"percent"`
}

// Rule is one attribute condition, such as "email ends_with @acme.com".
type Rule struct {
	// Attribute is a context attribute, such as "email" or "plan".
	Attribute string `json:"attribute"`
	// Op is one of =, !=, in, not_in, starts_with, ends_with, <, <=, >, >=.
	// An ordering of versions (2.1.0) compares them as semantic versions.
	Op string `json:"op"`
	// Values are the operands; several only for in and not_in.
	Values []string `json:"values"`
}

// String writes the rule as ParseRule reads it.
func (r Rule) String() string {
	return r.Attribute + " " + r.Op + " " + strings.Join(r.Values, ",")
}

var (
	ruleOps       = []string{"not_in", "starts_with", "ends_with", "in", "!=", "<=", ">=", "=", "<", ">"}
	attributeName = regexp.MustCompile(`^[A-Za-z_$][A-Za-z0-9_.$-]*$`)
	versionLike   = regexp.MustCompile(`^v?\d+\.\d+(\.\d+)?([-+].*)?$`)
)

// ParseRule reads "ATTRIBUTE OP VALUE[,VALUE...]", for example
// "email ends_with @acme.com", "country in CA,US" or "appVersion >= 2.1.0".
func ParseRule(s string) (Rule, error) {
	fields := strings.Fields(s)
	if len(fields) < 3 {
		return Rule{}, fmt.Errorf("rule %q: want ATTRIBUTE OP VALUE, such as \"email ends_with @acme.com\" or \"country in CA,US\"", s)
	}
	r := Rule{Attribute: fields[0], Op: fields[1]}
	rest := strings.Join(fields[2:], " ")
	if r.Op == "in" || r.Op == "not_in" {
		for _, v := range strings.Split(rest, ",") {
			if v = strings.TrimSpace(v); v != "" {
				r.Values = append(r.Values, v)
			}
		}
	} else {
		r.Values = []string{rest}
	}
	return r, r.check()
}

func (r Rule) check() error {
	if !attributeName.MatchString(r.Attribute) {
		return fmt.Errorf("rule %q: %q is not an attribute name", r, r.Attribute)
	}
	if !slices.Contains(ruleOps, r.Op) {
		return fmt.Errorf("rule %q: unknown operator %q; use one of %s", r, r.Op, strings.Join(ruleOps, " "))
	}
	if len(r.Values) == 0 || slices.Contains(r.Values, "") {
		return fmt.Errorf("rule %q: give a value", r)
	}
	if len(r.Values) > 1 && r.Op != "in" && r.Op != "not_in" {
		return fmt.Errorf("rule %q: %s takes one value", r, r.Op)
	}
	switch r.Op {
	case "<", "<=", ">", ">=":
		v := r.Values[0]
		if _, err := strconv.ParseFloat(v, 64); err != nil && !versionLike.MatchString(v) {
			return fmt.Errorf("rule %q: %s compares numbers or versions, and %q is neither", r, r.Op, v)
		}
	}
	return nil
}

// logic returns the rule's JSON Logic.
func (r Rule) logic() any {
	attr := map[string]any{"var": r.Attribute}
	v := r.Values[0]
	switch r.Op {
	case "=":
		return map[string]any{"==": []any{attr, v}}
	case "!=":
		return map[string]any{"!=": []any{attr, v}}
	case "in", "not_in":
		list := make([]any, len(r.Values))
		for i, x := range r.Values {
			list[i] = x
		}
		in := map[string]any{"in": []any{attr, list}}
		if r.Op == "not_in" {
			return map[string]any{"!": in}
		}
		return in
	case "starts_with", "ends_with":
		return map[string]any{r.Op: []any{attr, v}}
	}
	if n, err := strconv.ParseFloat(v, 64); err == nil {
		return map[string]any{r.Op: []any{attr, n}}
	}
	return map[string]any{"sem_ver": []any{attr, r.Op, strings.TrimPrefix(v, "v")}}
}

// HasConditions reports whether the plan targets anyone by name, segment
// or attribute.
func (p Plan) HasConditions() bool {
	return len(p.Users) > 0 || len(p.Segments) > 0 || len(p.Rules) > 0
}

// Targeting returns the plan's JSON Logic, nil when it serves the
// default to everyone.
func (p Plan) Targeting(on, off string) (json.RawMessage, error) {
	if p.Percent < 0 || p.Percent > 100 {
		return nil, fmt.Errorf("percentage %d: want 0 to 100", p.Percent)
	}
	for _, r := range p.Rules {
		if err := r.check(); err != nil {
			return nil, err
		}
	}
	var rest any = off
	if p.Percent > 0 {
		rest = map[string]any{"fractional": []any{[]any{on, float64(p.Percent)}, []any{off, float64(100 - p.Percent)}}}
	}
	if !p.HasConditions() {
		if p.Percent == 0 {
			return nil, nil
		}
		return marshalCompact(rest)
	}
	var branches []any
	if len(p.Users) > 0 {
		users := make([]any, len(p.Users))
		for i, u := range p.Users {
			users[i] = u
		}
		branches = append(branches, map[string]any{"in": []any{map[string]any{"var": "targetingKey"}, users}}, on)
	}
	for _, s := range p.Segments {
		branches = append(branches, map[string]any{"$ref": s}, on)
	}
	for _, r := range p.Rules {
		branches = append(branches, r.logic(), on)
	}
	return marshalCompact(map[string]any{"if": append(branches, rest)})
}

func marshalCompact(v any) (json.RawMessage, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSpace(b.Bytes()), nil
}

// PlanOf reads the plan back from a flag written by Plan.Targeting. It
// returns false for hand-written targeting, which friendly edits must
// not overwrite silently.
func PlanOf(f *Flag) (Plan, bool) {
	on, off, ok := OnOff(f)
	if !ok {
		return Plan{}, false
	}
	if !hasTargeting(f.Targeting) {
		return Plan{}, true
	}
	var rule any
	if err := json.Unmarshal(f.Targeting, &rule); err != nil {
		return Plan{}, false
	}
	var p Plan
	m, _ := rule.(map[string]any)
	if branches, ok := m["if"].([]any); ok && len(m) == 1 && len(branches)%2 == 1 {
		for i := 0; i+1 < len(branches); i += 2 {
			if branches[i+1] != on {
				return Plan{}, false
			}
			if !p.readCondition(branches[i]) {
				return Plan{}, false
			}
		}
		rule = branches[len(branches)-1]
		if rule == off {
			rule = nil
		}
	}
	if rule != nil {
		fm, _ := rule.(map[string]any)
		dist, _ := fm["fractional"].([]any)
		if len(dist) != 2 {
			return Plan{}, false
		}
		first, _ := dist[0].([]any)
		if len(first) != 2 || first[0] != on {
			return Plan{}, false
		}
		w, _ := first[1].(float64)
		p.Percent = int(w)
	}
	// Anything the reading above let through that Targeting would not
	// write the same way is hand-written after all.
	again, err := p.Targeting(on, off)
	if err != nil || !jsonEqual(again, f.Targeting) {
		return Plan{}, false
	}
	return p, true
}

func (p *Plan) readCondition(c any) bool {
	m, ok := c.(map[string]any)
	if !ok || len(m) != 1 {
		return false
	}
	if ref, ok := m["$ref"].(string); ok {
		p.Segments = append(p.Segments, ref)
		return true
	}
	if in, ok := m["in"].([]any); ok && len(in) == 2 {
		if v, _ := in[0].(map[string]any); v["var"] == "targetingKey" && len(p.Users) == 0 && len(p.Rules) == 0 && len(p.Segments) == 0 {
			list, _ := in[1].([]any)
			for _, u := range list {
				s, ok := u.(string)
				if !ok {
					return false
				}
				p.Users = append(p.Users, s)
			}
			return true
		}
	}
	r, ok := ruleOf(m)
	if ok {
		p.Rules = append(p.Rules, r)
	}
	return ok
}

// ruleOf reads back the JSON Logic of Rule.logic.
func ruleOf(m map[string]any) (Rule, bool) {
	for op, arg := range m {
		if op == "!" {
			inner, _ := arg.(map[string]any)
			r, ok := ruleOf(inner)
			if !ok || r.Op != "in" {
				return Rule{}, false
			}
			r.Op = "not_in"
			return r, true
		}
		args, _ := arg.([]any)
		if len(args) < 2 {
			return Rule{}, false
		}
		v, _ := args[0].(map[string]any)
		attr, _ := v["var"].(string)
		if attr == "" {
			return Rule{}, false
		}
		r := Rule{Attribute: attr, Op: op}
		switch op {
		case "==":
			r.Op = "="
		case "sem_ver":
			if len(args) != 3 {
				return Rule{}, false
			}
			r.Op, _ = args[1].(string)
			args = []any{args[0], args[2]}
		}
		switch x := args[1].(type) {
		case string:
			r.Values = []string{x}
		case float64:
			r.Values = []string{strconv.FormatFloat(x, 'f', -1, 64)}
		case []any:
			for _, e := range x {
				s, ok := e.(string)
				if !ok {
					return Rule{}, false
				}
				r.Values = append(r.Values, s)
			}
		}
		return r, r.check() == nil
	}
	return Rule{}, false
}

func jsonEqual(a, b json.RawMessage) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	ca, _ := json.Marshal(x)
	cb, _ := json.Marshal(y)
	return bytes.Equal(ca, cb)
}

// OnOff returns the names of a flag's "on" and "off" variants: for a
// boolean flag the variants whose values are true and false (preferring
// ones named on and off); otherwise variants named on and off.
func OnOff(f *Flag) (on, off string, ok bool) {
	if v, isBool := f.Variants["on"].(bool); isBool && v {
		on = "on"
	}
	if v, isBool := f.Variants["off"].(bool); isBool && !v {
		off = "off"
	}
	for _, name := range sortedKeys(f.Variants) {
		if b, isBool := f.Variants[name].(bool); isBool {
			if b && on == "" {
				on = name
			}
			if !b && off == "" {
				off = name
			}
		}
	}
	if on == "" || off == "" {
		_, hasOn := f.Variants["on"]
		_, hasOff := f.Variants["off"]
		if hasOn && hasOff {
			return "on", "off", true
		}
		return "", "", false
	}
	return on, off, true
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// NewBooleanFlag returns a new flag with variants on (true) and off
// (false), serving off to everyone: shipped dark.
func NewBooleanFlag(key, owner, description string, expires, now time.Time) *Flag {
	off := "off"
	f := &Flag{
		Key:            key,
		State:          Enabled,
		Variants:       map[string]any{"on": true, "off": false},
		DefaultVariant: &off,
	}
	f.SetMeta(MetaOwner, owner)
	f.SetMeta(MetaDescription, description)
	f.SetMeta(MetaCreated, now.UTC().Format(time.RFC3339))
	if !expires.IsZero() {
		f.SetMeta(MetaExpires, expires.UTC().Format(time.RFC3339))
	}
	f.SetMeta(MetaStage, string(StageDark))
	return f
}

// ApplyPlan writes plan into f's targeting, serving f's default variant
// as "off", and moves its lifecycle stage along: dark, targeted, rollout
// or released (noting since when it is at 100%).
func ApplyPlan(f *Flag, p Plan, now time.Time) error {
	on, off, ok := OnOff(f)
	if !ok {
		return invalidf(pointer("/flags", f.Key)+"/variants", "a percentage or targeting edit needs a boolean flag, or variants named on and off; edit this flag's targeting as JSON (shipgate flags import)")
	}
	t, err := p.Targeting(on, off)
	if err != nil {
		return invalidf(pointer("/flags", f.Key)+"/targeting", "%v", err)
	}
	f.Targeting = t
	if f.DefaultVariant == nil || *f.DefaultVariant != off {
		f.DefaultVariant = &off
	}
	stage := StageDark
	switch {
	case p.Percent == 100:
		stage = StageReleased
	case p.Percent > 0:
		stage = StageRollout
	case p.HasConditions():
		stage = StageTargeted
	}
	if f.Stage() != StageArchived {
		f.SetMeta(MetaStage, string(stage))
	}
	if p.Percent == 100 {
		if f.MetaTime(MetaFullSince).IsZero() {
			f.SetMeta(MetaFullSince, now.UTC().Format(time.RFC3339))
		}
	} else {
		f.SetMeta(MetaFullSince, "")
	}
	return nil
}

// RulesLogic returns the JSON Logic of a segment made of attribute rules:
// it matches when any rule does.
func RulesLogic(rules []Rule) (json.RawMessage, error) {
	if len(rules) == 0 {
		return nil, fmt.Errorf("give at least one rule")
	}
	logic := make([]any, len(rules))
	for i, r := range rules {
		if err := r.check(); err != nil {
			return nil, err
		}
		logic[i] = r.logic()
	}
	if len(logic) == 1 {
		return marshalCompact(logic[0])
	}
	return marshalCompact(map[string]any{"or": logic})
}
