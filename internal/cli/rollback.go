package cli

import (
	"context"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/shipgate/shipgate/internal/api"
	"github.com/shipgate/shipgate/internal/rollout"
)

func (a *app) rollbackCommand() *cobra.Command {
	var (
		env     string
		reason  string
		wait    bool
		timeout time.Duration
	)
	cmd := &cobra.Command{
		Use:   "rollback [APP] --reason TEXT",
		Short: "Put the last good release back",
		Long: `Put an environment back on its last good release: the stable one while a
rollout runs (traffic moves back at once), the previous one otherwise. The
reason is required and goes to the audit log with your token's name.

APP defaults to the app the server manages. With --wait the command
follows the rollback like deploy --wait.`,
		Example: `  shipgate rollback --reason "checkout errors since 14:02"
  shipgate rollback shop --env staging --reason "wrong build" --wait`,
		Args: argRange(0, 1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if strings.TrimSpace(reason) == "" {
				return invalidf("--reason is required: say why you roll back, for example --reason \"errors on /pay\"")
			}
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
			ro, err := c.Rollback(cmd.Context(), rollout.RollbackRequest{App: app, Env: env, Reason: reason})
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
	f.StringVar(&reason, "reason", "", "why you roll back (required; recorded in the audit log)")
	f.StringVar(&env, "env", "", `environment (default "production" when the app has it, else its only one)`)
	f.BoolVar(&wait, "wait", false, "follow the rollback until it is done")
	f.DurationVar(&timeout, "timeout", 30*time.Minute, "with --wait, how long to wait before giving up")
	return cmd
}

// appArg returns the APP argument, or the app the server manages when
// there is none.
func appArg(ctx context.Context, c *api.Client, args []string) (string, error) {
	if len(args) > 0 {
		return args[0], nil
	}
	st, err := c.Status(ctx, "")
	if err != nil {
		return "", err
	}
	return st.App, nil
}
