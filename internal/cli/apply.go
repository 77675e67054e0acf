package cli

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/shipgate/shipgate/internal/api"
	"github.com/shipgate/shipgate/internal/config"
)

func (a *app) applyCommand() *cobra.Command {
	var file, reason string
	cmd := &cobra.Command{
		Use:   "apply -f FILE|DIR",
		Short: "Make the server manage the apps of a config file or directory, without a restart",
		Long: `Send the apps of FILE (one app, or several as YAML documents separated by
"---") or of DIR (every *.yaml and *.yml file in it) to the server, which
manages exactly these apps from then on, without a restart:

  - an added app gets its routers started;
  - a changed app goes on with the new config; a rollout in progress keeps
    the plan it was deployed with;
  - a removed app has its routers and instances stopped.

The files are checked here first, then by the server; any problem refuses
the whole apply and changes nothing (exit 2, every problem with
file:line). Removing an app or an environment with a rollout in progress
is refused (exit 1). Needs an admin token; audited as config.apply.

The server reads its own -f again on SIGHUP, and when it restarts: apply
the files it is started with, or it goes back to them on its next start.`,
		Example: `  shipgate apply -f shipgate.yaml
  shipgate apply -f apps/ --reason "add billing" -o json`,
		Args: argRange(0, 0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if file == "" {
				return invalidf("-f FILE|DIR is required: the app file, or the directory of app files, to apply")
			}
			// Checked here first: the problems then name the files as
			// you gave them.
			_, err := config.LoadApps(file)
			var cerr *config.Error
			switch {
			case errors.As(err, &cerr):
				return a.printProblems(cerr.Problems)
			case err != nil:
				return configError(err)
			}
			paths, err := config.AppFiles(file)
			if err != nil {
				return configError(err)
			}
			req := api.ApplyRequest{Reason: reason}
			for _, p := range paths {
				data, err := os.ReadFile(p)
				if err != nil {
					return configError(err)
				}
				// Absolute, so that the server resolves run.dir and
				// migration folders as this command did.
				if abs, err := filepath.Abs(p); err == nil {
					p = abs
				}
				req.Files = append(req.Files, api.ConfigFile{Name: p, Content: string(data)})
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			res, err := c.ApplyConfig(cmd.Context(), req)
			if err != nil {
				return err
			}
			if a.jsonOutput() {
				return a.printJSON(res)
			}
			a.printf("applied %s: the server manages %s\n", file, strings.Join(res.Apps, ", "))
			for _, l := range []struct {
				what string
				apps []string
			}{{"added", res.Added}, {"changed", res.Changed}, {"removed", res.Removed}, {"unchanged", res.Unchanged}} {
				if len(l.apps) > 0 {
					a.printf("  %s: %s\n", l.what, strings.Join(l.apps, ", "))
				}
			}
			if res.Revision > 0 {
				a.printf("  config revision %d: every server on the store applies it\n", res.Revision)
			}
			for _, w := range res.Warnings {
				fmt.Fprintf(a.stderr, "warning: %s\n", w)
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&file, "file", "f", "", "the app file, or the directory of app files, to apply")
	cmd.Flags().StringVar(&reason, "reason", "", "why; recorded in the audit log")
	return cmd
}
