package cli

import (
	"io"

	"github.com/spf13/cobra"

	"github.com/shipgate/shipgate/internal/server"
)

func (a *app) downCommand() *cobra.Command {
	var (
		env   string
		force bool
	)
	cmd := &cobra.Command{
		Use:   "down [--env ENV]",
		Short: "Stop the routers and app instances a stopped server left running",
		Long: `Stop, gracefully, what keeps serving users after the server stops: each
environment's router process (in-flight requests finish first) and the
app's instances, for one environment with --env or for all of them. It
works on the data dir (--data) and refuses while a server runs there, since
the server would start its routers again: stop the server first. --data
may be a --plane-dir that servers share: down refuses, naming the server,
while a live server uses it, unless --force. The
database is not changed; a server started later starts what it needs.`,
		Example: `  shipgate down
  shipgate down --env staging -o json`,
		Args: argRange(0, 0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			out := io.Writer(a.stdout)
			if a.jsonOutput() {
				out = io.Discard
			}
			rep, err := server.Down(cmd.Context(), a.data, env, force, out)
			if err != nil {
				return err
			}
			if a.jsonOutput() {
				return a.printJSON(rep)
			}
			if len(rep.Routers) == 0 && len(rep.Instances) == 0 {
				a.printf("nothing was running\n")
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&env, "env", "", "only this environment (default: all)")
	cmd.Flags().BoolVar(&force, "force", false, "stop them even while a live server uses the plane dir")
	return cmd
}
