package flags

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
)

// This file compiles targeting rules, once, when a flag is loaded, into a
// tree of nodes that eval.go walks. The semantics are those of the JSON
// Logic library flagd uses (github.com/diegoholiveira/jsonlogic/v3) with
// flagd's operators, quirks included, so that a rule gives the same
// variant here as in flagd (core v0.16, jsonlogic v3.9). A rule flagd
// loads is never refused: what looks wrong (an unknown operator, a result
// that names no variant, a comparison with one operand) is reported as a
// warning with the JSON path of the problem, and evaluates as in flagd:
// often to an error or to the default variant.

// opcode is what a node does.
type opcode uint8

const (
	opConst opcode = iota
	opVar
	opVarDynamic
	opIf
	opEq
	opNe
	opStrictEq
	opStrictNe
	opNot
	opNotNot
	opAnd
	opOr
	opLt
	opLe
	opGt
	opGe
	opIn
	opCat
	opSubstr
	opAdd
	opSub
	opMul
	opDiv
	opMod
	opMin
	opMax
	opAbs
	opMerge
	opMissing
	opMissingSome
	opStartsWith
	opEndsWith
	opSemVer
	opFractional
	// opArray builds an array whose elements hold operations: the JSON
	// Logic library evaluates operations inside nested arrays.
	opArray
	// opIter is one of the library's operators that evaluate a rule once
	// per element of an array (map, filter, reduce, all, none, some). It
	// keeps its argument raw, as the library does: k.s is the operator and
	// raw its argument (iter.go).
	opIter
	// opContains is contains_all, contains_any or contains_none (k.s).
	opContains
	// opSet is the library's set: a copy of an object with one property set.
	opSet
	// opFail is an operation the library does not know: evaluating it
	// fails (flagd's PARSE_ERROR); k.s says why.
	opFail
)

// operators maps JSON Logic operator names to opcodes.
var operators = map[string]opcode{
	"var": opVar, "if": opIf, "?:": opIf,
	"==": opEq, "!=": opNe, "===": opStrictEq, "!==": opStrictNe,
	"!": opNot, "!!": opNotNot, "and": opAnd, "or": opOr,
	"<": opLt, "<=": opLe, ">": opGt, ">=": opGe,
	"in": opIn, "cat": opCat, "substr": opSubstr,
	"+": opAdd, "-": opSub, "*": opMul, "/": opDiv, "%": opMod,
	"min": opMin, "max": opMax, "abs": opAbs, "merge": opMerge,
	"missing": opMissing, "missing_some": opMissingSome,
	"starts_with": opStartsWith, "ends_with": opEndsWith,
	"sem_ver": opSemVer, "fractional": opFractional,
	"map": opIter, "filter": opIter, "reduce": opIter,
	"all": opIter, "none": opIter, "some": opIter,
	"contains_all": opContains, "contains_any": opContains, "contains_none": opContains,
	"set": opSet,
}

// unsupported are operator names that look like JSON Logic but that
// flagd does not evaluate: a rule using one loads with this warning, and
// evaluating it fails with PARSE_ERROR, as in flagd.
var unsupported = map[string]string{
	"log":                  "has side effects (flagd does not have it either)",
	"fractionalEvaluation": "is flagd's removed operator; use fractional (https://flagd.dev/concepts/#migrating-from-legacy-fractionalevaluation)",
}

// node is one compiled expression.
type node struct {
	op opcode
	// list is true when the operator's argument was a JSON array: args
	// then holds one node per element. Otherwise args holds one node, an
	// expression or a constant, whose value is the argument as a whole.
	list bool
	args []node
	// k is the value of an opConst.
	k value
	// path is the split path of a static opVar, without empty parts.
	path []string
	// whole is set on an opVar of "" (the whole context).
	whole bool
	// def is the default of a static opVar: [path, default].
	def *node
	// raw is the argument of an opIter, as written.
	raw any
	// frac is the precompiled distribution of an opFractional whose
	// distributions are constant.
	frac *distribution
}

// compiler compiles one rule and collects its warnings.
type compiler struct {
	// problems are warnings: the rule compiles whatever they say.
	problems []Problem
	// variants are the flag's variant names, to check literal results.
	variants map[string]any
	// operand counts the operations other than if being compiled around
	// the current node: an if there gives an operand, not a result.
	operand int
}

func (c *compiler) problem(path, format string, args ...any) {
	c.problems = append(c.problems, Problem{Path: path, Message: fmt.Sprintf(format, args...)})
}

// compileRule compiles a top-level targeting rule, an object.
func (c *compiler) compileRule(rule any, path string) *node {
	if _, ok := rule.(map[string]any); !ok {
		c.problem(path, "targeting should be a JSON Logic object such as {\"if\": [...]}, not %s; flagd serves it as the result", describe(rule))
	}
	n := c.compileValue(rule, path)
	c.checkResult(&n, rule, path)
	return &n
}

// compileValue compiles a value in argument position: an object with one
// key is an operation, anything else is a constant.
func (c *compiler) compileValue(x any, path string) node {
	switch v := x.(type) {
	case map[string]any:
		switch len(v) {
		case 0:
			return node{op: opConst, k: value{k: kindObject, obj: map[string]any{}}}
		case 1:
			for name, arg := range v {
				return c.compileOp(name, arg, pointer(path, name))
			}
		}
		keys := slices.Sorted(maps.Keys(v))
		c.problem(path, "an operation is an object with exactly one key, the operator; this one has %d (%s), so it is a plain object", len(v), strings.Join(keys, ", "))
		return node{op: opConst, k: value{k: kindObject, obj: v}}
	case []any:
		if !hasOperation(v) {
			return node{op: opConst, k: value{k: kindArray, arr: v}}
		}
		n := node{op: opArray, list: true, args: make([]node, len(v))}
		for i, e := range v {
			n.args[i] = c.compileValue(e, index(path, i))
		}
		return n
	}
	return node{op: opConst, k: fromAny(x)}
}

// hasOperation reports whether an array holds an operation, at any depth.
func hasOperation(arr []any) bool {
	for _, e := range arr {
		switch v := e.(type) {
		case map[string]any:
			if len(v) == 1 {
				return true
			}
		case []any:
			if hasOperation(v) {
				return true
			}
		}
	}
	return false
}

// compileArgs compiles an operator's argument: a JSON array gives one node
// per element, anything else one node.
func (c *compiler) compileArgs(n *node, arg any, path string) {
	if list, ok := arg.([]any); ok {
		n.list = true
		n.args = make([]node, len(list))
		for i, e := range list {
			n.args[i] = c.compileValue(e, index(path, i))
		}
		return
	}
	n.args = []node{c.compileValue(arg, path)}
}

// needList reports a problem when an operator that only works on an
// array of at least min arguments is given something that can never be one.
func (c *compiler) needList(n *node, name string, minArgs int, path string) {
	if !n.list {
		if n.args[0].op == opConst {
			c.problem(path, "%s takes an array of arguments, not %s", name, describeValue(n.args[0].k))
		}
		return
	}
	if len(n.args) < minArgs {
		c.problem(path, "%s takes at least %d argument%s, got %d", name, minArgs, plural(minArgs), len(n.args))
	}
}

func (c *compiler) compileOp(name string, arg any, path string) node {
	op, ok := operators[name]
	if !ok {
		var msg string
		if name == "$ref" {
			// resolveRefs has warned: the shared rule does not exist.
			return node{op: opFail, k: stringValue(fmt.Sprintf("$ref %s names no shared rule", describe(arg)))}
		}
		if why, known := unsupported[name]; known {
			msg = fmt.Sprintf("operator %q is not evaluated by flagd either: it %s", name, why)
		} else {
			msg = fmt.Sprintf("unknown operator %q; flagd's JSON Logic has var, if, ==, !=, ===, !==, !, !!, and, or, <, <=, >, >=, in, cat, substr, +, -, *, /, %%, min, max, merge, missing, missing_some, map, filter, reduce, all, none, some, contains_all, contains_any, contains_none, set, starts_with, ends_with, sem_ver and fractional", name)
		}
		c.problem(path, "%s; evaluating it fails with PARSE_ERROR", msg)
		return node{op: opFail, k: stringValue(msg)}
	}
	if op == opIter {
		return node{op: opIter, k: stringValue(name), raw: arg}
	}
	n := node{op: op, k: stringValue(name)}
	if op != opIf {
		c.operand++
	}
	c.compileArgs(&n, arg, path)
	if op != opIf {
		c.operand--
	}
	switch op {
	case opVar:
		c.compileVar(&n, path)
	case opIf, opAnd, opOr:
		if !n.list {
			c.problem(path, "%s takes an array of arguments, not %s", name, describe(arg))
		}
		if op == opIf {
			c.checkIfResults(&n, arg, path)
		}
	case opEq, opNe, opLt, opLe, opGt, opGe, opMod:
		c.needList(&n, name, 2, path)
	case opIn, opAbs:
		c.needList(&n, name, 1, path)
	case opSubstr, opMissingSome:
		c.needList(&n, name, 2, path)
	case opSub, opDiv:
		// With no operand these return Go's int 0 in the library, a value
		// no other operation produces; a rule like that is a mistake.
		c.needList(&n, name, 1, path)
	case opMul, opMin, opMax:
		c.needList(&n, name, 0, path)
	case opStartsWith, opEndsWith:
		if n.list && len(n.args) != 2 {
			c.problem(path, "%s takes two arguments, the value and the prefix or suffix, got %d", name, len(n.args))
		} else if !n.list {
			c.problem(path, "%s takes an array of two arguments: [{\"var\": \"email\"}, \"@example.com\"]", name)
		}
	case opSemVer:
		c.compileSemVer(&n, path)
	case opFractional:
		c.compileFractional(&n, arg, path)
	case opCat, opAdd, opMerge, opMissing:
		if !n.list && n.args[0].op == opConst {
			k := n.args[0].k.k
			bad := (op == opCat && k != kindString) || (op == opAdd && k != kindNumber && k != kindString) ||
				(op == opMerge && (k == kindNull || k == kindObject)) || (op == opMissing && k != kindString)
			if bad {
				c.problem(path, "%s cannot take %s; give it an array of arguments", name, describeValue(n.args[0].k))
			}
		}
	}
	return n
}

// compileVar precompiles a var whose path is a constant.
func (c *compiler) compileVar(n *node, path string) {
	var (
		p      value
		def    *node
		static bool
	)
	switch {
	case !n.list && n.args[0].op == opConst:
		p, static = n.args[0].k, true
		if p.k == kindNumber {
			p = stringValue(strconv.FormatFloat(p.n, 'f', -1, 64))
		}
	case n.list && len(n.args) > 0 && n.args[0].op == opConst:
		p, static = n.args[0].k, true
		if p.k != kindString {
			c.problem(index(path, 0), "the path of var must be a string, not %s", describeValue(p))
			return
		}
		if len(n.args) == 2 {
			def = &n.args[1]
		}
	case n.list && len(n.args) == 0:
		n.op, n.list, n.args, n.whole = opVar, false, nil, true
		return
	}
	if !static {
		n.op = opVarDynamic
		return
	}
	switch p.k {
	case kindNull:
		// var null reads nothing from an object: always null.
		*n = node{op: opConst}
		return
	case kindString:
	default:
		c.problem(path, "the path of var must be a string, not %s", describeValue(p))
		return
	}
	if p.s == "" {
		*n = node{op: opVar, whole: true}
		return
	}
	if strings.HasPrefix(p.s, "$flagd.") && p.s != "$flagd.flagKey" && p.s != "$flagd.timestamp" {
		c.problem(path, "%q is not set by flagd: only $flagd.flagKey and $flagd.timestamp are", p.s)
	}
	parts := strings.Split(p.s, ".")
	parts = slices.DeleteFunc(parts, func(s string) bool { return s == "" })
	if len(parts) == 0 {
		// "." and ".." walk nothing: the whole context.
		*n = node{op: opVar, whole: true, def: def}
		return
	}
	*n = node{op: opVar, path: parts, def: def}
}

// checkIfResults checks the literal results of an if: a string that is
// not a variant can only ever be an error.
func (c *compiler) checkIfResults(n *node, arg any, path string) {
	list, _ := arg.([]any)
	for i := 1; i < len(list); i += 2 {
		c.checkResult(&n.args[i], list[i], index(path, i))
	}
	if len(list) > 2 && len(list)%2 == 1 {
		last := len(list) - 1
		c.checkResult(&n.args[last], list[last], index(path, last))
	}
}

// checkResult reports a literal result that names no variant.
func (c *compiler) checkResult(n *node, raw any, path string) {
	if n.op != opConst || c.variants == nil || c.operand > 0 {
		return
	}
	switch raw.(type) {
	case string, bool, float64:
	default:
		return
	}
	name, ok := variantName(n.k)
	if !ok {
		return
	}
	if _, known := c.variants[name]; !known {
		c.problem(path, "%q is not a variant of this flag (variants: %s)", name, strings.Join(slices.Sorted(maps.Keys(c.variants)), ", "))
	}
}

func (c *compiler) compileSemVer(n *node, path string) {
	if !n.list || len(n.args) != 3 {
		c.problem(path, "sem_ver takes three arguments: a version, an operator (=, !=, <, <=, >, >=, ^, ~) and a version")
		return
	}
	if op := n.args[1]; op.op == opConst {
		switch op.k.s {
		case "=", "!=", "<", "<=", ">", ">=", "^", "~":
		default:
			c.problem(index(path, 1), "sem_ver operator must be one of =, !=, <, <=, >, >=, ^ (same major), ~ (same minor), not %s", describeValue(op.k))
		}
	}
	for _, i := range []int{0, 2} {
		if a := n.args[i]; a.op == opConst {
			if _, ok := semverOf(a.k); !ok {
				c.problem(index(path, i), "%s is not a semantic version such as 1.2.3", describeValue(a.k))
			}
		}
	}
}

// compileFractional precomputes the distribution of a fractional
// operation whose distributions are constants, and warns about what flagd
// would read as no distribution at all (the operation then gives null,
// and the flag its default).
func (c *compiler) compileFractional(n *node, arg any, path string) {
	list, ok := arg.([]any)
	if !ok {
		c.problem(path, "fractional takes an array: an optional bucketing expression, then [variant, weight] distributions")
		return
	}
	dists, offset := list, 0
	if len(list) > 0 {
		if _, isArray := list[0].([]any); !isArray {
			dists, offset = list[1:], 1
		}
	}
	if len(dists) == 0 {
		c.problem(path, "fractional needs at least one [variant, weight] distribution")
		return
	}
	vals := make([]value, 0, len(dists))
	for i, d := range dists {
		p := index(path, i+offset)
		pair, isArray := d.([]any)
		if !isArray || len(pair) == 0 {
			c.problem(p, "each distribution is [variant, weight], like [\"on\", 25]; got %s, so the operation gives null", describe(d))
			return
		}
		if hasOperation(pair) {
			// Evaluated at each evaluation.
			return
		}
		if name, isString := pair[0].(string); isString && c.variants != nil {
			if _, known := c.variants[name]; !known {
				c.problem(index(p, 0), "%q is not a variant of this flag (variants: %s)", name, strings.Join(slices.Sorted(maps.Keys(c.variants)), ", "))
			}
		}
		if len(pair) >= 2 {
			if w, isNumber := pair[1].(float64); isNumber && w != math.Trunc(w) {
				c.problem(index(p, 1), "the weight must be a whole number; flagd gives null for %v", w)
			}
		}
		vals = append(vals, value{k: kindArray, arr: pair})
	}
	d, ok := parseDistributions(vals)
	if !ok {
		c.problem(path, "flagd reads these distributions as invalid, so the operation gives null")
		return
	}
	if d.total == 0 {
		c.problem(path, "the weights add up to 0, so the operation gives null")
	}
	n.frac = &d
}

// describe names the JSON type of a decoded value for error messages.
func describe(x any) string {
	switch v := x.(type) {
	case nil:
		return "null"
	case bool:
		return strconv.FormatBool(v)
	case float64:
		return "the number " + strconv.FormatFloat(v, 'g', -1, 64)
	case string:
		return strconv.Quote(v)
	case []any:
		return "an array"
	case map[string]any:
		return "an object"
	}
	return fmt.Sprintf("%T", x)
}

func describeValue(v value) string { return describe(v.toAny()) }

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}
