package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/shipgate/shipgate/internal/rollout"
)

func (a *app) driftCommand() *cobra.Command {
	var env, against string
	cmd := &cobra.Command{
		Use:   "drift [APP]",
		Short: "Compare an environment with another and check the drift gate",
		Long: `Compare an environment of APP with another: variables (names, never
values), the shape of the run command, the number of instances and the
migrations applied. Each difference is allowed or not by the config's
drift gate.

--against defaults to the drift gate's environment, else the environment
before --env in the pipeline. APP defaults to the app the server manages.

Exits 0 when every difference is allowed, 4 when one is not.`,
		Example: `  shipgate drift
  shipgate drift shop --env production --against staging -o json`,
		Args: argRange(0, 1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, app, err := a.appClient(cmd.Context(), args)
			if err != nil {
				return err
			}
			rep, err := c.Drift(cmd.Context(), app, env, against)
			if err != nil {
				return err
			}
			if err := render(a, rep, a.printDrift); err != nil {
				return err
			}
			return driftRefusal(rep)
		},
	}
	cmd.Flags().StringVar(&env, "env", "", envUsage)
	cmd.Flags().StringVar(&against, "against", "", "environment to compare with (default: the drift gate's, else the one before in the pipeline)")
	return cmd
}

func (a *app) printDrift(rep rollout.DriftReport) error {
	if len(rep.Diffs) == 0 {
		a.printf("drift: %s %s against %s: no differences\n", rep.App, rep.Env, rep.Against)
		return nil
	}
	a.printf("drift: %s %s against %s\n", rep.App, rep.Env, rep.Against)
	t := newTable(a.stdout, "KIND", "DETAIL", "ALLOWED")
	for _, d := range rep.Diffs {
		allowed := "no"
		if d.Allowed {
			allowed = "yes"
		}
		t.row(d.Kind, d.Detail, allowed)
	}
	return t.flush()
}

// driftRefusal returns the ExitGate error of a report the drift gate does
// not pass, nil otherwise.
func driftRefusal(rep rollout.DriftReport) error {
	n := 0
	for _, d := range rep.Diffs {
		if !d.Allowed {
			n++
		}
	}
	if rep.OK && n == 0 {
		return nil
	}
	msg := fmt.Sprintf("%s differs from %s in %s the drift gate does not allow", rep.Env, rep.Against, plural(n, "way", "ways"))
	if n == 0 {
		msg = fmt.Sprintf("%s does not pass against %s", rep.Env, rep.Against)
	}
	return &ExitError{Code: ExitGate, Err: &rollout.GateError{Gate: "drift", Message: msg}}
}
