package config

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// String returns d as a Go duration without zero tails: "10m", not "10m0s".
func (d Duration) String() string {
	s := time.Duration(d).String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// UnmarshalYAML decodes a Go duration string ("10m", "1.5s"). A bare number
// is refused because its unit would be a guess.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, msg := decodeDuration(n)
	if msg != "" {
		return errors.New(msg)
	}
	*d = v
	return nil
}

// IsZero reports false, always, so that yaml's omitempty never drops a
// duration: a written 0s is a value (a canary step with no bake time), and
// dropping it would give the field its default when the file is read back.
func (d Duration) IsZero() bool { return false }

var _ yaml.IsZeroer = Duration(0)

// MarshalYAML encodes d as a duration string, so that a marshalled config
// parses again.
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }

// MarshalJSON encodes d as a duration string, as the JSON Schema says.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.String()) }

// UnmarshalJSON decodes a duration string.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return errors.New(durationWant + ", got " + string(b))
	}
	v, msg := parseDuration(s)
	if msg != "" {
		return errors.New(msg)
	}
	*d = v
	return nil
}

const durationWant = `must be a duration like "10s" or "1m30s"`

// decodeDuration decodes a duration node. Like the other decode functions it
// returns a message for the user rather than an error, because only the
// caller knows the field and the position to report it at.
func decodeDuration(n *yaml.Node) (Duration, string) {
	if n.Kind != yaml.ScalarNode {
		return 0, durationWant + ", got " + describe(n)
	}
	switch n.ShortTag() {
	case "!!str":
		return parseDuration(n.Value)
	case "!!int", "!!float":
		return 0, fmt.Sprintf(`must be a duration with a unit, like "10s" or "1m30s", got the bare number %s`, n.Value)
	}
	return 0, durationWant + ", got " + describe(n)
}

func parseDuration(s string) (Duration, string) {
	v, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Sprintf("%s, got %q", durationWant, s)
	}
	if v < 0 {
		return 0, fmt.Sprintf("must not be negative, got %s", s)
	}
	return Duration(v), ""
}

// UnmarshalYAML decodes a fraction (0.005), a percentage ("0.5%") or a
// duration ("250ms").
func (t *Threshold) UnmarshalYAML(n *yaml.Node) error {
	v, msg := decodeThreshold(n)
	if msg != "" {
		return errors.New(msg)
	}
	*t = v
	return nil
}

// MarshalYAML encodes t the way it is written in shipgate.yaml.
func (t Threshold) MarshalYAML() (any, error) { return t.value(), nil }

// MarshalJSON encodes t the way it is written in shipgate.yaml: a number, or
// a duration string.
func (t Threshold) MarshalJSON() ([]byte, error) { return json.Marshal(t.value()) }

// UnmarshalJSON decodes a number, a percentage or a duration string.
func (t *Threshold) UnmarshalJSON(b []byte) error {
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	var msg string
	switch v := v.(type) {
	case float64:
		*t, msg = Threshold{Value: v}, checkNumber(v, string(b))
	case string:
		*t, msg = parseThreshold(v)
	default:
		msg = thresholdWant + ", got " + string(b)
	}
	if msg != "" {
		return errors.New(msg)
	}
	return nil
}

func (t Threshold) value() any {
	if t.IsDuration {
		return Duration(t.Value * float64(time.Second)).String()
	}
	return t.Value
}

const thresholdWant = `must be a fraction (0.005), a percentage ("0.5%") or a duration ("250ms")`

func decodeThreshold(n *yaml.Node) (Threshold, string) {
	if n.Kind != yaml.ScalarNode {
		return Threshold{}, thresholdWant + ", got " + describe(n)
	}
	switch n.ShortTag() {
	case "!!str":
		return parseThreshold(n.Value)
	case "!!int", "!!float":
		var f float64
		if err := n.Decode(&f); err != nil {
			return Threshold{}, thresholdWant + ", got " + n.Value
		}
		return Threshold{Value: f}, checkNumber(f, n.Value)
	}
	return Threshold{}, thresholdWant + ", got " + describe(n)
}

// percentage is stricter than strconv.ParseFloat, which would also take
// "1e2%" or "inf%".
var percentage = regexp.MustCompile(`^([0-9]+(\.[0-9]*)?|\.[0-9]+)%$`)

func parseThreshold(s string) (Threshold, string) {
	if percentage.MatchString(s) {
		f, err := strconv.ParseFloat(strings.TrimSuffix(s, "%"), 64)
		if err != nil || math.IsInf(f, 0) {
			return Threshold{}, fmt.Sprintf("%s, got %q", thresholdWant, s)
		}
		return Threshold{Value: f / 100}, ""
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return Threshold{}, fmt.Sprintf("%s, got %q", thresholdWant, s)
	}
	if d < 0 {
		return Threshold{}, "must not be negative, got " + s
	}
	return Threshold{Value: d.Seconds(), IsDuration: true}, ""
}

// checkNumber checks a threshold written as the number f, as text.
func checkNumber(f float64, text string) string {
	switch {
	case math.IsNaN(f) || math.IsInf(f, 0):
		return thresholdWant + ", got " + text
	case f < 0:
		return "must not be negative, got " + text
	}
	return ""
}

// describe names a node's value for a "got ..." at the end of a message.
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		switch n.ShortTag() {
		case "!!null":
			return "nothing"
		case "!!str":
			return strconv.Quote(n.Value)
		}
		return n.Value
	}
	return "nothing"
}
