package cli

import (
	"time"

	"github.com/spf13/cobra"

	"github.com/shipgate/shipgate/internal/rollout"
)

func (a *app) drillCommand() *cobra.Command {
	var (
		env     string
		wait    bool
		timeout time.Duration
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
			if timeout <= 0 {
				return invalidf("invalid --timeout %s: want a positive duration such as 30m", timeout)
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			app, err := appArg(cmd.Context(), c, args)
			if err != nil {
				return err
			}
			ro, err := c.Drill(cmd.Context(), rollout.DrillRequest{App: app, Env: env})
			if err != nil {
				return err
			}
			if wait {
				return a.waitAndReport(cmd.Context(), c, ro, timeout)
			}
			return a.printStarted(ro)
		},
	}
	f := cmd.Flags()
	f.StringVar(&env, "env", "", `environment (default "production" when the app has it, else its only one)`)
	f.BoolVar(&wait, "wait", false, "follow the drill until it passed or failed")
	f.DurationVar(&timeout, "timeout", 30*time.Minute, "with --wait, how long to wait before giving up (the drill goes on)")
	return cmd
}
