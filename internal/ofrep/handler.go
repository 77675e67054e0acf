// Package ofrep serves feature flags over the OpenFeature Remote
// Evaluation Protocol (OFREP 0.3): single and bulk evaluation, ETag
// revalidation of bulk evaluations, and a server-sent event stream that
// tells clients to refetch after every change. Any OpenFeature SDK with
// an OFREP provider is a client. It also has a small Go client that
// caches a bulk evaluation and refreshes it on the stream's events.
//
// Requests authenticate with a flag client key (role flag-client, or a
// viewer token) as "Authorization: Bearer <key>" or "X-API-Key: <key>".
// Admin and deployer tokens are refused: they do not belong in apps.
package ofrep

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/shipgate/shipgate/internal/auth"
	"github.com/shipgate/shipgate/internal/flags"
	"github.com/shipgate/shipgate/internal/rollout"
)

// Evaluator is what the handler needs from the flags service.
type Evaluator interface {
	Evaluate(key string, ctx map[string]any) flags.Result
	EvaluateAll(ctx map[string]any) ([]flags.Result, string)
	Snapshot() *flags.Snapshot
	Watch() (<-chan struct{}, func())
}

// TokenStore finds tokens by the hash of their secret.
type TokenStore interface {
	// TokenByHash returns the token, or an error wrapping
	// rollout.ErrNotFound when there is none.
	TokenByHash(ctx context.Context, secretHash string) (auth.Token, error)
}

// Paths of the protocol.
const (
	PathEvaluate = "/ofrep/v1/evaluate/flags"
	PathStream   = "/ofrep/v1/stream"
)

// Options configure the handler.
type Options struct {
	// Logger receives failed requests and internal errors. Nil discards.
	Logger *slog.Logger
	// KeepAlive is the time between two comments on an idle stream, so
	// that proxies keep it open. Default 15s.
	KeepAlive time.Duration
	// Done, when closed, ends every change stream, so that the server can
	// shut down (http.Server.Shutdown waits for streams that never idle).
	Done <-chan struct{}
}

// maxBody caps a request body.
const maxBody = 1 << 20

type handler struct {
	eval      Evaluator
	tokens    TokenStore
	log       *slog.Logger
	keepAlive time.Duration
	done      <-chan struct{}
}

// NewHandler returns the OFREP handler; mount it at "/ofrep/".
func NewHandler(eval Evaluator, tokens TokenStore, opts Options) http.Handler {
	h := &handler{eval: eval, tokens: tokens, log: opts.Logger, keepAlive: opts.KeepAlive, done: opts.Done}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	if h.keepAlive <= 0 {
		h.keepAlive = 15 * time.Second
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+PathEvaluate+"/{key}", h.authenticated(h.single))
	mux.HandleFunc("POST "+PathEvaluate, h.authenticated(h.bulk))
	mux.HandleFunc("GET "+PathStream, h.authenticated(h.stream))
	return mux
}

// authenticated lets a request through only with a flag client key.
func (h *handler) authenticated(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		secret := r.Header.Get("X-API-Key")
		if scheme, s, ok := strings.Cut(r.Header.Get("Authorization"), " "); ok && strings.EqualFold(scheme, "Bearer") {
			secret = strings.TrimSpace(s)
		}
		if secret == "" {
			w.Header().Set("WWW-Authenticate", `Bearer realm="shipgate-flags"`)
			writeJSON(w, http.StatusUnauthorized, generalError{ErrorDetails: "missing flag client key: send Authorization: Bearer <key> or X-API-Key: <key>"})
			return
		}
		tok, err := h.tokens.TokenByHash(r.Context(), auth.Hash(secret))
		switch {
		case errors.Is(err, rollout.ErrNotFound):
			w.Header().Set("WWW-Authenticate", `Bearer realm="shipgate-flags"`)
			writeJSON(w, http.StatusUnauthorized, generalError{ErrorDetails: "unknown flag client key"})
			return
		case err != nil:
			h.log.LogAttrs(r.Context(), slog.LevelError, "ofrep look up key", slog.String("error", err.Error()))
			writeJSON(w, http.StatusInternalServerError, generalError{ErrorDetails: "internal error; the server log has the details"})
			return
		}
		if tok.Role != auth.RoleFlagClient && tok.Role != auth.RoleViewer {
			writeJSON(w, http.StatusForbidden, generalError{ErrorDetails: fmt.Sprintf(
				"token %q has the %s role, which does not belong in an app; create a flag client key with `shipgate flags keys create`", tok.Name, tok.Role)})
			return
		}
		next(w, r)
	}
}

// success is an evaluationSuccess; Value and Variant are omitted where
// the client is to use its code default (a disabled flag, or a flag with
// no default variant that served its default), as flagd's OFREP does.
type success struct {
	Key      string         `json:"key"`
	Value    any            `json:"value,omitempty"`
	Reason   flags.Reason   `json:"reason"`
	Variant  string         `json:"variant,omitempty"`
	Metadata map[string]any `json:"metadata,omitempty"`
	hasValue bool
}

// MarshalJSON keeps a value of false, 0 or "" (omitempty would drop it).
func (s success) MarshalJSON() ([]byte, error) {
	type plain struct {
		Key      string         `json:"key"`
		Value    any            `json:"value"`
		Reason   flags.Reason   `json:"reason"`
		Variant  string         `json:"variant,omitempty"`
		Metadata map[string]any `json:"metadata,omitempty"`
	}
	if s.hasValue {
		return json.Marshal(plain{Key: s.Key, Value: s.Value, Reason: s.Reason, Variant: s.Variant, Metadata: s.Metadata})
	}
	type noValue struct {
		Key      string         `json:"key"`
		Reason   flags.Reason   `json:"reason"`
		Variant  string         `json:"variant,omitempty"`
		Metadata map[string]any `json:"metadata,omitempty"`
	}
	return json.Marshal(noValue{Key: s.Key, Reason: s.Reason, Variant: s.Variant, Metadata: s.Metadata})
}

// failure is an evaluationFailure or flagNotFound.
type failure struct {
	Key          string          `json:"key"`
	ErrorCode    flags.ErrorCode `json:"errorCode"`
	ErrorDetails string          `json:"errorDetails,omitempty"`
	Metadata     map[string]any  `json:"metadata,omitempty"`
}

// bulkFailure is a bulkEvaluationFailure.
type bulkFailure struct {
	ErrorCode    flags.ErrorCode `json:"errorCode"`
	ErrorDetails string          `json:"errorDetails,omitempty"`
}

type generalError struct {
	ErrorDetails string `json:"errorDetails"`
}

// eventStream is an eventStreams entry of a bulk response.
type eventStream struct {
	Type     string         `json:"type"`
	Endpoint streamEndpoint `json:"endpoint"`
}

type streamEndpoint struct {
	RequestURI string `json:"requestUri"`
}

type bulkResponse struct {
	Flags        []any          `json:"flags"`
	Metadata     map[string]any `json:"metadata,omitempty"`
	EventStreams []eventStream  `json:"eventStreams"`
}

// Answer returns the OFREP status and body of a result, exactly as
// flagd's OFREP service builds them (core/pkg/service/ofrep) but for the
// wording of errorDetails.
func Answer(r flags.Result) (int, any) { return answer(r) }

// answer turns a result into its OFREP body and status.
func answer(r flags.Result) (int, any) {
	if r.Reason != flags.ReasonError {
		return http.StatusOK, success{Key: r.Key, Value: r.Value, Reason: r.Reason, Variant: r.Variant, Metadata: primitives(r.Metadata),
			hasValue: r.Reason != flags.ReasonDisabled && r.Variant != ""}
	}
	status := http.StatusBadRequest
	if r.ErrorCode == flags.CodeFlagNotFound {
		status = http.StatusNotFound
	}
	return status, failure{Key: r.Key, ErrorCode: r.ErrorCode, ErrorDetails: r.ErrorDetails, Metadata: primitives(r.Metadata)}
}

// primitives keeps the metadata values OFREP allows: strings, numbers
// and booleans.
func primitives(m map[string]any) map[string]any {
	if len(m) == 0 {
		return nil
	}
	for _, v := range m {
		switch v.(type) {
		case string, float64, bool:
		default:
			out := map[string]any{}
			for k, v := range m {
				switch v.(type) {
				case string, float64, bool:
					out[k] = v
				}
			}
			return out
		}
	}
	return m
}

// readContext decodes {"context": {...}}. It returns the OFREP error
// code and details of a bad request.
func readContext(w http.ResponseWriter, r *http.Request) (map[string]any, flags.ErrorCode, string) {
	var body struct {
		Context json.RawMessage `json:"context"`
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
	if err := dec.Decode(&body); err != nil {
		return nil, flags.CodeParseError, "the request body is not a JSON object: " + err.Error()
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, flags.CodeParseError, "the request body must hold one JSON object and nothing after it"
	}
	if len(body.Context) == 0 || string(body.Context) == "null" {
		return map[string]any{}, "", ""
	}
	var ctx map[string]any
	if err := json.Unmarshal(body.Context, &ctx); err != nil || ctx == nil {
		return nil, flags.CodeInvalidContext, "context must be a JSON object"
	}
	// A targetingKey that is not a string is evaluated as flagd does: a
	// percentage split without one serves the default.
	return ctx, "", ""
}

func (h *handler) single(w http.ResponseWriter, r *http.Request) {
	key := r.PathValue("key")
	ctx, code, details := readContext(w, r)
	if code != "" {
		writeJSON(w, http.StatusBadRequest, failure{Key: key, ErrorCode: code, ErrorDetails: details})
		return
	}
	status, body := answer(h.eval.Evaluate(key, ctx))
	writeJSON(w, status, body)
}

func (h *handler) bulk(w http.ResponseWriter, r *http.Request) {
	ctx, code, details := readContext(w, r)
	if code != "" {
		writeJSON(w, http.StatusBadRequest, bulkFailure{ErrorCode: code, ErrorDetails: details})
		return
	}
	// The answer depends on the definitions and on the context, so the
	// ETag covers both: a client that changes its context gets a 200.
	if etag := bulkETag(h.eval.Snapshot().ETag(), ctx); etagMatches(r.Header.Get("If-None-Match"), etag) {
		w.Header().Set("ETag", etag)
		w.WriteHeader(http.StatusNotModified)
		return
	}
	results, defsETag := h.eval.EvaluateAll(ctx)
	resp := bulkResponse{
		Flags:        make([]any, 0, len(results)),
		EventStreams: []eventStream{{Type: "sse", Endpoint: streamEndpoint{RequestURI: PathStream}}},
	}
	for _, res := range results {
		_, body := answer(res)
		resp.Flags = append(resp.Flags, body)
	}
	w.Header().Set("ETag", bulkETag(defsETag, ctx))
	writeJSON(w, http.StatusOK, resp)
}

// bulkETag combines the definitions' ETag with the context's hash.
func bulkETag(defs string, ctx map[string]any) string {
	b, _ := json.Marshal(ctx)
	sum := sha256.Sum256(b)
	return `"` + strings.Trim(defs, `"`) + "-" + hex.EncodeToString(sum[:6]) + `"`
}

// etagMatches implements If-None-Match's weak comparison.
func etagMatches(header, etag string) bool {
	if header == "" {
		return false
	}
	for _, t := range strings.Split(header, ",") {
		t = strings.TrimPrefix(strings.TrimSpace(t), "W/")
		if t == "*" || t == etag {
			return true
		}
	}
	return false
}

// stream sends a refetchEvaluation event after every change, until the
// client goes away. The first event is sent at once, so that a client
// that connects after a change it missed refetches.
func (h *handler) stream(w http.ResponseWriter, r *http.Request) {
	rc := http.NewResponseController(w)
	changes, stop := h.eval.Watch()
	defer stop()
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	send := func() error {
		etag := h.eval.Snapshot().ETag()
		data, _ := json.Marshal(map[string]any{"type": "refetchEvaluation", "etag": strings.Trim(etag, `"`), "lastModified": time.Now().Unix()})
		if _, err := fmt.Fprintf(w, "event: message\nid: %s\ndata: %s\n\n", strings.Trim(etag, `"`), data); err != nil {
			return err
		}
		return rc.Flush()
	}
	if err := send(); err != nil {
		return
	}
	keep := time.NewTicker(h.keepAlive)
	defer keep.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-h.done:
			return
		case <-changes:
			if err := send(); err != nil {
				return
			}
		case <-keep.C:
			if _, err := io.WriteString(w, ": keep-alive\n\n"); err != nil {
				return
			}
			if err := rc.Flush(); err != nil {
				return
			}
		}
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	// The status is out; a failed write means the client went away.
	_ = json.NewEncoder(w).Encode(v)
}
