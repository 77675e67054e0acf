package notify

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/shipgate/shipgate/internal/audit"
	"github.com/shipgate/shipgate/internal/retire"
)

func TestFromAudit(t *testing.T) {
	at := time.Date(2026, 11, 24, 3, 12, 0, 0, time.UTC)
	tests := []struct {
		name  string
		event audit.Event
		typ   string
		title string
	}{
		{"deploy", audit.Event{Action: audit.ActionDeploy, Subject: "shop/production/1.5.0"}, RolloutStarted, "shop 1.5.0 started rolling out in production"},
		{"step", audit.Event{Action: audit.ActionStep, Subject: "shop/production/1.5.0", Reason: "weight 25% for 10m", Data: map[string]string{"step": "3"}}, RolloutStep, "shop 1.5.0 is at step 3 (weight 25% for 10m) in production"},
		{"approval", audit.Event{Action: audit.ActionStep, Subject: "shop/production/1.5.0", Reason: "wait for approval"}, RolloutWaitingApproval, "shop 1.5.0 waits for approval in production"},
		{"succeeded", audit.Event{Action: audit.ActionSucceed, Subject: "shop/production/1.5.0"}, RolloutSucceeded, "shop 1.5.0 is live in production"},
		{"rolled back", audit.Event{Action: audit.ActionRolledBack, Subject: "shop/production/1.5.0"}, RolloutRolledBack, "shop 1.5.0 was rolled back in production"},
		{"bypass", audit.Event{Action: audit.ActionGateBypass, Subject: "shop/production/1.5.1", Data: map[string]string{"gate": "approval"}}, GateBypassed, "shop 1.5.1 skipped the approval gate (hotfix) in production"},
		{"guard", audit.Event{Action: "flag.guard.off", Subject: "flag/new-checkout"}, FlagGuardDisabled, "flag new-checkout was switched off by its guard"},
		{"paused", audit.Event{Action: audit.ActionPause, Subject: "shop/production/1.5.0", Reason: "gate error_rate <= 1% still inconclusive after 20m"}, RolloutPaused, "shop 1.5.0 is paused, waiting for a person in production"},
		{"retire re-enabled", audit.Event{Action: retire.ActionReenable, Subject: "route:production:/api/v1"}, RetireReenabled, "retiring route:production:/api/v1 stopped: it was used while watched, and is enabled again"},
		{"incident", audit.Event{Action: audit.ActionIncidentOpen, Subject: "incident/3", Reason: "checkout 500s", Data: map[string]string{"app": "shop", "env": "production"}}, IncidentOpened, "incident opened on shop/production: checkout 500s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.event.Seq, tt.event.Time = 812, at
			ev, ok := FromAudit(tt.event)
			if !ok || ev.Type != tt.typ || ev.Title != tt.title || ev.ID != "audit-812" || !ev.Time.Equal(at) {
				t.Fatalf("FromAudit = %+v, %v; want %s %q", ev, ok, tt.typ, tt.title)
			}
			for _, f := range []string{FormatJSON, FormatCDEvents, FormatSlack, FormatTeams} {
				b, err := Payload(f, ev)
				if err != nil || !json.Valid(b) {
					t.Fatalf("Payload(%s) = %s, %v", f, b, err)
				}
			}
		})
	}
	for _, action := range []string{audit.ActionRelease, audit.ActionTokenCreate, "flag.update"} {
		if _, ok := FromAudit(audit.Event{Action: action}); ok {
			t.Errorf("%s made a notification", action)
		}
	}
	if _, err := Payload("xml", Event{}); err == nil {
		t.Error("an unknown format was accepted")
	}
}
