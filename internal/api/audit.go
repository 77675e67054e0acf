package api

import (
	"context"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/shipgate/shipgate/internal/audit"
	"github.com/shipgate/shipgate/internal/flags"
	"github.com/shipgate/shipgate/internal/retire"
	"github.com/shipgate/shipgate/internal/rollout"
	"github.com/shipgate/shipgate/internal/testsignal"
)

// knownActions are the audit actions shipgate records. An action filter
// outside them that matches nothing is refused as a typo; one that
// matches events (an action added since) is answered.
var knownActions = []string{
	audit.ActionDeploy, audit.ActionStep, audit.ActionPromote, audit.ActionSucceed,
	audit.ActionRollbackAuto, audit.ActionRollbackManual, audit.ActionRolledBack, audit.ActionGateBypass,
	audit.ActionApprove, audit.ActionApprovalVoid, audit.ActionRelease, audit.ActionDrill,
	audit.ActionMigrateUp, audit.ActionMigrateDown, audit.ActionMigrateFailed,
	audit.ActionTokenCreate, audit.ActionTokenRevoke, audit.ActionConfigApply, audit.ActionClusterChange,
	audit.ActionPause, audit.ActionPromoteManual, audit.ActionResume, audit.ActionGateRefuse,
	audit.ActionIncidentOpen, audit.ActionIncidentResolve, audit.ActionReleaseChange,
	audit.ActionNotifyConfig, audit.ActionDeployExternal, testsignal.ActionTestRun,
	retire.ActionStart, retire.ActionRefuse, retire.ActionBackup, retire.ActionFail, retire.ActionDisable,
	retire.ActionReenable, retire.ActionDelete, retire.ActionUndo, retire.ActionReference,
	flags.ActionCreate, flags.ActionUpdate, flags.ActionEnable, flags.ActionDisable, flags.ActionTarget,
	flags.ActionArchive, flags.ActionDelete, flags.ActionImport, flags.ActionGuardStep, flags.ActionGuardOff,
	flags.ActionGuardDone, flags.ActionSegmentSet, flags.ActionSegmentDel,
}

// rolloutSubject is a subject filter naming one rollout, "rollout/42".
var rolloutSubject = regexp.MustCompile(`^rollout/([0-9]+)$`)

// auditEvents answers an audit query. A subject "rollout/N" selects the
// events of rollout N (their subject is app/env/version, and their data
// holds the rollout's id).
func (h *handler) auditEvents(ctx context.Context, f audit.Filter) ([]audit.Event, error) {
	var events []audit.Event
	var err error
	if m := rolloutSubject.FindStringSubmatch(f.Subject); m != nil {
		id, perr := strconv.ParseInt(m[1], 10, 64)
		if perr != nil {
			return nil, &rollout.FieldError{Field: "subject", Message: "rollout id out of range"}
		}
		if events, err = h.rolloutEvents(ctx, id, f); err != nil {
			return nil, err
		}
	} else if events, err = h.svc.Audit(ctx, f); err != nil {
		return nil, err
	}
	if f.Action != "" && len(events) == 0 && !slices.Contains(knownActions, f.Action) {
		return nil, &rollout.FieldError{Field: "action", Message: fmt.Sprintf("unknown action %q; the actions are %s", f.Action, strings.Join(knownActions, ", "))}
	}
	return events, nil
}

// rolloutEvents returns the events of rollout id matching f, newest first.
func (h *handler) rolloutEvents(ctx context.Context, id int64, f audit.Filter) ([]audit.Event, error) {
	ro, err := h.svc.GetRollout(ctx, id)
	if err != nil {
		return nil, err
	}
	limit := f.Limit
	if limit <= 0 {
		limit = 100
	}
	f.Subject, f.Limit = ro.App+"/"+ro.Env+"/"+ro.Version, maxListLimit
	all, err := h.svc.Audit(ctx, f)
	if err != nil {
		return nil, err
	}
	want := strconv.FormatInt(id, 10)
	var out []audit.Event
	for _, e := range all {
		if e.Data["rollout"] == want && len(out) < limit {
			out = append(out, e)
		}
	}
	return out, nil
}

// AuditChainReader reads the audit log in ascending order from a sequence
// number on: the store's AuditChain.
type AuditChainReader interface {
	AuditChain(ctx context.Context, fromSeq int64) ([]audit.Event, error)
}

// auditChain answers GET /v1/audit/chain?from=SEQ&limit=N: at most N
// events (default and at most 1000) from seq SEQ (default 1) on, oldest
// first, so that a client can page through the whole chain and check
// every hash itself, trusting nothing the server says about it.
func (h *handler) auditChain(store AuditChainReader) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		limit, err := queryLimit(r, maxListLimit)
		if err != nil {
			h.writeError(w, r, err)
			return
		}
		from := int64(1)
		if s := r.URL.Query().Get("from"); s != "" {
			if from, err = strconv.ParseInt(s, 10, 64); err != nil || from < 1 {
				h.writeError(w, r, &rollout.FieldError{Field: "from", Message: "must be a sequence number, 1 or more"})
				return
			}
		}
		events, err := store.AuditChain(r.Context(), from)
		if len(events) > limit {
			events = events[:limit]
		}
		h.respond(w, r, http.StatusOK, orEmpty(events), err)
	}
}
