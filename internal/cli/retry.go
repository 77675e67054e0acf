package cli

import (
	"github.com/spf13/cobra"

	"github.com/shipgate/shipgate/internal/rollout"
)

func (a *app) retryCommand() *cobra.Command {
	var (
		env string
		wf  waitFlags
	)
	cmd := &cobra.Command{
		Use:   "retry [APP]",
		Short: "Deploy again an environment's last deploy, rolled back or failed",
		Long: `Deploy again the release of an environment's last deploy when it was
rolled back or failed (aborted by a person, a gate or an instance), with the
same release and variables. The gates are checked again.

APP defaults to the app the server manages. With --wait the command
follows the rollout like deploy --wait.`,
		Example: `  shipgate retry --wait
  shipgate retry shop --env staging`,
		Args: argRange(0, 1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := wf.check(); err != nil {
				return err
			}
			c, app, err := a.appClient(cmd.Context(), args)
			if err != nil {
				return err
			}
			ro, err := c.Retry(cmd.Context(), rollout.RetryRequest{App: app, Env: env})
			if err != nil {
				return err
			}
			return a.follow(cmd.Context(), c, ro, wf)
		},
	}
	cmd.Flags().StringVar(&env, "env", "", envUsage)
	wf.register(cmd, "retry", "it is done")
	return cmd
}
