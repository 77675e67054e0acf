package cli

import (
	"github.com/spf13/cobra"

	"github.com/shipgate/shipgate/internal/rollout"
)

func (a *app) approveCommand() *cobra.Command {
	var req rollout.ApproveRequest
	cmd := &cobra.Command{
		Use:   "approve [APP]",
		Short: "Approve the rollout waiting for approval in an environment",
		Long: `Approve the rollout of APP that waits at its approval step in an
environment, so that it goes on. The approval is recorded with your token's
name and the comment; a change to the release's checks after it voids it.
APP defaults to the app the server manages.`,
		Example: `  shipgate approve
  shipgate approve shop --env production --comment "dashboards look fine"`,
		Args: argRange(0, 1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, app, err := a.appClient(cmd.Context(), args)
			if err != nil {
				return err
			}
			req.App = app
			ro, err := c.Approve(cmd.Context(), req)
			if err != nil {
				return err
			}
			if a.jsonOutput() {
				return a.printJSON(ro)
			}
			if ro.Approval == nil && ro.ApprovalRule != nil && len(ro.Approvals) < ro.ApprovalRule.Required {
				a.printf("rollout %d: %d of %d approvals for %s %s in %s; it waits for another person's\n",
					ro.ID, len(ro.Approvals), ro.ApprovalRule.Required, ro.App, ro.Version, ro.Env)
				return nil
			}
			by := ""
			if ro.Approval != nil {
				by = " by " + ro.Approval.By
			}
			a.printf("rollout %d approved%s: %s %s goes on in %s\n", ro.ID, by, ro.App, ro.Version, ro.Env)
			a.printf("follow it with: shipgate status %s\n", ro.App)
			return nil
		},
	}
	cmd.Flags().StringVar(&req.Env, "env", "", envUsage)
	cmd.Flags().StringVar(&req.Comment, "comment", "", "a note recorded with the approval")
	return cmd
}
