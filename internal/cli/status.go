package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/shipgate/shipgate/internal/api"
	"github.com/shipgate/shipgate/internal/rollout"
)

func (a *app) statusCommand() *cobra.Command {
	var (
		watch    bool
		interval time.Duration
	)
	cmd := &cobra.Command{
		Use:   "status [APP]",
		Short: "Show what is live in each environment and the rollout in progress",
		Long: `Show, for each environment of APP, the router address, the stable release
and its instances, the previous release, and the rollout in progress with
its step, weight and latest analysis. APP defaults to the app the server
manages.

With --watch it shows the status again every --interval until interrupted
(Ctrl-C ends it with exit 0), riding out a server restart; with -o json it
prints one JSON document per line, each a whole status.`,
		Example: `  shipgate status
  shipgate status shop -o json
  shipgate status --watch --interval 5s`,
		Args: argRange(0, 1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if interval <= 0 {
				return invalidf("invalid --interval %s: want a positive duration such as 2s", interval)
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			app := ""
			if len(args) > 0 {
				app = args[0]
			}
			if watch {
				return a.watchStatus(cmd.Context(), c, app, interval)
			}
			st, err := c.Status(cmd.Context(), app)
			if err != nil {
				return err
			}
			if a.jsonOutput() {
				return a.printJSON(st)
			}
			return a.printStatus(st)
		},
	}
	cmd.Flags().BoolVarP(&watch, "watch", "w", false, "show the status again every --interval until interrupted")
	cmd.Flags().DurationVar(&interval, "interval", 2*time.Second, "with --watch, the time between two looks")
	return cmd
}

// watchStatus prints the status every interval until ctx ends. A server
// that cannot be reached is said once, and watched for again.
func (a *app) watchStatus(ctx context.Context, c *api.Client, app string, interval time.Duration) error {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	lost := false
	for {
		st, err := c.Status(ctx, app)
		switch {
		case ctx.Err() != nil:
			return nil // interrupted: how a watch ends
		case err != nil && !unreachable(err):
			return err
		case err != nil:
			if !lost {
				now := a.now()
				fmt.Fprintf(a.stderr, "%s  lost the server at %s (%v); watching for it\n", clock(now, now), a.server, err)
				lost = true
			}
		default:
			if lost {
				now := a.now()
				fmt.Fprintf(a.stderr, "%s  reconnected to the server at %s\n", clock(now, now), a.server)
				lost = false
			}
			if err := a.printWatched(st); err != nil {
				return err
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// printWatched prints one look of status --watch: a JSON line, or the
// table under the time it was taken.
func (a *app) printWatched(st rollout.AppStatus) error {
	if a.jsonOutput() {
		b, err := json.Marshal(st)
		if err != nil {
			return fmt.Errorf("encode output: %w", err)
		}
		a.printedJSON = true
		_, err = fmt.Fprintf(a.stdout, "%s\n", b)
		return err
	}
	now := a.now()
	a.printf("--- %s\n", clock(now, now))
	return a.printStatus(st)
}

func (a *app) printStatus(st rollout.AppStatus) error {
	a.printf("app %s\n", st.App)
	if len(st.Envs) == 0 {
		a.printf("no environments\n")
		return nil
	}
	t := newTable(a.stdout, "ENV", "ROUTER", "STABLE", "INSTANCES", "PREVIOUS", "ROLLOUT")
	for _, e := range st.Envs {
		stable, instances, previous := "", "0", ""
		if e.State != nil {
			stable, previous = e.State.Stable, e.State.Previous
			instances = strconv.Itoa(len(e.State.Instances))
		}
		active := ""
		if r := e.Active; r != nil {
			active = fmt.Sprintf("#%d %s %s %s", r.ID, r.Version, r.Phase, stepText(*r))
		}
		t.row(e.Env, e.Listen, stable, instances, previous, active)
	}
	if err := t.flush(); err != nil {
		return err
	}
	for _, e := range st.Envs {
		if e.Active == nil || e.Active.Analysis == nil {
			continue
		}
		a.printf("%s: %s\n", e.Env, analysisText(e.Active.Analysis))
	}
	return nil
}
