package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"time"

	"github.com/shipgate/shipgate/internal/audit"
	"github.com/shipgate/shipgate/internal/auth"
	"github.com/shipgate/shipgate/internal/rollout"
)

// This file holds the token routes, for admins: make an API token for a
// person or a program, list the tokens, revoke one.

// TokenAdmin is what the token routes need from the token store. Each
// change is stored with its audit event in one transaction.
type TokenAdmin interface {
	// CreateTokenAudited stores t under the SHA-256 of its secret and
	// appends e. A token of the same name is an error wrapping
	// rollout.ErrConflict.
	CreateTokenAudited(ctx context.Context, t auth.Token, secretHash string, e audit.Event) error
	// ListTokens returns every token, flag client keys included, by name.
	ListTokens(ctx context.Context) ([]auth.Token, error)
	// DeleteTokenAudited deletes the token named name and appends the
	// event that event makes of it; an error wrapping rollout.ErrNotFound
	// when there is none.
	DeleteTokenAudited(ctx context.Context, name string, event func(auth.Token) audit.Event) error
}

// Audit actions of the token routes. The subject is "token/<name>" and
// the data holds the token's role.
const (
	ActionTokenCreate = audit.ActionTokenCreate
	ActionTokenRevoke = audit.ActionTokenRevoke
)

// adminTokenName is the name of the admin token the server makes at its
// first start and writes to the token file of its data dir.
const adminTokenName = "admin"

// tokenNamePattern is what a token name may look like: it is in actors
// ("user:<name>"), audit subjects and URL paths.
var tokenNamePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// TokenRequest creates an API token.
type TokenRequest struct {
	// Name is who or what holds the token, such as "ci" or "ana". What
	// the token does is recorded with the actor "user:<name>".
	Name string `json:"name"`
	// Role is viewer, deployer or admin.
	Role auth.Role `json:"role"`
}

// NewToken is a token just created. Its Secret is in this answer and
// nowhere else: the server keeps only its SHA-256.
type NewToken struct {
	Name   string    `json:"name"`
	Role   auth.Role `json:"role"`
	Secret string    `json:"secret"`
}

type tokenHandler struct {
	*handler
	store TokenAdmin
}

// mountTokens adds the token routes under /v1/tokens, for admin tokens.
func mountTokens(mux *http.ServeMux, h *handler, store TokenAdmin) {
	t := &tokenHandler{handler: h, store: store}
	mux.Handle("POST /v1/tokens", h.require(auth.RoleAdmin, t.create))
	mux.Handle("GET /v1/tokens", h.require(auth.RoleAdmin, t.list))
	mux.Handle("DELETE /v1/tokens/{name}", h.require(auth.RoleAdmin, t.revoke))
}

func validateTokenRequest(req TokenRequest) error {
	switch {
	case req.Name == "":
		return &rollout.FieldError{Field: "name", Message: "is required: name who or what will hold the token, such as ci"}
	case !tokenNamePattern.MatchString(req.Name):
		return &rollout.FieldError{Field: "name", Message: "must start with a letter or digit and hold at most 64 letters, digits, '.', '_' or '-'"}
	}
	switch req.Role {
	case auth.RoleViewer, auth.RoleDeployer, auth.RoleAdmin:
		return nil
	case "":
		return &rollout.FieldError{Field: "role", Message: "is required: viewer, deployer or admin"}
	case auth.RoleFlagClient:
		return &rollout.FieldError{Field: "role", Message: "flag-client keys are made with 'shipgate flags keys create NAME' (POST /v1/flags/keys), not as tokens"}
	}
	return &rollout.FieldError{Field: "role", Message: fmt.Sprintf("must be viewer, deployer or admin, not %q", req.Role)}
}

func (t *tokenHandler) create(w http.ResponseWriter, r *http.Request) {
	req, err := decodeJSON(w, r, validateTokenRequest)
	if err != nil {
		t.writeError(w, r, err)
		return
	}
	tok := auth.Token{Name: req.Name, Role: req.Role, CreatedAt: time.Now().UTC()}
	secret, err := createToken(r, t.store.CreateTokenAudited, tok)
	noStore(w)
	t.respond(w, r, http.StatusCreated, NewToken{Name: tok.Name, Role: tok.Role, Secret: secret}, err)
}

// createToken makes a secret for tok, stores tok under its hash with the
// audit event of its creation, and returns the secret. API tokens and flag
// client keys are both made here.
func createToken(r *http.Request, store func(context.Context, auth.Token, string, audit.Event) error, tok auth.Token) (string, error) {
	secret, err := auth.NewSecret()
	if err != nil {
		return "", err
	}
	if err := store(r.Context(), tok, auth.Hash(secret), tokenEvent(r, ActionTokenCreate, tok)); err != nil {
		return "", err
	}
	return secret, nil
}

// noStore keeps an answer that holds a secret out of every cache.
func noStore(w http.ResponseWriter) {
	w.Header().Set("Cache-Control", "no-store")
}

// tokenEvent is the audit event of a change to tok by the request's token.
func tokenEvent(r *http.Request, action string, tok auth.Token) audit.Event {
	return audit.Event{
		Actor:   actorFrom(r.Context()),
		Action:  action,
		Subject: "token/" + tok.Name,
		Outcome: "ok",
		Data:    map[string]string{"role": string(tok.Role)},
	}
}

func (t *tokenHandler) list(w http.ResponseWriter, r *http.Request) {
	tokens, err := t.store.ListTokens(r.Context())
	t.respond(w, r, http.StatusOK, orEmpty(tokens), err)
}

func (t *tokenHandler) revoke(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	// An admin that revoked the token it holds would lock itself out,
	// and "admin" would come back at the next start of the server.
	if name == tokenFrom(r.Context()).Name {
		msg := fmt.Sprintf("token %q is the one this request is made with, and a token cannot revoke itself; revoke it with another admin token", name)
		if name == adminTokenName {
			msg = `the admin token cannot revoke itself. To replace it, stop the server, delete the file "token" in its data dir and start it again: a new admin token is written there`
		}
		t.writeError(w, r, &APIError{Status: http.StatusConflict, Code: codeConflict, Message: msg})
		return
	}
	err := t.store.DeleteTokenAudited(r.Context(), name, func(tok auth.Token) audit.Event {
		return tokenEvent(r, ActionTokenRevoke, tok)
	})
	if errors.Is(err, rollout.ErrNotFound) {
		err = &APIError{Status: http.StatusNotFound, Code: codeNotFound, Message: fmt.Sprintf("no token is named %q; GET /v1/tokens lists them", name)}
	}
	if err != nil {
		t.writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
