package flags

import (
	"maps"
	"strconv"
	"strings"
)

// This file holds the JSON Logic library's operators that evaluate a rule
// once per element of an array (map, filter, reduce, all, none, some),
// and its contains_* and set. They follow the library flagd uses
// (diegoholiveira/jsonlogic v3.9.1, lists.go and arrays.go) step by step,
// quirks included, because flagd gives what the library gives:
//
//   - The array is the first argument as written when it is an array (its
//     elements are not evaluated), the result of the operation when it is
//     one, and nothing otherwise ([] from map and filter, 0 from reduce).
//   - Inside the rule, "current" data is the element. But filter, none and
//     some first replace every var the *outer* data has (solveVars), so
//     {"var": "x"} is the context's x when the context has one, and the
//     element's x only when it has not; vars of "" or starting with "."
//     always read the element. all replaces from the element.
//   - reduce reads {"var": "current"} and {"var": "accumulator"}, and
//     converts each result to the type of its initial value.
//   - Where the library panics (an argument that is not an array, a rule
//     that is not an object, comparing two arrays in contains_*), the
//     evaluation fails, which flagd reports as PARSE_ERROR.
//
// The rules are compiled when they are evaluated, since what they are
// depends on the data; these operators are rare enough for that.

// scope returns an evaluation whose data is x.
func (e *env) scope(x any) *env {
	return &env{flagKey: e.flagKey, now: e.now, scoped: true, root: x}
}

// current is the data the library sees at this point: the context with
// "$flagd", or the element being iterated.
func (e *env) current() any {
	if e.scoped {
		return e.root
	}
	return e.wholeContext().obj
}

// evalIn evaluates x as the library's parseValues does, on data: an
// object with one key is an operation, arrays are evaluated element by
// element, anything else is itself.
func (e *env) evalIn(x any, data any) any {
	c := &compiler{}
	n := c.compileValue(x, "")
	return e.evalNode(&n, data)
}

func (e *env) evalNode(n *node, data any) any {
	s := e.scope(data)
	v := s.eval(n)
	if s.err != nil && e.err == nil {
		e.err = s.err
	}
	return v.toAny()
}

// applyIn is the library's apply: x must be an object.
func (e *env) applyIn(op string, x any, data any) (any, bool) {
	if _, ok := x.(map[string]any); !ok {
		e.fail("%s: the rule must be an object, not %s", op, describe(x))
		return nil, false
	}
	return e.evalIn(x, data), e.err == nil
}

// solveVars is the library's solveVars: every var that data has is
// replaced by its value.
func (e *env) solveVars(x any, data any) any {
	switch v := x.(type) {
	case map[string]any:
		logic := make(map[string]any, len(v))
		for key, arg := range v {
			if key != "var" {
				logic[key] = e.solveVars(arg, data)
				continue
			}
			if s, ok := arg.(string); ok && (s == "" || strings.HasPrefix(s, ".")) {
				logic[key] = arg
				continue
			}
			if got := e.evalIn(map[string]any{"var": arg}, data); got != nil {
				return got
			}
			logic[key] = arg
		}
		return logic
	case []any:
		logic := make([]any, len(v))
		for i, arg := range v {
			logic[i] = e.solveVars(arg, data)
		}
		return logic
	}
	return x
}

// subject is the library's extractSubject.
func (e *env) subject(first any, data any) any {
	switch first.(type) {
	case []any:
		return first
	case map[string]any:
		return e.evalIn(first, data)
	}
	return nil
}

func truthy(x any) bool { return fromAny(x).truthy() }

// iterate evaluates map, filter, reduce, all, none or some.
func (e *env) iterate(n *node) value {
	op := n.k.s
	args, ok := n.raw.([]any)
	if !ok {
		return e.fail("%s takes an array of arguments, not %s", op, describe(n.raw))
	}
	data := e.current()
	var out any
	switch op {
	case "map", "filter":
		out = e.mapFilter(op, args, data)
	case "reduce":
		out = e.reduce(args, data)
	default:
		out = e.quantify(op, args, data)
	}
	if e.err != nil {
		return nullValue
	}
	return fromAny(out)
}

func (e *env) mapFilter(op string, args []any, data any) any {
	if len(args) < 2 {
		return []any{}
	}
	subject := e.subject(args[0], data)
	if e.err != nil || subject == nil {
		return []any{}
	}
	items, ok := subject.([]any)
	if !ok {
		return e.fail("%s: %s is not an array", op, describe(subject))
	}
	logic := args[1]
	if op == "filter" {
		logic = e.solveVars(logic, data)
	}
	c := &compiler{}
	rule := c.compileValue(logic, "")
	out := make([]any, 0, len(items))
	for _, item := range items {
		v := e.evalNode(&rule, item)
		if e.err != nil {
			return nil
		}
		switch {
		case op == "map":
			out = append(out, v)
		case truthy(v):
			out = append(out, item)
		}
	}
	return out
}

func (e *env) reduce(args []any, data any) any {
	if len(args) < 3 {
		return 0.0
	}
	initial := args[2]
	if _, ok := initial.(map[string]any); ok {
		initial = e.evalIn(initial, data)
		if e.err != nil {
			return nil
		}
	}
	var kind string
	switch v := initial.(type) {
	case bool:
		kind = "bool"
	case float64:
		kind = "number"
	case string:
		kind = "string"
	default:
		return e.fail("reduce: the initial value must be a boolean, a number or a string, not %s", describe(v))
	}
	ctx := map[string]any{"current": 0.0, "accumulator": initial, "valueType": kind}
	subject := e.subject(args[0], data)
	if e.err != nil {
		return nil
	}
	if subject == nil {
		return 0.0
	}
	items, ok := subject.([]any)
	if !ok {
		return e.fail("reduce: %s is not an array", describe(subject))
	}
	for _, item := range items {
		if item == nil {
			continue
		}
		ctx["current"] = item
		v, ok := e.applyIn("reduce", args[1], maps.Clone(ctx))
		if !ok {
			return nil
		}
		switch kind {
		case "bool":
			ctx["accumulator"] = truthy(v)
		case "number":
			switch x := v.(type) {
			case float64:
				ctx["accumulator"] = x
			case string:
				f, _ := strconv.ParseFloat(x, 64)
				ctx["accumulator"] = f
			default:
				return e.fail("reduce: %s is not a number", describe(v))
			}
		default:
			switch x := v.(type) {
			case string:
				ctx["accumulator"] = x
			case float64:
				ctx["accumulator"] = strconv.FormatFloat(x, 'f', -1, 64)
			case nil:
				ctx["accumulator"] = ""
			default:
				return e.fail("reduce: %s is not a string", describe(v))
			}
		}
	}
	return ctx["accumulator"]
}

// quantify evaluates all, none and some.
func (e *env) quantify(op string, args []any, data any) any {
	if len(args) == 0 {
		return e.fail("%s takes an array and a rule", op)
	}
	subject := e.subject(args[0], data)
	if e.err != nil {
		return nil
	}
	if !truthy(subject) {
		return op == "none"
	}
	if len(args) < 2 {
		return e.fail("%s takes an array and a rule", op)
	}
	var logic any
	if op != "all" {
		logic = e.solveVars(args[1], data)
		if e.err != nil {
			return nil
		}
	}
	items, ok := subject.([]any)
	if !ok {
		return e.fail("%s: %s is not an array", op, describe(subject))
	}
	for _, item := range items {
		var cond any
		switch op {
		case "all":
			cond = e.solveVars(args[1], item)
		case "some":
			cond = e.solveVars(logic, item)
		default:
			cond = logic
		}
		if e.err != nil {
			return nil
		}
		v, ok := e.applyIn(op, cond, item)
		if !ok {
			return nil
		}
		switch t := truthy(v); {
		case op == "all" && !t:
			return false
		case op == "none" && t:
			return false
		case op == "some" && t:
			return true
		}
	}
	return op != "some"
}

// contains evaluates contains_all, contains_any and contains_none: whether
// the second array's elements are all, any or none in the first. What is
// not two arrays is false (true for contains_none).
func (e *env) contains(op string, v []value, isList bool) value {
	malformed := boolValue(op == "contains_none")
	if !isList || len(v) != 2 || v[0].k != kindArray || v[1].k != kindArray {
		return malformed
	}
	search, want := v[0].arr, v[1].arr
	if op == "contains_all" && len(want) == 0 {
		return trueValue
	}
	for _, w := range want {
		found, ok := e.containsElement(search, fromAny(w))
		if !ok {
			return nullValue
		}
		switch op {
		case "contains_all":
			if !found {
				return falseValue
			}
		case "contains_any":
			if found {
				return trueValue
			}
		default:
			if found {
				return falseValue
			}
		}
	}
	return boolValue(op != "contains_any")
}

// containsElement is the library's: Go's == on the two values, which
// panics on two arrays or two objects.
func (e *env) containsElement(search []any, w value) (found, ok bool) {
	for _, x := range search {
		a := fromAny(x)
		if a.k != w.k {
			continue
		}
		switch a.k {
		case kindArray, kindObject:
			e.fail("contains: %s cannot be compared with %s", describeValue(a), describeValue(w))
			return false, false
		case kindNull:
			return true, true
		case kindBool:
			if a.b == w.b {
				return true, true
			}
		case kindNumber:
			if a.n == w.n {
				return true, true
			}
		case kindString:
			if a.s == w.s {
				return true, true
			}
		}
	}
	return false, true
}

// set is the library's set: [object, key, value] gives a copy of object
// with key set to value (evaluated once more, as the library does).
func (e *env) set(v []value, single value, isList bool) value {
	if !isList {
		return e.fail("set takes an array of arguments, not %s", describeValue(single))
	}
	switch len(v) {
	case 0:
		return nullValue
	case 1, 2:
		return v[0]
	}
	if v[0].k != kindObject {
		return v[0]
	}
	if v[1].k != kindString {
		return e.fail("set: the key must be a string, not %s", describeValue(v[1]))
	}
	obj := deepCopy(v[0].obj).(map[string]any)
	obj[v[1].s] = e.evalIn(v[2].toAny(), e.current())
	if e.err != nil {
		return nullValue
	}
	return value{k: kindObject, obj: obj}
}

func deepCopy(x any) any {
	switch v := x.(type) {
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, y := range v {
			out[k] = deepCopy(y)
		}
		return out
	case []any:
		out := make([]any, len(v))
		for i, y := range v {
			out[i] = deepCopy(y)
		}
		return out
	}
	return x
}
