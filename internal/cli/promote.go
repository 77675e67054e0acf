package cli

import (
	"strings"

	"github.com/spf13/cobra"

	"github.com/shipgate/shipgate/internal/rollout"
)

func (a *app) promoteCommand() *cobra.Command {
	var req rollout.PromoteRequest
	cmd := &cobra.Command{
		Use:   "promote [APP] --reason TEXT",
		Short: "End the running bake as passed: a paused rollout goes on",
		Long: `End the bake of the rollout running in an environment as if its gates
had passed, so that it goes on with its next step. A rollout paused because
a gate stayed inconclusive (analysis.on_inconclusive: pause) waits for
this, or for shipgate rollback. The reason is required and goes to the
audit log with your token's name. APP defaults to the app the server
manages.

--full skips every remaining step's bake and analysis as well: the release
goes straight to 100% (canary weights and blue-green's observation are
left out; rolling batches replace the old instances without baking). The
audit event says full and what was skipped.`,
		Example: `  shipgate promote --reason "low traffic tonight; dashboards look fine"
  shipgate promote shop --env staging --reason "staging has no users"
  shipgate promote shop --full --reason "fix for the outage, verified on staging"`,
		Args: argRange(0, 1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if strings.TrimSpace(req.Reason) == "" {
				return invalidf("--reason is required: say why the rest of the bake is skipped")
			}
			c, app, err := a.appClient(cmd.Context(), args)
			if err != nil {
				return err
			}
			req.App = app
			ro, err := c.Promote(cmd.Context(), req)
			if err != nil {
				return err
			}
			if a.jsonOutput() {
				return a.printJSON(ro)
			}
			if req.Full {
				a.printf("rollout %d: every remaining bake skipped by you; %s %s goes to 100%% in %s\n", ro.ID, ro.App, ro.Version, ro.Env)
			} else {
				a.printf("rollout %d: bake ended by you; %s %s goes on in %s\n", ro.ID, ro.App, ro.Version, ro.Env)
			}
			a.printf("follow it with: shipgate status %s\n", ro.App)
			return nil
		},
	}
	cmd.Flags().StringVar(&req.Env, "env", "", envUsage)
	cmd.Flags().BoolVar(&req.Full, "full", false, "skip every remaining bake and analysis too: straight to 100% on the new release")
	cmd.Flags().StringVar(&req.Reason, "reason", "", "why the rest of the bake is skipped (required; recorded in the audit log)")
	return cmd
}
