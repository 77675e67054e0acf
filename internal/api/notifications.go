package api

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"

	"github.com/shipgate/shipgate/internal/auth"
	"github.com/shipgate/shipgate/internal/notify"
	"github.com/shipgate/shipgate/internal/rollout"
)

// NotificationLister lists the webhook deliveries of the outbox.
type NotificationLister interface {
	ListNotifications(ctx context.Context, state string, limit int) ([]notify.Delivery, error)
}

func mountNotifications(mux *http.ServeMux, h *handler, l NotificationLister) {
	mux.Handle("GET /v1/notifications", h.require(auth.RoleViewer, func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		state := q.Get("state")
		if state != "" && !slices.Contains([]string{notify.StatePending, notify.StateSent, notify.StateFailed}, state) {
			h.writeError(w, r, &rollout.FieldError{Field: "state", Message: fmt.Sprintf("%q is not pending, sent or failed", state)})
			return
		}
		limit := 100
		if s := q.Get("limit"); s != "" {
			n, err := strconv.Atoi(s)
			if err != nil || n < 1 || n > maxListLimit {
				h.writeError(w, r, &rollout.FieldError{Field: "limit", Message: "must be a number from 1 to 1000"})
				return
			}
			limit = n
		}
		ds, err := l.ListNotifications(r.Context(), state, limit)
		if ds == nil {
			ds = []notify.Delivery{}
		}
		h.respond(w, r, http.StatusOK, ds, err)
	}))
}

// Notifications lists webhook deliveries in state ("" for all), newest first.
func (c *Client) Notifications(ctx context.Context, state string, limit int) ([]notify.Delivery, error) {
	v := url.Values{}
	if state != "" {
		v.Set("state", state)
	}
	if limit > 0 {
		v.Set("limit", strconv.Itoa(limit))
	}
	var out []notify.Delivery
	err := c.do(ctx, http.MethodGet, withQuery("/v1/notifications", v), nil, &out)
	return out, err
}
