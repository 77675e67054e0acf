package cli

import (
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/shipgate/shipgate/internal/rollout"
)

func (a *app) deployCommand() *cobra.Command {
	var (
		env     string
		vars    []string
		commit  string
		wait    bool
		timeout time.Duration
	)
	cmd := &cobra.Command{
		Use:   "deploy APP VERSION",
		Short: "Roll a release out through the canary steps",
		Long: `Ask the server to roll VERSION of APP out to an environment. The release
goes through the app's strategy: start, smoke checks, canary weights under
analysis, promotion; a failed gate rolls it back by itself.

Without --wait the command returns once the rollout has started. With
--wait it follows the rollout, printing progress on stderr, and exits 0
once the release is live (promoted to 100%), 3 when it was rolled back or
failed, 1 on timeout.`,
		Example: `  shipgate deploy shop 1.4.2 --wait
  shipgate deploy shop 1.4.2 --env staging --var FEATURE_X=on --commit "$(git rev-parse HEAD)"
  shipgate deploy shop 1.4.2 --wait -o json > rollout.json`,
		Args: argRange(2, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if timeout <= 0 {
				return invalidf("invalid --timeout %s: want a positive duration such as 30m", timeout)
			}
			vm, err := parseVars(vars)
			if err != nil {
				return err
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			ro, err := c.Deploy(cmd.Context(), rollout.DeployRequest{
				App:     args[0],
				Env:     env,
				Version: args[1],
				Commit:  commit,
				Vars:    vm,
			})
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
	f.StringArrayVar(&vars, "var", nil, "release variable `KEY=VALUE` (repeatable); overrides the app's vars")
	f.StringVar(&commit, "commit", "", "source commit SHA of the release")
	f.BoolVar(&wait, "wait", false, "follow the rollout until it is live or rolled back")
	f.DurationVar(&timeout, "timeout", 30*time.Minute, "with --wait, how long to wait before giving up (the rollout goes on)")
	return cmd
}

// parseVars turns KEY=VALUE flags into a map.
func parseVars(vars []string) (map[string]string, error) {
	if len(vars) == 0 {
		return nil, nil
	}
	m := make(map[string]string, len(vars))
	for _, kv := range vars {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, invalidf("invalid --var %q: want KEY=VALUE", kv)
		}
		m[k] = v
	}
	return m, nil
}

// printStarted reports a rollout that was just created.
func (a *app) printStarted(ro rollout.Rollout) error {
	if a.jsonOutput() {
		return a.printJSON(ro)
	}
	switch {
	case ro.Kind == rollout.KindRollback:
		a.printf("rollout %d %s: %s %s goes back to %s\n", ro.ID, ro.Phase, ro.App, ro.Env, ro.Version)
	case ro.FromVersion != "":
		a.printf("rollout %d %s: %s %s to %s, replacing %s\n", ro.ID, ro.Phase, ro.App, ro.Version, ro.Env, ro.FromVersion)
	default:
		a.printf("rollout %d %s: %s %s to %s, its first release there\n", ro.ID, ro.Phase, ro.App, ro.Version, ro.Env)
	}
	a.printf("follow it with: shipgate status %s\n", ro.App)
	return nil
}
