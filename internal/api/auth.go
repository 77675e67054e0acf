package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/shipgate/shipgate/internal/auth"
	"github.com/shipgate/shipgate/internal/rollout"
)

// tokenKey is the context key of the auth.Token of a request.
type tokenKey struct{}

// actorSlotKey is the context key of a *string that the request log reads
// after the handler ran, so that the log line names the actor.
type actorSlotKey struct{}

// require authenticates the request's bearer token and lets it through to
// next only if the token's role allows need.
func (h *handler) require(need auth.Role, next http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok, err := h.authenticate(r)
		if err != nil {
			h.writeError(w, r, err)
			return
		}
		if slot, ok := r.Context().Value(actorSlotKey{}).(*string); ok {
			*slot = actorOf(tok)
		}
		if !tok.Role.Allows(need) {
			h.writeError(w, r, &APIError{
				Status:  http.StatusForbidden,
				Code:    codeForbidden,
				Message: fmt.Sprintf("this needs the %s role; token %q has the %s role", need, tok.Name, tok.Role),
			})
			return
		}
		next(w, r.WithContext(context.WithValue(r.Context(), tokenKey{}, tok)))
	})
}

// authenticate returns the token of the request's Authorization header.
func (h *handler) authenticate(r *http.Request) (auth.Token, error) {
	secret, ok := bearer(r.Header.Get("Authorization"))
	if !ok {
		return auth.Token{}, &APIError{
			Status:  http.StatusUnauthorized,
			Code:    codeUnauthorized,
			Message: "missing token: send the header Authorization: Bearer <token>",
		}
	}
	tok, err := h.tokens.TokenByHash(r.Context(), auth.Hash(secret))
	if errors.Is(err, rollout.ErrNotFound) {
		return auth.Token{}, &APIError{
			Status:  http.StatusUnauthorized,
			Code:    codeUnauthorized,
			Message: "unknown token",
		}
	}
	if err != nil {
		// Not the secret: only its lookup failed.
		return auth.Token{}, fmt.Errorf("look up token: %w", err)
	}
	return tok, nil
}

// bearer returns the secret of an "Authorization: Bearer <secret>" header.
// The scheme is case-insensitive (RFC 9110, section 11.1).
func bearer(header string) (string, bool) {
	scheme, secret, ok := strings.Cut(header, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	secret = strings.TrimSpace(secret)
	return secret, secret != ""
}

func actorOf(tok auth.Token) string { return "user:" + tok.Name }

// tokenFrom returns the token of an authenticated request.
func tokenFrom(ctx context.Context) auth.Token {
	tok, _ := ctx.Value(tokenKey{}).(auth.Token)
	return tok
}

// actorFrom returns the actor of an authenticated request.
func actorFrom(ctx context.Context) string { return actorOf(tokenFrom(ctx)) }
