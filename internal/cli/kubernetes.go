package cli

import (
	"strings"

	"github.com/spf13/cobra"

	"github.com/shipgate/shipgate/internal/rollout"
)

func (a *app) kubernetesCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "kubernetes",
		Short: "Environments on Kubernetes: hand one back to your team (leave)",
		Args:  subcommandArgs("kubernetes"),
		RunE:  func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(a.kubernetesLeaveCommand())
	return cmd
}

func (a *app) kubernetesLeaveCommand() *cobra.Command {
	var (
		env, reason           string
		force, deleteReleases bool
	)
	cmd := &cobra.Command{
		Use:   "leave [APP] --env E --reason TEXT [--force] [--delete-releases]",
		Short: "Take Shipgate's rules out of an environment's HTTPRoute (needs an admin token)",
		Long: `Hand an environment on Kubernetes back to your team: Shipgate's rules and
its shipgate.dev/rules annotation go from the HTTPRoute (a route Shipgate
created is deleted), your own rules and backends stay exactly as they are,
and Shipgate forgets what is live there, so a restarted server does not put
its rules back. The live release's Deployment and Service keep running.

Refused while a rollout of the environment is in progress (it is named:
wait for it or roll it back). Refused, changing nothing, when some
requests Shipgate's rules serve would match no rule of yours afterwards
(each is named, with where it goes now): point a rule of yours at the live
release's Service first, or give --force. --delete-releases also deletes
the Deployments and Services of Shipgate's other releases, keeping the
live one and any a rule of yours sends traffic to.

A later deploy to the environment is a first deploy that takes the routing
back: remove the environment from shipgate.yaml to stop for good. Audited
with your token's name and the reason. See docs/kubernetes.md.`,
		Example: `  shipgate kubernetes leave shop --env production --reason "moving to Argo Rollouts"
  shipgate kubernetes leave --env production --reason "decommission" --force --delete-releases -o json`,
		Args: argRange(0, 1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if env == "" {
				return invalidf("--env is required: name the environment Shipgate leaves")
			}
			if strings.TrimSpace(reason) == "" {
				return invalidf("--reason is required: say why Shipgate leaves %s (recorded in the audit log)", env)
			}
			c, app, err := a.appClient(cmd.Context(), args)
			if err != nil {
				return err
			}
			rep, err := c.LeaveKubernetes(cmd.Context(), rollout.LeaveRequest{App: app, Env: env, Reason: reason, Force: force, DeleteReleases: deleteReleases})
			if err != nil {
				return err
			}
			if a.jsonOutput() {
				return a.printJSON(rep)
			}
			a.printLeave(rep)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&env, "env", "", "the environment to leave (required)")
	f.StringVar(&reason, "reason", "", "why (required; recorded in the audit log)")
	f.BoolVar(&force, "force", false, "leave even when some requests would then match no rule of yours (they are named)")
	f.BoolVar(&deleteReleases, "delete-releases", false, "also delete Shipgate's Deployments and Services but the live release's and those a rule of yours uses")
	return cmd
}

func (a *app) printLeave(rep rollout.LeaveReport) {
	switch {
	case rep.Route == "":
		a.printf("Shipgate left %s %s\n", rep.App, rep.Env)
	case rep.RouteDeleted:
		a.printf("Shipgate left %s %s: deleted HTTPRoute %s, which it had created (rules %s)\n", rep.App, rep.Env, rep.Route, orDash(strings.Join(rep.RemovedRules, ", ")))
	default:
		a.printf("Shipgate left %s %s: took its rules out of HTTPRoute %s (%s); yours are unchanged\n", rep.App, rep.Env, rep.Route, orDash(strings.Join(rep.RemovedRules, ", ")))
	}
	for _, l := range rep.LostTraffic {
		a.printf("warning: forced: %s\n", l)
	}
	if rep.Live != "" {
		a.printf("live release: %s (its Deployment and Service keep running)\n", rep.Live)
	}
	for _, v := range rep.DeletedReleases {
		a.printf("deleted release %s\n", v)
	}
	for _, v := range rep.KeptReleases {
		a.printf("kept release %s\n", v)
	}
}
