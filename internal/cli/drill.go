package cli

import (
	"github.com/spf13/cobra"

	"github.com/shipgate/shipgate/internal/rollout"
)

func (a *app) drillCommand() *cobra.Command {
	var (
		env string
		wf  waitFlags
	)
	cmd := &cobra.Command{
		Use:   "drill [APP]",
		Short: "Rehearse a rollback: bring the previous release back, check it, restore",
		Long: `Run a rollback drill in an environment: its previous release is brought
back and checked, then the current one is restored. A passed drill shows
that a rollback would work; the drill gate may require a recent one.

APP defaults to the app the server manages. With --wait the command
follows the drill like deploy --wait and exits 0 when it passed, 3 when it
failed or was rolled back, printing why, 1 on timeout.`,
		Example: `  shipgate drill --wait
  shipgate drill shop --env staging --wait -o json`,
		Args: argRange(0, 1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := wf.check(); err != nil {
				return err
			}
			c, app, err := a.appClient(cmd.Context(), args)
			if err != nil {
				return err
			}
			ro, err := c.Drill(cmd.Context(), rollout.DrillRequest{App: app, Env: env})
			if err != nil {
				return err
			}
			return a.follow(cmd.Context(), c, ro, wf, a.report)
		},
	}
	cmd.Flags().StringVar(&env, "env", "", envUsage)
	wf.register(cmd, "drill", "it passed or failed")
	return cmd
}
