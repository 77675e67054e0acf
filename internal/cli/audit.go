package cli

import (
	"strconv"

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
				t.row(strconv.FormatInt(e.Seq, 10), clock(e.Time, now), e.Actor, e.Action, e.Subject, e.Reason)
			}
			return t.flush()
		},
	}
	cmd.Flags().StringVar(&f.Subject, "subject", "", `only events whose subject starts with this, e.g. "shop/production" or "rollout/42"`)
	cmd.Flags().StringVar(&f.Action, "action", "", "only events with this action, e.g. deploy or rollback.manual")
	cmd.Flags().IntVar(&f.Limit, "limit", 100, "at most this many events, 1 to 1000")
	return cmd
}
