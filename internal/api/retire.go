package api

import (
	"context"
	"net/http"
	"strconv"

	"github.com/shipgate/shipgate/internal/auth"
	"github.com/shipgate/shipgate/internal/retire"
)

// This file holds the retirement routes: retire a route of the builtin
// router safely, follow it, undo it.

// RetireService runs retirements.
type RetireService interface {
	Retire(ctx context.Context, req RetireRequest) (retire.Retirement, error)
	Get(ctx context.Context, id int64) (retire.Retirement, error)
	Undo(ctx context.Context, id int64, actor, reason string) (retire.Retirement, error)
}

// RetireRequest asks to retire a subject.
type RetireRequest struct {
	// Kind is route.
	Kind retire.Kind `json:"kind"`
	// App is the app whose router serves the route; it may be left out
	// when the server manages one app.
	App string `json:"app,omitempty"`
	// Env is the environment whose router serves the route.
	Env string `json:"env"`
	// Subject is the route's path prefix, such as /api/v1/legacy.
	Subject string `json:"subject"`
	// Reason says why; it goes into the audit log.
	Reason string `json:"reason"`
	// Actor is set by the server from the token.
	Actor string `json:"-"`
}

// UndoRequest undoes a retirement.
type UndoRequest struct {
	Reason string `json:"reason"`
}

type retireHandler struct {
	*handler
	svc RetireService
}

func mountRetire(mux *http.ServeMux, h *handler, svc RetireService) {
	rh := &retireHandler{handler: h, svc: svc}
	mux.Handle("POST /v1/retirements", h.require(auth.RoleDeployer, rh.start))
	mux.Handle("GET /v1/retirements/{id}", h.require(auth.RoleViewer, rh.get))
	mux.Handle("POST /v1/retirements/{id}/undo", h.require(auth.RoleDeployer, rh.undo))
}

func (rh *retireHandler) start(w http.ResponseWriter, r *http.Request) {
	req, err := decodeJSON[RetireRequest](w, r, nil)
	if err != nil {
		rh.writeError(w, r, err)
		return
	}
	req.Actor = actorFrom(r.Context())
	ret, err := rh.svc.Retire(r.Context(), req)
	rh.respond(w, r, http.StatusCreated, ret, err)
}

func retirementID(r *http.Request) (int64, error) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id < 1 {
		return 0, invalid("id", "a retirement id is a positive integer")
	}
	return id, nil
}

func (rh *retireHandler) get(w http.ResponseWriter, r *http.Request) {
	id, err := retirementID(r)
	if err != nil {
		rh.writeError(w, r, err)
		return
	}
	ret, err := rh.svc.Get(r.Context(), id)
	rh.respond(w, r, http.StatusOK, ret, err)
}

func (rh *retireHandler) undo(w http.ResponseWriter, r *http.Request) {
	id, err := retirementID(r)
	if err != nil {
		rh.writeError(w, r, err)
		return
	}
	req, err := decodeJSON[UndoRequest](w, r, nil)
	if err != nil {
		rh.writeError(w, r, err)
		return
	}
	ret, err := rh.svc.Undo(r.Context(), id, actorFrom(r.Context()), req.Reason)
	rh.respond(w, r, http.StatusOK, ret, err)
}

// Retire starts retiring a route.
func (c *Client) Retire(ctx context.Context, req RetireRequest) (retire.Retirement, error) {
	var ret retire.Retirement
	err := c.do(ctx, http.MethodPost, "/v1/retirements", req, &ret)
	return ret, err
}

// GetRetirement returns a retirement.
func (c *Client) GetRetirement(ctx context.Context, id int64) (retire.Retirement, error) {
	var ret retire.Retirement
	err := c.do(ctx, http.MethodGet, "/v1/retirements/"+strconv.FormatInt(id, 10), nil, &ret)
	return ret, err
}

// UndoRetirement undoes a retirement that is not over.
func (c *Client) UndoRetirement(ctx context.Context, id int64, reason string) (retire.Retirement, error) {
	var ret retire.Retirement
	err := c.do(ctx, http.MethodPost, "/v1/retirements/"+strconv.FormatInt(id, 10)+"/undo", UndoRequest{Reason: reason}, &ret)
	return ret, err
}
