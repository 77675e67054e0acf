package cli

import (
	"fmt"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/shipgate/shipgate/internal/rollout"
)

func (a *app) statusCommand() *cobra.Command {
	var (
		watch   bool
		timeout time.Duration
	)
	cmd := &cobra.Command{
		Use:   "status [APP]",
		Short: "Show what is live in each environment and the rollout in progress",
		Long: `Show, for each environment of APP, the router address, the stable release
and its instances, the previous release, and the rollout in progress with
its step, weight and latest analysis. APP defaults to the app the server
manages.`,
		Example: `  shipgate status
  shipgate status shop -o json`,
		Args: argRange(0, 1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			app := ""
			if len(args) > 0 {
				app = args[0]
			}
			if watch { // watch.go
				return a.watchStatus(cmd.Context(), c, app, timeout)
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
	cmd.Flags().BoolVar(&watch, "watch", false, "follow the rollout in progress live (server-sent events) until it ends")
	cmd.Flags().DurationVar(&timeout, "timeout", 0, "with --watch, stop after this long (default: when no rollout is in progress)")
	return cmd
}

func (a *app) printStatus(st rollout.AppStatus) error {
	a.printf("app %s\n", st.App)
	if cp := st.ControlPlane; cp != nil {
		role := "follower"
		if cp.Leading {
			role = "leader"
		}
		leader := cp.Leader
		if leader == "" {
			leader = "none (an election is under way)"
		}
		a.printf("server %s (%s); leader %s, term %d\n", cp.Server, role, leader, cp.Term)
		if cp.ConfigRevision > 0 {
			a.printf("config revision %d\n", cp.ConfigRevision)
		}
		if cp.ConfigPending > 0 {
			a.printf("config revision %d NOT applied on this server (it runs %d): %s\n", cp.ConfigPending, cp.ConfigRevision, cp.ConfigError)
		}
	}
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
		if e.Image != "" && e.State != nil && (e.Active == nil || e.Active.Version != e.State.Stable) {
			a.printf("%s: %s runs the image %s\n", e.Env, e.State.Stable, e.Image)
		}
		if e.Active == nil {
			continue
		}
		if e.Active.Image != "" {
			a.printf("%s: %s runs the image %s\n", e.Env, e.Active.Version, e.Active.Image)
		}
		if e.Active.Analysis != nil {
			a.printf("%s: %s\n", e.Env, analysisText(e.Active.Analysis))
		}
		if e.Active.Paused != "" {
			a.printf("%s: PAUSED: %s\n", e.Env, e.Active.Paused)
		}
	}
	return nil
}
