package cli

import (
	"strings"

	"github.com/spf13/cobra"

	"github.com/shipgate/shipgate/internal/api"
	"github.com/shipgate/shipgate/internal/rollout"
)

func (a *app) deployCommand() *cobra.Command {
	var (
		df deployFlags
		wf waitFlags
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
failed, 1 on timeout. A deploy refused by a gate (pipeline, checks,
approval, drill, drift) exits 4; 'shipgate plan' shows the gates first.

--image names the container image the release runs on Kubernetes, in
place of the environment's kubernetes.image; it is recorded with the
release, so deploying the same version again needs the same --image. An
environment of local processes refuses it.

--hotfix applies the config's emergency rules: the gates they allow are
skipped, each skip audited with --reason, which is required.`,
		Example: `  shipgate deploy shop 1.4.2 --wait
  shipgate deploy shop 1.4.2 --env staging --var FEATURE_X=on --commit "$(git rev-parse HEAD)"
  shipgate deploy shop v2 --image registry.example/shop:v2 --wait
  shipgate deploy shop 1.4.3 --hotfix --reason "checkout 500s since 14:02" --wait
  shipgate deploy shop 1.4.2 --wait -o json > rollout.json`,
		Args: argRange(2, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := wf.check(); err != nil {
				return err
			}
			c, req, err := a.deployClient(&df, args)
			if err != nil {
				return err
			}
			ro, err := c.Deploy(cmd.Context(), req)
			if err != nil {
				return err
			}
			return a.follow(cmd.Context(), c, ro, wf, a.report)
		},
	}
	df.register(cmd)
	wf.register(cmd, "rollout", "it is live or rolled back")
	return cmd
}

// deployFlags are the flags that describe a deploy. deploy and plan share
// them, so that a plan answers for exactly the deploy it is given.
type deployFlags struct {
	env    string
	vars   []string
	commit string
	image  string
	hotfix bool
	reason string
}

func (df *deployFlags) register(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&df.env, "env", "", envUsage)
	f.StringArrayVar(&df.vars, "var", nil, "release variable `KEY=VALUE` (repeatable); overrides the app's vars")
	f.StringVar(&df.commit, "commit", "", "source commit SHA of the release")
	f.StringVar(&df.image, "image", "", "container `IMAGE` of the release on Kubernetes, e.g. registry.example/shop:v2 (replaces kubernetes.image; recorded with the release)")
	f.BoolVar(&df.hotfix, "hotfix", false, "emergency deploy: skip the gates the config's hotfix rules allow, with shorter bakes (needs --reason)")
	f.StringVar(&df.reason, "reason", "", "why; required with --hotfix and recorded in the audit log")
}

// request returns the DeployRequest of the flags for VERSION of APP.
func (df *deployFlags) request(app, version string) (rollout.DeployRequest, error) {
	if df.hotfix && strings.TrimSpace(df.reason) == "" {
		return rollout.DeployRequest{}, invalidf("--reason is required with --hotfix: say why it may skip gates, for example --reason \"checkout 500s since 14:02\"")
	}
	vm, err := parseVars(df.vars)
	if err != nil {
		return rollout.DeployRequest{}, err
	}
	return rollout.DeployRequest{
		App:     app,
		Env:     df.env,
		Version: version,
		Commit:  df.commit,
		Image:   df.image,
		Vars:    vm,
		Hotfix:  df.hotfix,
		Reason:  df.reason,
	}, nil
}

// deployClient returns the DeployRequest of the flags for the arguments
// APP VERSION, and a client to send it with.
func (a *app) deployClient(df *deployFlags, args []string) (*api.Client, rollout.DeployRequest, error) {
	req, err := df.request(args[0], args[1])
	if err != nil {
		return nil, req, err
	}
	c, err := a.client()
	return c, req, err
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
	case ro.Kind == rollout.KindDrill && ro.FromVersion != "":
		// A drill rolls the previous release (Version) out over the
		// current one (FromVersion), checks it, and restores the current.
		a.printf("rollout %d %s: rollback drill of %s %s: %s comes back, is checked, then %s is restored\n", ro.ID, ro.Phase, ro.App, ro.Env, ro.Version, ro.FromVersion)
	case ro.Kind == rollout.KindDrill:
		a.printf("rollout %d %s: rollback drill of %s %s\n", ro.ID, ro.Phase, ro.App, ro.Env)
	case ro.FromVersion != "":
		a.printf("rollout %d %s: %s %s to %s, replacing %s\n", ro.ID, ro.Phase, ro.App, ro.Version, ro.Env, ro.FromVersion)
	default:
		a.printf("rollout %d %s: %s %s to %s, its first release there\n", ro.ID, ro.Phase, ro.App, ro.Version, ro.Env)
	}
	if ro.Hotfix {
		a.printf("%s\n", hotfixText(ro))
	}
	a.printf("follow it with: shipgate status %s\n", ro.App)
	return nil
}

// hotfixText says which gates a hotfix skipped.
func hotfixText(ro rollout.Rollout) string {
	if len(ro.Bypassed) == 0 {
		return "hotfix: no gate skipped; bakes are shorter"
	}
	return "hotfix: gates skipped: " + strings.Join(ro.Bypassed, ", ") + " (each skip is in the audit log); bakes are shorter"
}
