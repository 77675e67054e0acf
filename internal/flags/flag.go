// Package flags is Shipgate's feature flags domain: flag definitions in
// flagd's schema, their validation with the JSON path of every problem,
// targeting compiled once into an evaluator that gives the same variants
// as flagd, friendly edits that write the JSON Logic for everyday cases,
// lifecycle (owners, expiry, staleness), and the guarded rollout that
// raises a flag's percentage while watching the app and switches the
// flag off when a guard fails.
//
// It is pure: it imports no transport and no storage. The SQLite store,
// the OFREP handler, the API and the CLI are adapters around it.
package flags

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Error kinds. Adapters map them to status codes and exit codes in one
// place each.
var (
	// ErrNotFound means the flag or segment does not exist.
	ErrNotFound = errors.New("not found")
	// ErrConflict means the request clashes with the current state, for
	// example creating a flag that exists, or deleting a flag that is
	// still being evaluated without --force.
	ErrConflict = errors.New("conflict")
	// ErrInvalid means the definition or the request is wrong; a
	// *ValidationError says where.
	ErrInvalid = errors.New("invalid")
)

// State is whether a flag is served: flagd's ENABLED or DISABLED.
type State string

// Flag states.
const (
	// Enabled flags are evaluated.
	Enabled State = "ENABLED"
	// Disabled flags are not: every client falls back to its code
	// default. Disabling is the kill switch.
	Disabled State = "DISABLED"
)

// Stage is where a flag is in its life, kept in its metadata under
// "stage". Stages are advisory: they drive the staleness report and
// deletion rules, never evaluation.
type Stage string

// Lifecycle stages, in the order a flag normally goes through them.
const (
	// StageDark: the code is shipped, the flag serves its default to all.
	StageDark Stage = "dark"
	// StageTargeted: on for some users (a list, a segment, an attribute).
	StageTargeted Stage = "targeted"
	// StageRollout: on for a percentage of users.
	StageRollout Stage = "rollout"
	// StageReleased: on for everyone; the flag is now debt to remove.
	StageReleased Stage = "released"
	// StageArchived: no longer meant to be evaluated; the normal step
	// before deletion.
	StageArchived Stage = "archived"
)

// Shipgate's own keys in a flag's metadata. flagd ignores metadata, so a
// file written by Shipgate still loads in flagd.
const (
	MetaOwner       = "owner"
	MetaDescription = "description"
	MetaCreated     = "created"
	MetaExpires     = "expires"
	MetaStage       = "stage"
	// MetaFullSince is when the flag's rollout reached 100%, RFC 3339.
	MetaFullSince = "fullSince"
)

// Flag is one flag definition in flagd's flag-definition schema. The JSON
// encoding is exactly flagd's, so flags read from a flagd file and written
// back are unchanged.
type Flag struct {
	// Key identifies the flag; it is the key of the "flags" object.
	Key string `json:"-"`
	// State is ENABLED or DISABLED.
	State State `json:"state"`
	// Variants maps variant names to values: all booleans, all strings,
	// all numbers or all objects.
	Variants map[string]any `json:"variants"`
	// DefaultVariant is served when there is no targeting or the targeting
	// returns null. Nil (JSON null or absent) means the code default.
	DefaultVariant *string `json:"defaultVariant"`
	// Targeting is JSON Logic with flagd's operators; absent or {} for none.
	Targeting json.RawMessage `json:"targeting,omitempty"`
	// Metadata holds strings, numbers and booleans; Shipgate keeps owner,
	// description, created, expires and stage here.
	Metadata map[string]any `json:"metadata,omitempty"`
}

// Default returns the default variant, "" when there is none.
func (f *Flag) Default() string {
	if f.DefaultVariant == nil {
		return ""
	}
	return *f.DefaultVariant
}

// MetaString returns the metadata value under key when it is a string.
func (f *Flag) MetaString(key string) string {
	s, _ := f.Metadata[key].(string)
	return s
}

// MetaTime returns the metadata value under key parsed as RFC 3339, the
// zero time when it is absent or not a time.
func (f *Flag) MetaTime(key string) time.Time {
	t, err := time.Parse(time.RFC3339, f.MetaString(key))
	if err != nil {
		return time.Time{}
	}
	return t
}

// SetMeta sets a metadata value; an empty string removes the key.
func (f *Flag) SetMeta(key string, v any) {
	if s, ok := v.(string); ok && s == "" {
		delete(f.Metadata, key)
		return
	}
	if f.Metadata == nil {
		f.Metadata = map[string]any{}
	}
	f.Metadata[key] = v
}

// Stage returns the flag's lifecycle stage from its metadata.
func (f *Flag) Stage() Stage { return Stage(f.MetaString(MetaStage)) }

// Clone returns a deep copy of f, so that an edit never changes a flag
// that a snapshot still serves.
func (f *Flag) Clone() *Flag {
	b, err := json.Marshal(f)
	if err != nil {
		// A Flag holds only JSON values: it always encodes.
		panic(fmt.Sprintf("flags: encode flag %q: %v", f.Key, err))
	}
	var c Flag
	if err := json.Unmarshal(b, &c); err != nil {
		panic(fmt.Sprintf("flags: decode flag %q: %v", f.Key, err))
	}
	c.Key = f.Key
	return &c
}

// Segment is a named, shared targeting rule: a flagd "$evaluators" entry,
// used in targeting as {"$ref": "name"}.
type Segment struct {
	Name string `json:"name"`
	// Rule is the JSON Logic rule, an object.
	Rule json.RawMessage `json:"rule"`
}

// Problem is one thing wrong with a definition, at one place in it.
type Problem struct {
	// Path is a JSON Pointer (RFC 6901) into the document, for example
	// "/flags/new-checkout/targeting/if/0/in/1".
	Path string `json:"path"`
	// Message says what is wrong and what to do about it.
	Message string `json:"message"`
}

// String returns "path: message".
func (p Problem) String() string {
	if p.Path == "" {
		return p.Message
	}
	return p.Path + ": " + p.Message
}

// ValidationError is a definition that was rejected, with every problem
// found. It matches ErrInvalid with errors.Is.
type ValidationError struct {
	Problems []Problem `json:"problems"`
}

// Error returns the problems, one per line.
func (e *ValidationError) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

// Is reports whether target is ErrInvalid.
func (e *ValidationError) Is(target error) bool { return target == ErrInvalid }

// invalidf returns a ValidationError with one problem at path.
func invalidf(path, format string, args ...any) error {
	return &ValidationError{Problems: []Problem{{Path: path, Message: fmt.Sprintf(format, args...)}}}
}

// pointer appends a reference token to a JSON Pointer, escaping it.
func pointer(base string, token string) string {
	token = strings.ReplaceAll(token, "~", "~0")
	token = strings.ReplaceAll(token, "/", "~1")
	return base + "/" + token
}

// index appends an array index to a JSON Pointer.
func index(base string, i int) string { return fmt.Sprintf("%s/%d", base, i) }
