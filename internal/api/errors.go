package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"unicode"

	"github.com/shipgate/shipgate/internal/flags"
	"github.com/shipgate/shipgate/internal/rollout"
)

// Error codes of the API, in the "code" field of an error body.
const (
	codeInvalid      = "invalid"
	codeNotFound     = "not_found"
	codeConflict     = "conflict"
	codeGate         = "gate"
	codeUnauthorized = "unauthorized"
	codeForbidden    = "forbidden"
	codeInternal     = "internal"
)

// APIError is an error answered by the API. On the wire it is the value of
// "error" in {"error":{"code":"invalid","field":"version","message":"..."}}.
type APIError struct {
	// Status is the HTTP status code.
	Status int `json:"-"`
	// Code is one of invalid, not_found, conflict, gate, unauthorized,
	// forbidden or internal.
	Code string `json:"code"`
	// Field names the request field at fault, for invalid requests, or
	// the gate that refused, for gate errors.
	Field string `json:"field,omitempty"`
	// Message says what was wrong, for a person.
	Message string `json:"message"`
}

// Error returns the message, prefixed with the field when there is one.
// A gate error's message already starts with the gate's name.
func (e *APIError) Error() string {
	// A flag definition's problems already start with their path.
	if e.Field != "" && e.Code != codeGate && !strings.HasPrefix(e.Message, e.Field+": ") {
		return e.Field + ": " + e.Message
	}
	return e.Message
}

// Unwrap returns the rollout error kind of the answer, so that code
// written against Service checks a Client's errors as it checks the
// engine's: errors.Is(err, rollout.ErrNotFound), errors.As(err, &gateErr).
// It returns nil for the codes the engine has no kind for.
func (e *APIError) Unwrap() error {
	switch e.Code {
	case codeInvalid:
		if e.Field != "" {
			return &rollout.FieldError{Field: e.Field, Message: e.Message}
		}
		return rollout.ErrInvalid
	case codeNotFound:
		return rollout.ErrNotFound
	case codeConflict:
		return rollout.ErrConflict
	case codeGate:
		return &rollout.GateError{Gate: e.Field, Message: strings.TrimPrefix(e.Message, e.Field+" gate: ")}
	}
	return nil
}

// errorBody is the JSON body of every error response.
type errorBody struct {
	Error *APIError `json:"error"`
}

// errorFor maps an error to the APIError the client sees. It is the one
// place where error kinds, the rollout engine's and the flags service's,
// become status codes. A *flags.ValidationError names the JSON path of its
// first problem as the field and lists them all in the message.
func errorFor(err error) (apiErr *APIError, internal bool) {
	var ae *APIError
	var fe *rollout.FieldError
	var ge *rollout.GateError
	var ve *flags.ValidationError
	switch {
	case errors.As(err, &ae):
		return ae, false
	case errors.As(err, &fe):
		return &APIError{Status: http.StatusBadRequest, Code: codeInvalid, Field: fe.Field, Message: fe.Message}, false
	case errors.As(err, &ve) && len(ve.Problems) > 0:
		return &APIError{Status: http.StatusBadRequest, Code: codeInvalid, Field: ve.Problems[0].Path, Message: ve.Error()}, false
	case errors.As(err, &ge):
		// Before ErrConflict, which a GateError matches too: the client
		// needs to know which gate refused, and a person what to do.
		return &APIError{Status: http.StatusConflict, Code: codeGate, Field: ge.Gate, Message: ge.Error()}, false
	case errors.Is(err, rollout.ErrForbidden):
		return &APIError{Status: http.StatusForbidden, Code: codeForbidden, Message: err.Error()}, false
	case errors.Is(err, rollout.ErrInvalid), errors.Is(err, flags.ErrInvalid):
		return &APIError{Status: http.StatusBadRequest, Code: codeInvalid, Message: kindless(err)}, false
	case errors.Is(err, rollout.ErrNotFound), errors.Is(err, flags.ErrNotFound):
		return &APIError{Status: http.StatusNotFound, Code: codeNotFound, Message: kindless(err)}, false
	case errors.Is(err, rollout.ErrConflict), errors.Is(err, flags.ErrConflict):
		return &APIError{Status: http.StatusConflict, Code: codeConflict, Message: kindless(err)}, false
	default:
		return &APIError{Status: http.StatusInternalServerError, Code: codeInternal, Message: "internal error; the server log has the details"}, true
	}
}

// kindless returns err's message without the error kind wrapped into it
// ("...: conflict", "not found: ..."): the kind is in the answer's code,
// and a person reads a sentence. A message that is only a name ("release
// 1.4.2 of shop: not found") becomes one ("release 1.4.2 of shop not
// found").
func kindless(err error) string {
	msg := err.Error()
	for _, k := range []struct {
		kind   []error
		phrase string
	}{
		{[]error{rollout.ErrNotFound, flags.ErrNotFound}, "not found"},
		{[]error{rollout.ErrConflict, flags.ErrConflict}, "conflicts with the current state"},
		{[]error{rollout.ErrInvalid, flags.ErrInvalid}, "is invalid"},
	} {
		for _, kind := range k.kind {
			if rest, ok := strings.CutPrefix(msg, kind.Error()+": "); ok && rest != "" {
				return rest
			}
			rest, ok := strings.CutSuffix(msg, ": "+kind.Error())
			if !ok || rest == "" {
				continue
			}
			if sentence(rest) {
				return rest
			}
			return rest + " " + k.phrase
		}
	}
	return msg
}

// sentence reports whether msg says something of its own, rather than
// only naming a thing.
func sentence(msg string) bool {
	lower := " " + strings.ToLower(msg) + " "
	for _, w := range []string{" is ", " are ", " has ", " have ", " not ", " no ", " exists", " need", ";", " waits", " was "} {
		if strings.Contains(lower, w) {
			return true
		}
	}
	return false
}

// writeError answers err. The detail of an internal error is logged, not
// returned: it may name files, queries or hosts the client has no business
// knowing.
func (h *handler) writeError(w http.ResponseWriter, r *http.Request, err error) {
	apiErr, internal := errorFor(err)
	if internal {
		h.log.LogAttrs(r.Context(), slog.LevelError, "api internal error",
			slog.String("method", r.Method),
			slog.String("path", r.URL.Path),
			slog.String("error", err.Error()),
		)
	}
	if apiErr.Status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="shipgate"`)
	}
	h.writeJSON(w, apiErr.Status, errorBody{Error: apiErr})
}

// writeJSON answers v as JSON with the given status.
func (h *handler) writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	if err := json.NewEncoder(w).Encode(v); err != nil {
		// The status is out already; all that is left is to say so.
		h.log.Warn("api write response", slog.String("error", err.Error()))
	}
}

// respond answers v as JSON with status, or err when it is not nil. It
// ends the handlers that call the Service and have nothing to add but the
// status of a success.
func (h *handler) respond(w http.ResponseWriter, r *http.Request, status int, v any, err error) {
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	h.writeJSON(w, status, redactAnswer(r.Context(), v))
}

// orEmpty returns s, or an empty slice when s is nil, so that a list is
// answered as [] and never as null.
func orEmpty[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// decodeJSON decodes the request body, one JSON object of at most
// maxBodyBytes, into a T, and validates it with validate unless that is
// nil. Unknown fields are an error, so that a typo in a field name is
// never silently ignored. The errors are the answers to send: a 400 or a
// 413 naming the field at fault when there is one.
func decodeJSON[T any](w http.ResponseWriter, r *http.Request, validate func(T) error) (T, error) {
	var v T
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&v); err != nil {
		return v, decodeError(err)
	}
	if err := dec.Decode(&struct{}{}); !errors.Is(err, io.EOF) {
		return v, invalid("", "the request body must hold one JSON object and nothing after it")
	}
	if validate != nil {
		return v, validate(v)
	}
	return v, nil
}

// decodeOptionalJSON is decodeJSON for a body that may be empty, which
// decodes to the zero T.
func decodeOptionalJSON[T any](w http.ResponseWriter, r *http.Request) (T, error) {
	if r.ContentLength == 0 {
		var zero T
		return zero, nil
	}
	return decodeJSON[T](w, r, nil)
}

// decodeError turns an error of json.Decoder into a 400 that names the
// field at fault when there is one.
func decodeError(err error) error {
	var typeErr *json.UnmarshalTypeError
	var syntaxErr *json.SyntaxError
	var maxErr *http.MaxBytesError
	switch {
	case errors.As(err, &maxErr):
		return &APIError{
			Status:  http.StatusRequestEntityTooLarge,
			Code:    codeInvalid,
			Message: fmt.Sprintf("the request body is larger than %d bytes", maxErr.Limit),
		}
	case errors.As(err, &typeErr):
		if typeErr.Field == "" {
			return invalid("", "the request body must be a JSON object")
		}
		got, _, _ := strings.Cut(typeErr.Value, " ")
		return invalid(jsonPath(typeErr.Field), fmt.Sprintf("must be %s, not %s", jsonKind(typeErr.Type), got))
	case errors.As(err, &syntaxErr):
		return invalid("", fmt.Sprintf("the request body is not valid JSON: %s (at byte %d)", syntaxErr, syntaxErr.Offset))
	case errors.Is(err, io.EOF):
		return invalid("", "the request body is empty; send a JSON object")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return invalid("", "the request body ends in the middle of a JSON value")
	}
	// encoding/json has no error type for unknown fields, only this message.
	if rest, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		field, uerr := strconv.Unquote(rest)
		if uerr != nil {
			field = rest
		}
		return invalid(field, "is not a known field")
	}
	return invalid("", "the request body could not be decoded: "+err.Error())
}

// jsonPath returns the JSON path of a field as encoding/json reports it,
// without the Go names of embedded structs (a wire type such as
// releaseBody embeds the engine's request). Every JSON name of this API is
// lower case, so a segment that starts with an upper-case letter is one.
func jsonPath(field string) string {
	segs := strings.Split(field, ".")
	for len(segs) > 1 && segs[0] != "" && unicode.IsUpper(rune(segs[0][0])) {
		segs = segs[1:]
	}
	return strings.Join(segs, ".")
}

func invalid(field, msg string) *APIError {
	return &APIError{Status: http.StatusBadRequest, Code: codeInvalid, Field: field, Message: msg}
}

// jsonKind names the JSON type that decodes into t.
func jsonKind(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64,
		reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Map, reflect.Struct:
		return "an object"
	case reflect.Slice, reflect.Array:
		return "an array"
	}
	return t.String()
}

// ErrorOf returns the APIError the API answers for err, so that an error
// met on one server (the leader carrying out a command) is answered
// alike by another (the one that took the command). An internal error
// keeps only its generic message.
func ErrorOf(err error) *APIError {
	ae, _ := errorFor(err)
	return ae
}
