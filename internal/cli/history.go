package cli

import (
	"slices"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/shipgate/shipgate/internal/rollout"
)

func (a *app) historyCommand() *cobra.Command {
	var (
		env   string
		limit int
	)
	cmd := &cobra.Command{
		Use:   "history [APP]",
		Short: "List the rollouts of an app, newest first",
		Long: `List the rollouts of APP, newest first: id, version, its image (when a
rollout has one: releases on Kubernetes), the version it replaced, phase,
start time, duration and reason. APP defaults to the app
the server manages.`,
		Example: `  shipgate history
  shipgate history shop --env production --limit 5 -o json`,
		Args: argRange(0, 1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if limit < 1 || limit > 1000 {
				return invalidf("invalid --limit %d: want 1 to 1000", limit)
			}
			c, app, err := a.appClient(cmd.Context(), args)
			if err != nil {
				return err
			}
			list, err := c.History(cmd.Context(), app, env, limit)
			if err != nil {
				return err
			}
			if a.jsonOutput() {
				return a.printJSON(list)
			}
			if len(list) == 0 {
				a.printf("no rollouts of %s yet\n", app)
				return nil
			}
			now := a.now()
			// The image is a column only when a rollout has one (releases
			// on Kubernetes): local processes have none.
			images := slices.ContainsFunc(list, func(ro rollout.Rollout) bool { return ro.Image != "" })
			header := []string{"ID", "ENV", "VERSION", "FROM", "PHASE", "STARTED", "DURATION", "REASON"}
			if images {
				header = slices.Insert(header, 3, "IMAGE")
			}
			t := newTable(a.stdout, header...)
			for _, ro := range list {
				cells := []string{strconv.FormatInt(ro.ID, 10), ro.Env, ro.Version, ro.FromVersion, string(ro.Phase),
					clock(ro.CreatedAt, now), humanDuration(elapsed(ro, now)), ro.Reason}
				if images {
					cells = slices.Insert(cells, 3, orDash(ro.Image))
				}
				t.row(cells...)
			}
			return t.flush()
		},
	}
	cmd.Flags().StringVar(&env, "env", "", "only this environment (default: all)")
	cmd.Flags().IntVar(&limit, "limit", 20, "at most this many rollouts, 1 to 1000")
	return cmd
}
