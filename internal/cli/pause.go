package cli

import (
	"context"
	"strings"

	"github.com/spf13/cobra"

	"github.com/shipgate/shipgate/internal/api"
	"github.com/shipgate/shipgate/internal/rollout"
)

func (a *app) pauseCommand() *cobra.Command {
	return a.pauseOrResumeCommand("pause", "Hold the running bake: the rollout does not go on until resumed",
		`Hold the bake of the rollout running in an environment at its current
weight: it does not end, even once its gates pass, until shipgate resume,
shipgate promote or shipgate rollback. A failed gate still rolls back.
The reason is required and goes to the audit log with your token's name.`,
		"rollout %d paused: %s %s holds in %s\n",
		func(c *api.Client) func(context.Context, rollout.PauseRequest) (rollout.Rollout, error) {
			return c.Pause
		})
}

func (a *app) resumeCommand() *cobra.Command {
	return a.pauseOrResumeCommand("resume", "Let a paused bake go on",
		`Let the paused bake of the rollout running in an environment go on. A
bake paused because a gate stayed inconclusive then bakes on until every
gate passes or one fails. The reason is required and goes to the audit
log with your token's name.`,
		"rollout %d resumed: %s %s bakes on in %s\n",
		func(c *api.Client) func(context.Context, rollout.PauseRequest) (rollout.Rollout, error) {
			return c.Resume
		})
}

func (a *app) pauseOrResumeCommand(name, short, long, done string, call func(*api.Client) func(context.Context, rollout.PauseRequest) (rollout.Rollout, error)) *cobra.Command {
	var req rollout.PauseRequest
	cmd := &cobra.Command{
		Use:     name + " [APP] --reason TEXT",
		Short:   short,
		Long:    long + " APP defaults to the app the server manages.",
		Example: "  shipgate " + name + ` --reason "payment provider incident"`,
		Args:    argRange(0, 1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if strings.TrimSpace(req.Reason) == "" {
				return invalidf("--reason is required: say why, for example --reason \"payment provider incident\"")
			}
			c, app, err := a.appClient(cmd.Context(), args)
			if err != nil {
				return err
			}
			req.App = app
			ro, err := call(c)(cmd.Context(), req)
			if err != nil {
				return err
			}
			if a.jsonOutput() {
				return a.printJSON(ro)
			}
			a.printf(done, ro.ID, ro.App, ro.Version, ro.Env)
			return nil
		},
	}
	cmd.Flags().StringVar(&req.Env, "env", "", envUsage)
	cmd.Flags().StringVar(&req.Reason, "reason", "", "why (required; recorded in the audit log)")
	return cmd
}
