package flags

import (
	"encoding/json"
	"math"
	"strconv"
	"strings"
)

// kind is the JSON type of a value during evaluation.
type kind uint8

const (
	kindNull kind = iota
	kindBool
	kindNumber
	kindString
	kindArray
	kindObject
)

// value is a JSON value during evaluation. It is a plain struct rather
// than an interface so that evaluating a rule boxes nothing: numbers,
// booleans and strings stay on the stack.
type value struct {
	k   kind
	b   bool
	n   float64
	s   string
	arr []any
	obj map[string]any
}

var (
	nullValue  = value{}
	trueValue  = value{k: kindBool, b: true}
	falseValue = value{k: kindBool}
)

func boolValue(b bool) value      { return value{k: kindBool, b: b} }
func numberValue(n float64) value { return value{k: kindNumber, n: n} }
func stringValue(s string) value  { return value{k: kindString, s: s} }

// fromAny converts a decoded JSON value (as encoding/json produces it, or
// as Go code builds it) to a value.
func fromAny(x any) value {
	switch v := x.(type) {
	case nil:
		return nullValue
	case bool:
		return boolValue(v)
	case float64:
		return numberValue(v)
	case string:
		return stringValue(v)
	case []any:
		return value{k: kindArray, arr: v}
	case map[string]any:
		return value{k: kindObject, obj: v}
	case int:
		return numberValue(float64(v))
	case int64:
		return numberValue(float64(v))
	case int32:
		return numberValue(float64(v))
	case float32:
		return numberValue(float64(v))
	case json.Number:
		f, _ := v.Float64()
		return numberValue(f)
	case []string:
		a := make([]any, len(v))
		for i, s := range v {
			a[i] = s
		}
		return value{k: kindArray, arr: a}
	}
	// Anything else is not JSON; treat it as an object nobody can read.
	return value{k: kindObject}
}

// toAny converts v back to a decoded JSON value.
func (v value) toAny() any {
	switch v.k {
	case kindBool:
		return v.b
	case kindNumber:
		return v.n
	case kindString:
		return v.s
	case kindArray:
		return v.arr
	case kindObject:
		return v.obj
	}
	return nil
}

// truthy is jsonlogic's typing.IsTrue: false, 0, "", [], {} and null are
// false; everything else, NaN included, is true.
func (v value) truthy() bool {
	switch v.k {
	case kindBool:
		return v.b
	case kindNumber:
		return v.n != 0
	case kindString:
		return len(v.s) > 0
	case kindArray:
		return len(v.arr) > 0
	case kindObject:
		return len(v.obj) > 0
	}
	return false
}

// jsNumber is jsonlogic's javascript.ToNumber, used by comparisons: null
// is 0, booleans are 0 or 1, a blank string is 0, a string that does not
// parse (or is out of range) is NaN, arrays and objects are NaN.
func (v value) jsNumber() float64 {
	switch v.k {
	case kindNull:
		return 0
	case kindNumber:
		return v.n
	case kindBool:
		if v.b {
			return 1
		}
		return 0
	case kindString:
		if strings.TrimSpace(v.s) == "" {
			return 0
		}
		n, err := strconv.ParseFloat(v.s, 64)
		if err != nil {
			return math.NaN()
		}
		return n
	}
	return math.NaN()
}

// strictNumber is jsonlogic's typing.ToNumber, used by arithmetic: a
// string is parsed (0 when it does not parse), a number is itself, and
// anything else is an evaluation error.
func (v value) strictNumber() (float64, bool) {
	switch v.k {
	case kindNumber:
		return v.n, true
	case kindString:
		n, _ := strconv.ParseFloat(v.s, 64)
		return n, true
	}
	return 0, false
}

// str is jsonlogic's typing.ToString: numbers are formatted without
// exponent, null is "", strings are themselves, anything else is an
// evaluation error.
func (v value) str() (string, bool) {
	switch v.k {
	case kindString:
		return v.s, true
	case kindNumber:
		return strconv.FormatFloat(v.n, 'f', -1, 64), true
	case kindNull:
		return "", true
	}
	return "", false
}

// looseEqual is jsonlogic's equals: null equals only null, two strings
// compare as strings, anything else compares as numbers.
func looseEqual(a, b value) bool {
	if a.k == kindNull || b.k == kindNull {
		return a.k == b.k
	}
	if a.k == kindString && b.k == kindString {
		return a.s == b.s
	}
	return a.jsNumber() == b.jsNumber()
}

// less is jsonlogic's less: two strings compare as strings, anything else
// as numbers.
func less(a, b value) bool {
	if a.k == kindString && b.k == kindString {
		return b.s > a.s
	}
	return b.jsNumber() > a.jsNumber()
}

// identical is Go's == on two interface values holding a and b, which
// jsonlogic's "in" uses: values of different kinds differ, and comparing
// two arrays or two objects panics there (an evaluation error here).
func identical(a, b value) (eq, ok bool) {
	if a.k != b.k {
		return false, true
	}
	switch a.k {
	case kindNull:
		return true, true
	case kindBool:
		return a.b == b.b, true
	case kindNumber:
		return a.n == b.n, true
	case kindString:
		return a.s == b.s, true
	}
	return false, false
}

// variantName turns the result of a targeting rule into a variant name
// the way flagd does: the JSON encoding of the result (HTML-escaped, as
// encoding/json does by default), with every double quote removed. For a
// plain string that is the string itself.
func variantName(v value) (string, bool) {
	switch v.k {
	case kindString:
		if plainString(v.s) {
			return v.s, true
		}
	case kindBool:
		if v.b {
			return "true", true
		}
		return "false", true
	}
	b, err := json.Marshal(v.toAny())
	if err != nil {
		// NaN and infinities have no JSON encoding; flagd fails there too.
		return "", false
	}
	return strings.ReplaceAll(strings.TrimSpace(string(b)), `"`, ""), true
}

// plainString reports whether s encodes to JSON as itself in quotes.
func plainString(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' || c >= 0x80 {
			return false
		}
	}
	return true
}
