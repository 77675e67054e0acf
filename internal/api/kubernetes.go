package api

import (
	"context"
	"net/http"
	"strings"

	"github.com/shipgate/shipgate/internal/auth"
	"github.com/shipgate/shipgate/internal/rollout"
)

// KubernetesService hands an environment on Kubernetes back to its team
// (shipgate kubernetes leave).
type KubernetesService interface {
	Leave(ctx context.Context, req rollout.LeaveRequest) (rollout.LeaveReport, error)
}

// mountKubernetes serves POST /v1/kubernetes/leaves to admin tokens.
func mountKubernetes(mux *http.ServeMux, h *handler, svc KubernetesService) {
	mux.Handle("POST /v1/kubernetes/leaves", h.require(auth.RoleAdmin, func(w http.ResponseWriter, r *http.Request) {
		req, err := decodeJSON(w, r, func(req rollout.LeaveRequest) error {
			if err := requireApp(req.App); err != nil {
				return err
			}
			if req.Env == "" {
				return &rollout.FieldError{Field: "env", Message: "is required: name the environment to leave"}
			}
			if strings.TrimSpace(req.Reason) == "" {
				return &rollout.FieldError{Field: "reason", Message: "is required: say why Shipgate leaves " + req.Env}
			}
			return nil
		})
		if err != nil {
			h.writeError(w, r, err)
			return
		}
		req.Actor = actorFrom(r.Context())
		rep, err := svc.Leave(r.Context(), req)
		h.respond(w, r, http.StatusOK, rep, err)
	}))
}

// LeaveKubernetes takes Shipgate's routing out of an environment on
// Kubernetes (admin).
func (c *Client) LeaveKubernetes(ctx context.Context, req rollout.LeaveRequest) (rollout.LeaveReport, error) {
	var out rollout.LeaveReport
	err := c.do(ctx, http.MethodPost, "/v1/kubernetes/leaves", req, &out)
	return out, err
}
