package flags

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"golang.org/x/mod/semver"
)

// env is the state of one evaluation of one rule.
type env struct {
	data map[string]any
	// scoped is set while an iterating operator (iter.go) evaluates its
	// rule on one element: vars then read root, which may be any JSON
	// value, and "$flagd" is an ordinary key.
	scoped  bool
	root    any
	flagKey string
	now     int64
	// err is the first evaluation error; once set, results are ignored.
	err error
}

// evalError is a targeting rule failing at evaluation time, where flagd
// reports PARSE_ERROR.
type evalError struct{ msg string }

func (e *evalError) Error() string { return e.msg }

func (e *env) fail(format string, args ...any) value {
	if e.err == nil {
		e.err = &evalError{msg: fmt.Sprintf(format, args...)}
	}
	return nullValue
}

// argv evaluates the argument of n. For an array argument, or an
// expression that yields an array, it returns the elements (in buf when
// they fit) and true; otherwise the single value and false. eval inlines
// the same steps: a buffer passed through the recursive eval would be
// moved to the heap.
func (e *env) argv(n *node, buf []value) ([]value, value, bool) {
	if n.list {
		for i := range n.args {
			buf = append(buf, e.eval(&n.args[i]))
		}
		return buf, nullValue, true
	}
	v := e.eval(&n.args[0])
	if v.k == kindArray {
		return appendValues(buf, v.arr), nullValue, true
	}
	return nil, v, false
}

// appendValues appends the elements of a decoded JSON array to buf.
func appendValues(buf []value, arr []any) []value {
	for _, x := range arr {
		buf = append(buf, fromAny(x))
	}
	return buf
}

// eval evaluates one node. It is a single switch rather than a method per
// node type so that nothing escapes to the heap.
func (e *env) eval(n *node) value {
	switch n.op {
	case opConst:
		return n.k
	case opVar:
		return e.lookup(n)
	case opVarDynamic:
		return e.varDynamic(n)
	case opIf, opAnd, opOr:
		if !n.list {
			// The library asserts an array there, and panics.
			return e.fail("the operation takes an array of arguments")
		}
		switch n.op {
		case opIf:
			return e.evalIf(n)
		case opAnd:
			// JavaScript's &&: the first falsy operand, else the last.
			last := nullValue
			for i := range n.args {
				if last = e.eval(&n.args[i]); !last.truthy() {
					return last
				}
			}
			return last
		default:
			// JavaScript's ||: the first truthy operand, else the last.
			last := nullValue
			for i := range n.args {
				if last = e.eval(&n.args[i]); last.truthy() {
					return last
				}
			}
			return last
		}
	case opFail:
		return e.fail("%s", n.k.s)
	case opIter:
		return e.iterate(n)
	case opArray:
		arr := make([]any, len(n.args))
		for i := range n.args {
			arr[i] = e.eval(&n.args[i]).toAny()
		}
		return value{k: kindArray, arr: arr}
	}
	var (
		buf    [4]value
		vals   = buf[:0]
		single value
		isList = n.list
	)
	if isList {
		for i := range n.args {
			vals = append(vals, e.eval(&n.args[i]))
		}
	} else if single = e.eval(&n.args[0]); single.k == kindArray {
		vals, isList = appendValues(vals, single.arr), true
	}
	switch n.op {
	case opNot, opNotNot:
		var t bool
		if isList && len(vals) > 0 {
			t = vals[0].truthy()
		} else if !isList {
			t = single.truthy()
		}
		if n.op == opNot {
			return boolValue(!t)
		}
		return boolValue(t)
	}
	if e.err != nil {
		return nullValue
	}
	switch n.op {
	case opStrictEq, opStrictNe:
		eq := isList && len(vals) >= 2 && strictEqual(vals[0], vals[1])
		return boolValue(eq == (n.op == opStrictEq))
	case opStartsWith, opEndsWith:
		return stringCompare(n.op, vals, isList)
	case opSemVer:
		if !isList {
			return nullValue
		}
		return semverCompare(vals)
	case opFractional:
		return e.fractional(n, vals, single, isList)
	case opAdd:
		return e.add(vals, single, isList)
	case opMerge:
		return e.merge(vals, single, isList)
	case opMissing:
		if !isList {
			if single.k != kindString {
				return e.fail("missing takes a key or an array of keys, not %s", describeValue(single))
			}
			vals = append(vals, single)
		}
		return e.missing(vals, len(vals))
	case opCat:
		if !isList {
			if single.k == kindString {
				return single
			}
			return e.fail("cat takes an array, not %s", describeValue(single))
		}
		return e.cat(vals)
	case opContains:
		return e.contains(n.k.s, vals, isList)
	case opSet:
		return e.set(vals, single, isList)
	case opAbs:
		if !isList {
			x, ok := single.strictNumber()
			if !ok {
				return e.fail("abs of %s", describeValue(single))
			}
			return numberValue(math.Abs(x))
		}
	}
	if !isList {
		return e.fail("the operation takes an array of arguments, not %s", describeValue(single))
	}
	switch n.op {
	case opEq, opNe:
		// With fewer than two operands the library's == is false.
		eq := len(vals) >= 2 && looseEqual(vals[0], vals[1])
		return boolValue(eq == (n.op == opEq))
	case opLt, opLe, opGt, opGe:
		if len(vals) < 2 {
			return falseValue
		}
		return boolValue(compare(n.op, vals))
	case opIn:
		return e.in(vals)
	case opSubstr:
		return e.substr(vals)
	case opSub, opDiv, opMul, opMod, opMin, opMax, opAbs:
		return e.arith(n.op, vals)
	case opMissingSome:
		return e.missingSome(vals)
	}
	return e.fail("unknown operation %d", n.op)
}

// evalIf is if / ?:, lazy like the library: conditions are evaluated in
// turn, and a result that is an object is applied again as a rule.
func (e *env) evalIf(n *node) value {
	args := n.args
	for i := 0; i+1 < len(args); i += 2 {
		if e.eval(&args[i]).truthy() {
			return e.clause(&args[i+1])
		}
	}
	if len(args)%2 == 1 {
		return e.clause(&args[len(args)-1])
	}
	return nullValue
}

// clause evaluates the result of an if branch. The library applies a
// result that is an object once more, as a rule.
func (e *env) clause(n *node) value {
	v := e.eval(n)
	if v.k != kindObject {
		return v
	}
	return e.applyObject(v.obj)
}

// applyObject applies an object computed at evaluation time as a rule: an
// object with one key is an operation, any other object is itself.
func (e *env) applyObject(obj map[string]any) value {
	if len(obj) != 1 {
		return value{k: kindObject, obj: obj}
	}
	// Warnings do not matter here: what fails, an unknown operator,
	// compiles to a node that fails.
	c := &compiler{}
	n := c.compileValue(obj, "")
	return e.eval(&n)
}

func strictEqual(a, b value) bool {
	if a.k == kindNull || b.k == kindNull {
		return a.k == b.k
	}
	if a.k != b.k {
		return false
	}
	return looseEqual(a, b)
}

func compare(op opcode, v []value) bool {
	a, b := v[0], v[1]
	between := len(v) == 3
	switch op {
	case opLt:
		if between {
			return less(a, b) && less(b, v[2])
		}
		return less(a, b)
	case opLe:
		if between {
			c := v[2]
			return (less(a, b) || looseEqual(a, b)) && (less(b, c) || looseEqual(b, c))
		}
		return less(a, b) || looseEqual(a, b)
	case opGt:
		if between {
			return less(v[2], b) && less(b, a)
		}
		return less(b, a)
	default: // opGe
		if between {
			c := v[2]
			return (less(c, b) || looseEqual(c, b)) && (less(b, a) || looseEqual(b, a))
		}
		return less(b, a) || looseEqual(b, a)
	}
}

// in is membership in an array, or a substring test when the second
// operand is a string.
func (e *env) in(v []value) value {
	if len(v) == 0 {
		return e.fail("in needs a value and a list")
	}
	a := v[0]
	var b value
	if len(v) > 1 {
		b = v[1]
	}
	if b.k == kindString {
		if a.k != kindString {
			return e.fail("in: %s cannot be searched for in the string %q", describeValue(a), b.s)
		}
		return boolValue(strings.Contains(b.s, a.s))
	}
	if b.k != kindArray {
		return falseValue
	}
	for _, x := range b.arr {
		el := fromAny(x)
		if el.k == kindArray {
			if len(el.arr) < 2 {
				return e.fail("in: a range needs two bounds")
			}
			av, ok1 := a.strictNumber()
			lo, ok2 := fromAny(el.arr[0]).strictNumber()
			hi, ok3 := fromAny(el.arr[1]).strictNumber()
			if !ok1 || !ok2 || !ok3 {
				return e.fail("in: a range compares numbers")
			}
			if av >= lo && hi >= av {
				return trueValue
			}
			continue
		}
		if a.k == kindNumber {
			x, ok := el.strictNumber()
			if !ok {
				return e.fail("in: %s is not a number", describeValue(el))
			}
			if x == a.n {
				return trueValue
			}
			continue
		}
		eq, ok := identical(el, a)
		if !ok {
			return e.fail("in: arrays and objects cannot be compared")
		}
		if eq {
			return trueValue
		}
	}
	return falseValue
}

func (e *env) cat(v []value) value {
	switch len(v) {
	case 0:
		return stringValue("")
	case 1:
		s, ok := v[0].str()
		if !ok {
			return e.fail("cat: %s is not a string or a number", describeValue(v[0]))
		}
		return stringValue(s)
	}
	var b strings.Builder
	for _, x := range v {
		s, ok := x.str()
		if !ok {
			return e.fail("cat: %s is not a string or a number", describeValue(x))
		}
		b.WriteString(s)
	}
	return stringValue(strings.TrimSpace(b.String()))
}

func (e *env) substr(v []value) value {
	if len(v) < 2 {
		return e.fail("substr needs a string and a start")
	}
	s, ok := v[0].str()
	if !ok {
		return e.fail("substr of %s", describeValue(v[0]))
	}
	start, ok := v[1].strictNumber()
	if !ok {
		return e.fail("substr: the start must be a number")
	}
	runes := []rune(s)
	from := int(start)
	length := len(runes)
	if from < 0 {
		from = length + from
	}
	if from < 0 || from > length {
		return stringValue(s)
	}
	if len(v) == 3 {
		l, ok := v[2].strictNumber()
		if !ok {
			return e.fail("substr: the length must be a number")
		}
		length = int(l)
	}
	var to int
	if length < 0 {
		length = len(runes) + length
		to = length
	} else {
		to = from + length
	}
	if to > len(runes) {
		to = len(runes)
	}
	if to < from {
		return e.fail("substr: the length reaches before the start")
	}
	return stringValue(string(runes[from:to]))
}

func (e *env) add(v []value, single value, isList bool) value {
	if !isList {
		x, ok := single.strictNumber()
		if !ok {
			return e.fail("+ of %s", describeValue(single))
		}
		return numberValue(x)
	}
	sum := 0.0
	for _, x := range v {
		n, ok := x.strictNumber()
		if !ok {
			return e.fail("+ of %s", describeValue(x))
		}
		sum += n
	}
	if len(v) == 1 {
		n, _ := v[0].strictNumber()
		return numberValue(n)
	}
	return numberValue(sum)
}

func (e *env) arith(op opcode, v []value) value {
	nums := make([]float64, 0, 4)
	for _, x := range v {
		n, ok := x.strictNumber()
		if !ok {
			return e.fail("arithmetic on %s", describeValue(x))
		}
		nums = append(nums, n)
	}
	switch op {
	case opSub:
		if len(nums) == 0 {
			return numberValue(0)
		}
		if len(nums) == 1 {
			return numberValue(-1 * nums[0])
		}
		r := nums[0]
		for _, n := range nums[1:] {
			r -= n
		}
		return numberValue(r)
	case opDiv:
		if len(nums) == 0 {
			return numberValue(0)
		}
		r := nums[0]
		for _, n := range nums[1:] {
			r /= n
		}
		return numberValue(r)
	case opMul:
		r := 1.0
		for _, n := range nums {
			r *= n
		}
		return numberValue(r)
	case opMod:
		if len(nums) < 2 {
			return e.fail("%% needs two operands")
		}
		return numberValue(math.Mod(nums[0], nums[1]))
	case opAbs:
		if len(nums) == 0 {
			return e.fail("abs needs an operand")
		}
		return numberValue(math.Abs(nums[0]))
	case opMin, opMax:
		if len(nums) == 0 {
			return nullValue
		}
		r := nums[0]
		for _, n := range nums[1:] {
			if (op == opMax && n > r) || (op == opMin && r > n) {
				r = n
			}
		}
		return numberValue(r)
	}
	return e.fail("unknown arithmetic")
}

func (e *env) merge(v []value, single value, isList bool) value {
	if !isList {
		switch single.k {
		case kindBool, kindNumber, kindString:
			return value{k: kindArray, arr: []any{single.toAny()}}
		}
		return e.fail("merge of %s", describeValue(single))
	}
	out := make([]any, 0, len(v))
	for _, x := range v {
		if x.k == kindArray {
			out = append(out, x.arr...)
		} else {
			out = append(out, x.toAny())
		}
	}
	return value{k: kindArray, arr: out}
}

// missing returns the keys among v that the context does not have.
func (e *env) missing(v []value, _ int) value {
	var out []any
	for _, key := range v {
		if e.getVar(key, nullValue, false).k == kindNull {
			out = append(out, key.toAny())
		}
	}
	if e.err != nil {
		return nullValue
	}
	if out == nil {
		out = []any{}
	}
	return value{k: kindArray, arr: out}
}

func (e *env) missingSome(v []value) value {
	if len(v) < 2 {
		return e.fail("missing_some needs a count and a list of keys")
	}
	need, ok := v[0].strictNumber()
	if !ok {
		return e.fail("missing_some: the count must be a number")
	}
	if v[1].k != kindArray {
		return e.fail("missing_some: the keys must be an array")
	}
	var missing []any
	found := 0
	for _, x := range v[1].arr {
		key := fromAny(x)
		if e.getVar(key, nullValue, false).k == kindNull {
			missing = append(missing, x)
		} else {
			found++
		}
	}
	if int(need) > found {
		if missing == nil {
			missing = []any{}
		}
		return value{k: kindArray, arr: missing}
	}
	return value{k: kindArray, arr: []any{}}
}

func stringCompare(op opcode, v []value, isList bool) value {
	if !isList || len(v) != 2 || v[0].k != kindString || v[1].k != kindString {
		// flagd answers null on bad input: the default variant.
		return nullValue
	}
	if op == opStartsWith {
		return boolValue(strings.HasPrefix(v[0].s, v[1].s))
	}
	return boolValue(strings.HasSuffix(v[0].s, v[1].s))
}

// semverOf turns a value into a canonical "vX.Y.Z" string as flagd does:
// anything but a string is formatted with %v, a "V" prefix is read as
// "v", and a "v" is prefixed when missing.
func semverOf(v value) (string, bool) {
	var s string
	if v.k == kindString {
		s = v.s
	} else {
		s = fmt.Sprintf("%v", v.toAny())
	}
	if !strings.HasPrefix(s, "v") {
		s = "v" + strings.TrimPrefix(s, "V")
	}
	return s, semver.IsValid(s)
}

// semverCompare is flagd's sem_ver: null (the default variant) for a
// wrong argument count, an invalid version or an unknown operator.
func semverCompare(v []value) value {
	if len(v) != 3 {
		return nullValue
	}
	a, ok := semverOf(v[0])
	if !ok || v[1].k != kindString {
		return nullValue
	}
	b, ok := semverOf(v[2])
	if !ok {
		return nullValue
	}
	c := semver.Compare(a, b)
	switch v[1].s {
	case "<":
		return boolValue(c == -1)
	case "=":
		return boolValue(c == 0)
	case "!=":
		return boolValue(c != 0)
	case "<=":
		return boolValue(c <= 0)
	case ">=":
		return boolValue(c >= 0)
	case ">":
		return boolValue(c == 1)
	case "~":
		return boolValue(semver.Compare(semver.MajorMinor(a), semver.MajorMinor(b)) == 0)
	case "^":
		return boolValue(semver.Compare(semver.Major(a), semver.Major(b)) == 0)
	}
	return nullValue
}

// lookup evaluates a var with a precompiled path.
func (e *env) lookup(n *node) value {
	def := nullValue
	if n.def != nil {
		def = e.eval(n.def)
	}
	if n.whole {
		return e.wholeContext()
	}
	return e.walk(n.path, def)
}

// walk follows a path from the context: object keys, and array indexes
// ("items.0"). A missing key or a null gives def.
func (e *env) walk(parts []string, def value) value {
	var cur value
	if e.scoped {
		cur = fromAny(e.root)
	} else {
		if parts[0] == "$flagd" {
			cur = e.flagdProperties(parts[1:])
			if cur.k == kindNull {
				return def
			}
			return cur
		}
		x, ok := e.data[parts[0]]
		if !ok || x == nil {
			return def
		}
		cur = fromAny(x)
		parts = parts[1:]
	}
	for _, part := range parts {
		switch cur.k {
		case kindObject:
			x := cur.obj[part]
			if x == nil {
				return def
			}
			cur = fromAny(x)
		case kindArray:
			f, _ := strconv.ParseFloat(part, 64)
			if !(f > -1 && f < float64(len(cur.arr))) {
				return def
			}
			x := cur.arr[int(f)]
			if x == nil {
				return def
			}
			cur = fromAny(x)
		default:
			return def
		}
	}
	return cur
}

// flagdProperties is flagd's "$flagd" object: the key of the flag being
// evaluated and the time in Unix seconds.
func (e *env) flagdProperties(rest []string) value {
	if len(rest) == 0 {
		return value{k: kindObject, obj: map[string]any{"flagKey": e.flagKey, "timestamp": float64(e.now)}}
	}
	var v value
	switch rest[0] {
	case "flagKey":
		v = stringValue(e.flagKey)
	case "timestamp":
		v = numberValue(float64(e.now))
	default:
		return nullValue
	}
	if len(rest) > 1 {
		return nullValue
	}
	return v
}

// wholeContext is the context as flagd sees it, "$flagd" included.
func (e *env) wholeContext() value {
	if e.scoped {
		return fromAny(e.root)
	}
	m := make(map[string]any, len(e.data)+1)
	for k, v := range e.data {
		m[k] = v
	}
	m["$flagd"] = e.flagdProperties(nil).obj
	return value{k: kindObject, obj: m}
}

// varDynamic evaluates a var whose path is computed.
func (e *env) varDynamic(n *node) value {
	var buf [4]value
	vals, single, isList := e.argv(n, buf[:0])
	if e.err != nil {
		return nullValue
	}
	if isList {
		if len(vals) == 0 {
			return e.wholeContext()
		}
		def := nullValue
		if len(vals) == 2 {
			def = vals[1]
		}
		if vals[0].k != kindString {
			return e.fail("var: the path must be a string, not %s", describeValue(vals[0]))
		}
		return e.getVar(vals[0], def, true)
	}
	return e.getVar(single, nullValue, false)
}

// getVar is the library's getVar on an evaluated path.
func (e *env) getVar(p value, def value, fromList bool) value {
	switch p.k {
	case kindNull:
		// The library gives the data itself when it is a plain value.
		if e.scoped {
			if r := fromAny(e.root); r.k != kindArray && r.k != kindObject {
				return r
			}
		}
		return nullValue
	case kindNumber:
		p = stringValue(strconv.FormatFloat(p.n, 'f', -1, 64))
	case kindString:
	case kindArray:
		if fromList {
			return e.fail("var: the path must be a string")
		}
		vals := make([]value, len(p.arr))
		for i, x := range p.arr {
			vals[i] = fromAny(x)
		}
		if len(vals) == 0 {
			return e.wholeContext()
		}
		if len(vals) == 2 {
			def = vals[1]
		}
		if vals[0].k != kindString {
			return e.fail("var: the path must be a string, not %s", describeValue(vals[0]))
		}
		p = vals[0]
	default:
		return e.fail("var: the path must be a string, not %s", describeValue(p))
	}
	if p.s == "" {
		return e.wholeContext()
	}
	parts := strings.Split(p.s, ".")
	kept := parts[:0]
	for _, s := range parts {
		if s != "" {
			kept = append(kept, s)
		}
	}
	if len(kept) == 0 {
		return e.wholeContext()
	}
	return e.walk(kept, def)
}
