package cli

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/shipgate/shipgate/internal/audit"
)

func (a *app) auditCommand() *cobra.Command {
	var f audit.Filter
	cmd := &cobra.Command{
		Use:   "audit",
		Short: "List audit events, newest first: who did what, when and why",
		Long: `List the audit log, newest first. Every deploy, step, promotion and
rollback is recorded with its actor ("user:<token name>" or "shipgate" for
the engine), subject and reason.`,
		Example: `  shipgate audit
  shipgate audit --action rollback.manual
  shipgate audit --subject shop/production --limit 500 -o json`,
		Args: argRange(0, 0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if f.Limit < 1 || f.Limit > 1000 {
				return invalidf("invalid --limit %d: want 1 to 1000", f.Limit)
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			events, err := c.Audit(cmd.Context(), f)
			if err != nil {
				return err
			}
			if a.jsonOutput() {
				return a.printJSON(events)
			}
			if len(events) == 0 {
				a.printf("no audit events\n")
				return nil
			}
			now := a.now()
			t := newTable(a.stdout, "SEQ", "TIME", "ACTOR", "ACTION", "SUBJECT", "REASON")
			for _, e := range events {
				t.row(strconv.FormatInt(e.Seq, 10), clock(e.Time, now), e.Actor, e.Action, e.Subject, auditReason(e))
			}
			return t.flush()
		},
	}
	cmd.AddCommand(a.auditVerifyCommand())
	cmd.Flags().StringVar(&f.Subject, "subject", "", `only events whose subject starts with this, e.g. "shop/production" or "flag/checkout"; "rollout/42" selects the events of rollout 42`)
	cmd.Flags().StringVar(&f.Action, "action", "", "only events with this action, e.g. deploy or rollback.manual")
	cmd.Flags().IntVar(&f.Limit, "limit", 100, "at most this many events, 1 to 1000")
	return cmd
}

// auditReason is an event's reason, followed by its outcome when that is
// not "ok" (a reload refused, a drill failed) and the error it recorded:
// without it a refused SIGHUP reload reads as a done one.
func auditReason(e audit.Event) string {
	if e.Outcome == "" || e.Outcome == "ok" {
		return e.Reason
	}
	out := e.Outcome
	if msg := e.Data["error"]; msg != "" {
		out += ": " + strings.ReplaceAll(msg, "\n", "; ")
	}
	if e.Reason == "" {
		return "(" + out + ")"
	}
	return e.Reason + " (" + out + ")"
}

// auditVerifyResult is the output of audit verify.
type auditVerifyResult struct {
	OK     bool   `json:"ok"`
	Events int    `json:"events"`
	Last   int64  `json:"last_seq"`
	Head   string `json:"head_hash,omitempty"`
	Error  string `json:"error,omitempty"`
	// BadSeq is the first event that does not verify.
	BadSeq int64 `json:"bad_seq,omitempty"`
}

func (a *app) auditVerifyCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "verify",
		Short: "Check the audit log's hash chain, event by event",
		Long: `Read the whole audit log from the server, oldest first, and check on this
machine that every event's hash is the SHA-256 of its content and of the
hash before it (docs/api.md describes the encoding), so that an event
changed, removed or inserted in the database is found. Exit 0 when the
chain holds, 1 at the first event that breaks it (named in the error).`,
		Example: `  shipgate audit verify
  shipgate audit verify -o json`,
		Args: argRange(0, 0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			const page = 1000
			res := auditVerifyResult{OK: true}
			var prev *audit.Event
			for from := int64(1); ; {
				events, err := c.AuditChain(cmd.Context(), from, page)
				if err != nil {
					return err
				}
				check := events
				if prev != nil {
					// Each page is checked together with the event before it,
					// so that the chain holds across pages.
					check = append([]audit.Event{*prev}, events...)
				}
				if err := audit.Verify(check); err != nil {
					res.OK, res.Error = false, err.Error()
					var ce *audit.ChainError
					if errors.As(err, &ce) {
						res.BadSeq = ce.Seq
					}
					break
				}
				res.Events += len(events)
				if len(events) == 0 {
					break
				}
				last := events[len(events)-1]
				prev, res.Last, res.Head = &last, last.Seq, last.Hash
				if len(events) < page {
					break
				}
				from = last.Seq + 1
			}
			if a.jsonOutput() {
				if err := a.printJSON(res); err != nil {
					return err
				}
			} else if res.OK {
				a.printf("audit chain ok: %d events, seq 1 to %d, head %s\n", res.Events, res.Last, orDash(res.Head))
			}
			if !res.OK {
				return &ExitError{Code: ExitFailure, Err: fmt.Errorf("audit chain broken after %d good events: %s", res.Events, res.Error)}
			}
			return nil
		},
	}
}
