package api_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/shipgate/shipgate/internal/api"
	"github.com/shipgate/shipgate/internal/audit"
	"github.com/shipgate/shipgate/internal/auth"
	"github.com/shipgate/shipgate/internal/rollout"
)

// auditService holds audit events and filters them as the store does.
type auditService struct {
	*recordingService
	events []audit.Event
}

func (s auditService) Audit(_ context.Context, f audit.Filter) ([]audit.Event, error) {
	var out []audit.Event
	for _, e := range s.events {
		if strings.HasPrefix(e.Subject, f.Subject) && (f.Action == "" || e.Action == f.Action) {
			out = append(out, e)
		}
	}
	return out, nil
}

func (s auditService) GetRollout(ctx context.Context, id int64) (rollout.Rollout, error) {
	r, err := s.recordingService.GetRollout(ctx, id)
	r.Env = "production"
	return r, err
}

// TestHandler_AuditFilters is item 15 of issue 10: the docs promise
// --subject rollout/13, but events' subjects are app/env/version, so it
// matched nothing; and a mistyped --action answered an empty list.
func TestHandler_AuditFilters(t *testing.T) {
	svc := auditService{recordingService: &recordingService{}, events: []audit.Event{
		{Seq: 3, Action: audit.ActionRolledBack, Subject: "shop/production/1.1.0", Data: map[string]string{"rollout": "7"}},
		{Seq: 2, Action: audit.ActionRollbackAuto, Subject: "shop/production/1.1.0", Data: map[string]string{"rollout": "6"}},
		{Seq: 1, Action: audit.ActionDeploy, Subject: "shop/production/1.1.0", Data: map[string]string{"rollout": "7"}},
	}}
	secret := newSecret(t)
	srv := httptest.NewServer(api.NewHandler(svc, tokenMap{auth.Hash(secret): {Name: "dash", Role: auth.RoleViewer}}, api.HandlerOptions{App: "shop"}))
	t.Cleanup(srv.Close)
	c := api.NewClient(srv.URL, secret, srv.Client())

	got, err := c.Audit(t.Context(), audit.Filter{Subject: "rollout/7"})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Seq != 3 || got[1].Seq != 1 {
		t.Fatalf("rollout/7 events = %+v, want seq 3 and 1", got)
	}
	_, err = c.Audit(t.Context(), audit.Filter{Action: "bogus"})
	if ae := asAPIError(t, err); ae.Status != http.StatusBadRequest || ae.Field != "action" {
		t.Fatalf("action bogus: %+v, want 400 on action", ae)
	}
	if _, err := c.Audit(t.Context(), audit.Filter{Action: audit.ActionDeploy}); err != nil {
		t.Fatalf("a known action: %v", err)
	}
	_, err = c.Audit(t.Context(), audit.Filter{Subject: "rollout/99"})
	if ae := asAPIError(t, err); ae.Status != http.StatusNotFound || strings.HasSuffix(ae.Message, ": not found") {
		t.Fatalf("rollout/99: %+v, want a 404 whose message does not end in the kind", ae)
	}
}
