package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"gopkg.in/yaml.v3"
)

// Load reads the config file at path and parses it like Parse. Problems
// name the file as path was given.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	return Parse(path, data)
}

// Parse decodes data, the content of the config file name, fills in the
// defaults and validates the result. Decoding is strict: an unknown field is
// an error. When anything is wrong, Parse returns a nil config and an *Error
// holding every problem found. Run.Dir is made absolute against the
// directory of name.
func Parse(name string, data []byte) (*Config, error) {
	d := &decoder{file: name, nodes: map[string]entry{}}
	root := d.document(data)
	if root == nil {
		return nil, newError(d.problems)
	}
	c, _, err := d.parseRoot(name, root)
	return c, err
}

// parseRoot decodes the root mapping of one app, fills in the defaults
// and validates the result, as Parse does.
// It also returns the line of every field set, by path ("" is the line
// of the app field), for the problems found between apps (LoadApps).
func (d *decoder) parseRoot(name string, root *yaml.Node) (*Config, map[string]int, error) {
	c := &Config{Source: name}
	c.setDefaults()
	d.decode("", nil, root, reflect.ValueOf(c).Elem())
	c.fillEmpty()
	d.resolveDir(c, name)
	d.validate(c)
	if len(d.problems) > 0 {
		return nil, nil, newError(d.problems)
	}
	lines := make(map[string]int, len(d.nodes)+1)
	for path := range d.nodes {
		lines[path] = d.line(path)
	}
	lines[""] = root.Line
	if e, ok := d.nodes["app"]; ok && e.key != nil {
		lines[""] = e.key.Line
	}
	return c, lines, nil
}

// maxVisits bounds the work of decoding. Aliases let a small file stand for
// a huge tree; no real config comes near this many values.
const maxVisits = 10_000

// decoder walks the YAML node tree by hand instead of using yaml.Unmarshal,
// because Unmarshal's errors carry neither the column nor the path of the
// field, and because it cannot tell a field left out (which gets its
// default) from a field set to zero (which is validated as written).
type decoder struct {
	file     string
	problems []Problem
	// nodes holds the key and value node of every field decoded, by path,
	// so that validation can report at the right place.
	nodes map[string]entry
	// failed holds the paths that could not be decoded; validation keeps
	// quiet about them rather than report the same mistake twice.
	failed []string
	visits int
}

type entry struct {
	key, value *yaml.Node // key is nil for list items and the root
}

const emptyMessage = "the file is empty; it must set at least app, run.command and environments"

// document parses data into a node tree and returns its root mapping, or nil
// after recording why there is none.
func (d *decoder) document(data []byte) *yaml.Node {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			d.problems = append(d.problems, Problem{File: d.file, Message: emptyMessage})
		} else {
			d.syntaxError(data, err)
		}
		return nil
	}
	var next yaml.Node
	switch err := dec.Decode(&next); {
	case errors.Is(err, io.EOF):
	case err != nil:
		d.syntaxError(data, err)
	case len(next.Content) == 1 && !isNull(next.Content[0]):
		d.problems = append(d.problems, Problem{File: d.file, Line: next.Line, Column: next.Column,
			Message: `a second YAML document starts here; a shipgate.yaml holds one app: remove the "---" and what follows it`})
	}
	if len(doc.Content) != 1 {
		// The parser always returns a document with one root; this is
		// only a guard against a future yaml.v3 doing otherwise.
		d.problems = append(d.problems, Problem{File: d.file, Message: emptyMessage})
		return nil
	}
	root := doc.Content[0]
	switch {
	case isNull(root):
		d.problems = append(d.problems, Problem{File: d.file, Line: root.Line, Column: root.Column, Message: emptyMessage})
		return nil
	case root.Kind != yaml.MappingNode:
		d.problems = append(d.problems, Problem{File: d.file, Line: root.Line, Column: root.Column,
			Message: `the file must be a mapping of fields, like "app: shop", got ` + describe(root)})
		return nil
	}
	if len(d.problems) > 0 {
		return nil
	}
	return root
}

var yamlLine = regexp.MustCompile(`^yaml: line ([0-9]+): (.*)$`)

// parserProblems are the errors of yaml.v3's parser (as opposed to its
// scanner): for them it prints the 0-based line, so one is added.
var parserProblems = []string{
	"did not find expected ',' or ']'",
	"did not find expected ',' or '}'",
	"did not find expected '-' indicator",
	"did not find expected <document start>",
	"did not find expected key",
	"did not find expected node content",
	"found duplicate %TAG directive",
	"found duplicate %YAML directive",
	"found incompatible YAML document",
	"found undefined tag handle",
}

// syntaxError records a YAML syntax error. yaml.v3 gives a line for most of
// them but never a column; when the line is missing, it is found again.
func (d *decoder) syntaxError(data []byte, err error) {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	line := 0
	if m := yamlLine.FindStringSubmatch(err.Error()); m != nil {
		line, _ = strconv.Atoi(m[1])
		msg = m[2]
	}
	if slices.Contains(parserProblems, msg) {
		line++ // also turns "no line" (line 0) into line 1
	}
	if line == 0 {
		line = locate(data, msg)
	}
	if strings.Contains(msg, "tab character") || tabIndented(data, line) {
		msg += "; indent with spaces, YAML does not allow tabs"
	}
	d.problems = append(d.problems, Problem{File: d.file, Line: line, Message: "invalid YAML: " + msg})
}

var unknownAnchor = regexp.MustCompile(`^unknown anchor '(.*)' referenced$`)

// locate finds the line of an error yaml.v3 reported without one: bad
// bytes are found by the reader before lines are counted, an unknown
// anchor is found after, and yaml.v3 leaves out "line 1" altogether.
func locate(data []byte, msg string) int {
	at := -1
	switch {
	case !utf8.Valid(data):
		for i := 0; i < len(data); {
			r, size := utf8.DecodeRune(data[i:])
			if r == utf8.RuneError && size <= 1 {
				at = i
				break
			}
			i += size
		}
	case strings.Contains(msg, "control characters"):
		at = bytes.IndexFunc(data, func(r rune) bool {
			return r < 0x20 && r != '\t' && r != '\n' && r != '\r' || r == 0x7f || r >= 0x80 && r < 0xa0 && r != 0x85
		})
	default:
		if m := unknownAnchor.FindStringSubmatch(msg); m != nil {
			at = bytes.Index(data, []byte("*"+m[1]))
		}
	}
	if at < 0 {
		return 1
	}
	return 1 + bytes.Count(data[:at], []byte("\n"))
}

// tabIndented reports whether the indentation of line (1-based) holds a tab.
func tabIndented(data []byte, line int) bool {
	lines := bytes.Split(data, []byte("\n"))
	if line < 1 || line > len(lines) {
		return false
	}
	l := lines[line-1]
	indent := l[:len(l)-len(bytes.TrimLeft(l, " \t"))]
	return bytes.IndexByte(indent, '\t') >= 0
}

// decode decodes the node n, found under key (nil for list items), into v,
// which already holds the defaults.
func (d *decoder) decode(path string, key, n *yaml.Node, v reflect.Value) {
	if !d.spend(n, path) {
		return
	}
	if n.Kind == yaml.AliasNode {
		n = n.Alias // the parser refuses an alias whose anchor is unknown
	}
	d.nodes[path] = entry{key: key, value: n}
	if isNull(n) {
		return // an empty value leaves the default
	}
	msg := ""
	switch v.Type() {
	case reflect.TypeFor[Duration]():
		var dur Duration
		if dur, msg = decodeDuration(n); msg == "" {
			v.Set(reflect.ValueOf(dur))
		}
	case reflect.TypeFor[Threshold]():
		var t Threshold
		if t, msg = decodeThreshold(n); msg == "" {
			v.Set(reflect.ValueOf(t))
		}
	case reflect.TypeFor[*Approval]():
		// approval: true is one approval by anyone who may approve;
		// false is none.
		var b bool
		if n.Kind == yaml.MappingNode {
			msg = d.decodeKind(path, n, v)
			break
		}
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!bool" || n.Decode(&b) != nil {
			msg = "must be true, false or a mapping (required, prevent_self_approval, roles), got " + describe(n)
			break
		}
		v.SetZero()
		if b {
			v.Set(newValue(reflect.TypeFor[Approval]()))
		}
	default:
		msg = d.decodeKind(path, n, v)
	}
	if msg != "" {
		d.failAt(n, path, msg)
	}
}

// decodeKind decodes n into v by the kind of v, and returns a message when
// n does not fit.
func (d *decoder) decodeKind(path string, n *yaml.Node, v reflect.Value) string {
	switch v.Kind() {
	case reflect.Pointer:
		p := newValue(v.Type().Elem())
		d.decode(path, d.nodes[path].key, n, p.Elem())
		v.Set(p)
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			return "must be a mapping of fields, got " + describe(n)
		}
		d.decodeStruct(path, n, v)
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			return "must be a mapping, got " + describe(n)
		}
		m := reflect.MakeMap(v.Type())
		for _, p := range d.pairs(path, n, 0) {
			e := newValue(v.Type().Elem())
			d.decode(path+"."+p.key.Value, p.key, p.value, e.Elem())
			m.SetMapIndex(reflect.ValueOf(p.key.Value), e.Elem())
		}
		v.Set(m)
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			msg := "must be a list, got " + describe(n)
			if v.Type().Elem().Kind() == reflect.String && n.ShortTag() == "!!str" {
				msg += "; write " + flowList(strings.Fields(n.Value))
			}
			return msg
		}
		s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
		for i, item := range n.Content {
			e := newValue(v.Type().Elem())
			d.decode(path+"["+strconv.Itoa(i)+"]", nil, item, e.Elem())
			s.Index(i).Set(e.Elem())
		}
		v.Set(s)
	case reflect.String:
		// Any scalar will do: vars: {RATE: 0} means the string "0".
		if n.Kind != yaml.ScalarNode {
			return "must be a string, got " + describe(n)
		}
		v.SetString(n.Value)
	case reflect.Int:
		var i int64
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!int" || n.Decode(&i) != nil {
			return "must be a whole number, got " + describe(n)
		}
		v.SetInt(i)
	case reflect.Bool:
		// Only true and false: yaml.v3 would also take yes, no, on and
		// off (YAML 1.1), which YAML 1.2 and editors read as strings.
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!bool" {
			return "must be true or false, got " + describe(n)
		}
		var b bool
		if n.Decode(&b) != nil {
			return "must be true or false, got " + describe(n)
		}
		v.SetBool(b)
	case reflect.Float64:
		var f float64
		if n.Kind != yaml.ScalarNode || (n.ShortTag() != "!!int" && n.ShortTag() != "!!float") || n.Decode(&f) != nil {
			return "must be a number, got " + describe(n)
		}
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return "must be a finite number, got " + n.Value
		}
		v.SetFloat(f)
	default:
		// Only reached if a field of a new kind is added to Config.
		panic("config: cannot decode into " + v.Type().String())
	}
	return ""
}

// newValue returns a pointer to a new value of type t with its defaults.
func newValue(t reflect.Type) reflect.Value {
	p := reflect.New(t)
	if dv, ok := p.Interface().(defaulter); ok {
		dv.setDefaults()
	}
	return p
}

func (d *decoder) decodeStruct(path string, n *yaml.Node, v reflect.Value) {
	fields := yamlFields(v.Type())
	for _, p := range d.pairs(path, n, 0) {
		name := p.key.Value
		fieldPath := join(path, name)
		i, ok := fields[name]
		if !ok {
			d.failAt(p.key, fieldPath, unknownField(name, fields))
			continue
		}
		d.decode(fieldPath, p.key, p.value, v.Field(i))
	}
}

// yamlFields maps the yaml keys of a struct type to field indexes.
func yamlFields(t reflect.Type) map[string]int {
	fields := map[string]int{}
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ",")
		if name != "" && name != "-" {
			fields[name] = i
		}
	}
	return fields
}

func unknownField(name string, fields map[string]int) string {
	known := sortedKeys(fields)
	if best := closest(name, known); best != "" {
		return fmt.Sprintf("unknown field %q; did you mean %q?", name, best)
	}
	return fmt.Sprintf("unknown field %q; the fields here are: %s", name, strings.Join(known, ", "))
}

// closest returns the name in known that name is most likely a typo of, or
// "" when none is close enough.
func closest(name string, known []string) string {
	best, bestDistance := "", 3 // suggest only names within 2 edits
	for _, k := range known {
		dist := editDistance(name, k)
		if min(len(name), len(k)) >= 4 && (strings.HasPrefix(name, k) || strings.HasPrefix(k, name)) {
			dist = min(dist, 2) // "healthcheck" for "health"
		}
		if dist < len(name) && (dist < bestDistance || dist == bestDistance && k < best) {
			best, bestDistance = k, dist
		}
	}
	return best
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// flowList formats words as a YAML flow list of quoted strings.
func flowList(words []string) string {
	quoted := make([]string, len(words))
	for i, w := range words {
		quoted[i] = strconv.Quote(w)
	}
	return "[" + strings.Join(quoted, ", ") + "]"
}

type pair struct {
	key, value *yaml.Node
}

// maxMergeDepth bounds merge keys that merge mappings that merge mappings;
// it also stops an anchor that merges itself.
const maxMergeDepth = 8

// pairs returns the key/value pairs of the mapping n in file order, with the
// pairs of merge keys ("<<: *defaults") added where the mapping does not set
// the key itself. Keys set twice and keys that are not strings are
// reported.
func (d *decoder) pairs(path string, n *yaml.Node, depth int) []pair {
	var own, merged []pair
	seen := map[string]*yaml.Node{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if !d.spend(k, path) {
			return nil
		}
		if k.Kind == yaml.AliasNode {
			k = k.Alias
		}
		if k.Kind == yaml.ScalarNode && k.ShortTag() == "!!merge" {
			merged = append(merged, d.merge(path, k, v, depth)...)
			continue
		}
		if k.Kind != yaml.ScalarNode || isNull(k) {
			d.failAt(k, path, "keys must be plain names, got "+describe(k))
			continue
		}
		if first, ok := seen[k.Value]; ok {
			d.failAt(k, join(path, k.Value), fmt.Sprintf("%q is set twice (first on line %d); remove one", k.Value, first.Line))
			continue
		}
		seen[k.Value] = k
		own = append(own, pair{k, v})
	}
	for _, p := range merged {
		if _, ok := seen[p.key.Value]; !ok {
			seen[p.key.Value] = p.key
			own = append(own, p)
		}
	}
	return own
}

// merge returns the pairs that the merge key k brings in with its value v:
// a mapping, or a list of mappings of which the first wins.
func (d *decoder) merge(path string, k, v *yaml.Node, depth int) []pair {
	if depth >= maxMergeDepth {
		d.failAt(k, path, "merge keys (<<) nest too deep; is an anchor merging itself?")
		return nil
	}
	if v.Kind == yaml.AliasNode {
		v = v.Alias
	}
	switch v.Kind {
	case yaml.MappingNode:
		return d.pairs(path, v, depth+1)
	case yaml.SequenceNode:
		var all []pair
		seen := map[string]bool{}
		for _, item := range v.Content {
			if item.Kind == yaml.AliasNode {
				item = item.Alias
			}
			if item.Kind != yaml.MappingNode {
				d.failAt(item, path, "<< must merge a mapping or a list of mappings, got "+describe(item))
				continue
			}
			for _, p := range d.pairs(path, item, depth+1) {
				if !seen[p.key.Value] {
					seen[p.key.Value] = true
					all = append(all, p)
				}
			}
		}
		return all
	}
	d.failAt(v, path, "<< must merge a mapping or a list of mappings, got "+describe(v))
	return nil
}

// spend counts one more value visited and reports, once, when there have
// been too many.
func (d *decoder) spend(n *yaml.Node, path string) bool {
	d.visits++
	if d.visits == maxVisits+1 {
		d.failAt(n, path, "the file expands to too many values; are aliases (*name) repeating a big anchor?")
	}
	return d.visits <= maxVisits
}

// failAt records a problem with the node n and marks path as failed.
func (d *decoder) failAt(n *yaml.Node, path, msg string) {
	d.failed = append(d.failed, path)
	d.problems = append(d.problems, Problem{File: d.file, Line: n.Line, Column: n.Column, Field: path, Message: msg})
}

// resolveDir makes Run.Dir absolute against the directory of the config.
func (d *decoder) resolveDir(c *Config, name string) {
	base, err := filepath.Abs(filepath.Dir(name))
	if err != nil {
		d.problemf("run.dir", "cannot find the directory of %s: %v", name, err)
		return
	}
	if !filepath.IsAbs(c.Run.Dir) {
		c.Run.Dir = filepath.Join(base, c.Run.Dir)
	}
	c.Run.Dir = filepath.Clean(c.Run.Dir)
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

func join(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}
