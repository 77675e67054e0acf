package api

import (
	"context"
	"net/http"
	"strconv"
	"strings"

	"github.com/shipgate/shipgate/internal/auth"
	"github.com/shipgate/shipgate/internal/rollout"
)

// ConfigFile is one app file shipgate apply sends: its path on the
// client, which problems name, and its content.
type ConfigFile struct {
	Name    string `json:"name"`
	Content string `json:"content"`
}

// ApplyRequest is the body of POST /v1/config: the whole set of app files
// the server is to manage from now on.
type ApplyRequest struct {
	Files  []ConfigFile `json:"files"`
	Reason string       `json:"reason,omitempty"`
}

// ApplyResult says what an apply (or a SIGHUP reload) changed.
type ApplyResult struct {
	// Apps are the apps managed after it, in config order.
	Apps []string `json:"apps"`
	// Added, Removed and Changed are the apps it started, stopped and
	// whose config it replaced; Unchanged the others.
	Added     []string `json:"added"`
	Removed   []string `json:"removed"`
	Changed   []string `json:"changed"`
	Unchanged []string `json:"unchanged"`
	// Warnings are what went wrong once the new config was in place (a
	// router that would not stop): the apply is done, but look.
	Warnings []string `json:"warnings,omitempty"`
	// Revision is, on servers sharing a PostgreSQL store, the config
	// revision recorded in the store that every server now runs.
	Revision int64 `json:"revision,omitempty"`
}

// ConfigService applies the app files of shipgate apply.
type ConfigService interface {
	ApplyConfig(ctx context.Context, req ApplyRequest, actor string) (ApplyResult, error)
}

func mountConfig(mux *http.ServeMux, h *handler, svc ConfigService) {
	mux.Handle("POST /v1/config", h.require(auth.RoleAdmin, func(w http.ResponseWriter, r *http.Request) {
		req, err := decodeJSON(w, r, func(req ApplyRequest) error {
			if len(req.Files) == 0 {
				return &rollout.FieldError{Field: "files", Message: "is required: send every app file the server is to manage"}
			}
			for i, f := range req.Files {
				if strings.TrimSpace(f.Name) == "" {
					return &rollout.FieldError{Field: "files[" + strconv.Itoa(i) + "].name", Message: "is required"}
				}
			}
			return nil
		})
		if err != nil {
			h.writeError(w, r, err)
			return
		}
		res, err := svc.ApplyConfig(r.Context(), req, actorFrom(r.Context()))
		h.respond(w, r, http.StatusOK, res, err)
	}))
}

// ApplyConfig sends app files for the server to manage (admin).
func (c *Client) ApplyConfig(ctx context.Context, req ApplyRequest) (ApplyResult, error) {
	var out ApplyResult
	err := c.do(ctx, http.MethodPost, "/v1/config", req, &out)
	return out, err
}
