package cli

import (
	"strings"

	"github.com/spf13/cobra"

	"github.com/shipgate/shipgate/internal/rollout"
)

func (a *app) rollbackCommand() *cobra.Command {
	var (
		env, reason, to string
		wf              waitFlags
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
  shipgate rollback shop --env staging --reason "wrong build" --wait
  shipgate rollback --to v1.3.0 --reason "v1.4 and v1.5 both corrupt carts"`,
		Args: argRange(0, 1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if strings.TrimSpace(reason) == "" {
				return invalidf("--reason is required: say why you roll back, for example --reason \"errors on /pay\"")
			}
			if err := wf.check(); err != nil {
				return err
			}
			c, app, err := a.appClient(cmd.Context(), args)
			if err != nil {
				return err
			}
			ro, err := c.Rollback(cmd.Context(), rollout.RollbackRequest{App: app, Env: env, Reason: reason, To: to})
			if err != nil {
				return err
			}
			if !wf.wait && ro.Kind != rollout.KindRollback {
				return a.printRollbackStarted(ro)
			}
			return a.follow(cmd.Context(), c, ro, wf, a.reportRollback)
		},
	}
	f := cmd.Flags()
	f.StringVar(&reason, "reason", "", "why you roll back (required; recorded in the audit log)")
	f.StringVar(&env, "env", "", envUsage)
	f.StringVar(&to, "to", "", "the release to go back to: any release that was live here before (default: the previous one)")
	wf.register(cmd, "rollback", "it is done")
	return cmd
}

// printRollbackStarted reports the rollback of a running rollout, which
// the server answers once traffic is back on the old release: the rollout
// it answers is the one rolled back, whose record may lag behind (the
// server records it after moving traffic, and a full disk delays that).
func (a *app) printRollbackStarted(ro rollout.Rollout) error {
	if a.jsonOutput() {
		return a.printJSON(ro)
	}
	if ro.Phase == rollout.PhaseSucceeded {
		a.printf("nothing rolled back: rollout %d of %s had already succeeded; roll back again to go back to %s\n", ro.ID, ro.Version, orDash(ro.FromVersion))
		return nil
	}
	back := "has no release to go back to (it was the first deploy): " + ro.Version + " gets no more traffic"
	if ro.FromVersion != "" {
		back = "is back on " + ro.FromVersion
	}
	a.printf("rolling back rollout %d of %s: %s %s %s; %s is being stopped\n", ro.ID, ro.Version, ro.App, ro.Env, back, ro.Version)
	a.printf("follow it with: shipgate status %s\n", ro.App)
	return nil
}
