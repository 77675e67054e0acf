package cli

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/shipgate/shipgate/internal/api"
	"github.com/shipgate/shipgate/internal/retire"
)

func (a *app) retireCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "retire",
		Short: "Delete a route or a flag safely: no traffic, backup, disable, watch, then delete",
		Long: `Retire a route of the builtin router (a path prefix) or a feature flag in
five stages, each written to the audit log and, until the last, undoable:

  1. check: no request (evaluation) for a whole business cycle
     (retire.cycle, default 7 days);
  2. backup: the config, the release history and the audit log are exported,
     and retire.backup_command must exit 0;
  3. disable: the router answers 410 Gone for the prefix; the flag is
     switched off (clients fall back to their default, the off variant);
  4. watch: for retire.watch (default 24h), any request or evaluation enables
     it again, raises an alert, and stops the retirement;
  5. delete: the route stays gone, the flag is deleted, and the references
     left in the repository (git grep) are listed.

Exit codes: 0 watching (or, with --wait, deleted), 4 refused (the route has
traffic), 3 enabled again by a request in the window, 1 failed (the backup).`,
		Args: subcommandArgs("retire"),
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(a.retireSubjectCommand(retire.KindRoute), a.retireSubjectCommand(retire.KindFlag), a.retireShowCommand(), a.retireUndoCommand())
	return cmd
}

func (a *app) retireSubjectCommand(kind retire.Kind) *cobra.Command {
	var (
		app, env, reason string
		wait             bool
	)
	cmd := &cobra.Command{
		Use:   "route PREFIX --reason TEXT",
		Short: "Retire a path prefix of the builtin router",
		Example: `  shipgate retire route /api/v1/legacy --reason "v2 replaced it in March"
  shipgate retire route /export --env staging --reason "unused" --wait -o json
  shipgate retire route /v1/invoices --app billing --reason "v2 only"`,
		Args: argRange(1, 1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if strings.TrimSpace(reason) == "" {
				return invalidf("--reason is required: say why the route goes; it is written to the audit log")
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			r, err := c.Retire(cmd.Context(), api.RetireRequest{Kind: kind, App: app, Env: env, Subject: args[0], Reason: reason})
			if err != nil {
				return err
			}
			if wait && r.Stage == retire.StageWatch {
				if !a.jsonOutput() {
					a.printRetirement(r)
					a.printf("watching until %s...\n", r.WatchUntil.Format(time.RFC3339))
				}
				if r, err = a.waitRetirement(cmd.Context(), c, r.ID); err != nil {
					return err
				}
			}
			if a.jsonOutput() {
				if err := a.printJSON(r); err != nil {
					return err
				}
			} else {
				a.printRetirement(r)
			}
			return retireExit(r)
		},
	}
	if kind == retire.KindFlag {
		cmd.Use, cmd.Short = "flag KEY --reason TEXT", "Retire a feature flag: no evaluation for a cycle, backup, kill switch, watch, delete"
		cmd.Example = `  shipgate retire flag old-checkout --reason "new checkout at 100% since March" --wait`
	} else {
		cmd.Flags().StringVar(&env, "env", "", envUsage)
		cmd.Flags().StringVar(&app, "app", "", "the app whose router serves the route (required when the server manages several)")
	}
	cmd.Flags().StringVar(&reason, "reason", "", "why it is retired (required)")
	cmd.Flags().BoolVar(&wait, "wait", false, "follow the retirement through its watch window to its end")
	return cmd
}

func (a *app) retireShowCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "show ID",
		Short: "Show a retirement: its stage, backup and references",
		Args:  argRange(1, 1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := strconv.ParseInt(args[0], 10, 64)
			if err != nil || id < 1 {
				return invalidf("invalid retirement id %q", args[0])
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			r, err := c.GetRetirement(cmd.Context(), id)
			if err != nil {
				return err
			}
			if a.jsonOutput() {
				return a.printJSON(r)
			}
			a.printRetirement(r)
			return nil
		},
	}
}

func (a *app) retireUndoCommand() *cobra.Command {
	var reason string
	cmd := &cobra.Command{
		Use:   "undo ID --reason TEXT",
		Short: "Stop a retirement before its deletion and serve the route again",
		Args:  argRange(1, 1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := strconv.ParseInt(args[0], 10, 64)
			if err != nil || id < 1 {
				return invalidf("invalid retirement id %q", args[0])
			}
			if strings.TrimSpace(reason) == "" {
				return invalidf("--reason is required: say why the retirement is undone")
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			r, err := c.UndoRetirement(cmd.Context(), id, reason)
			if err != nil {
				return err
			}
			if a.jsonOutput() {
				return a.printJSON(r)
			}
			a.printRetirement(r)
			return nil
		},
	}
	cmd.Flags().StringVar(&reason, "reason", "", "why the retirement is undone (required)")
	return cmd
}

// waitRetirement polls a retirement until it is over.
func (a *app) waitRetirement(ctx context.Context, c *api.Client, id int64) (retire.Retirement, error) {
	for {
		r, err := c.GetRetirement(ctx, id)
		if err != nil || r.Stage.Final() {
			return r, err
		}
		select {
		case <-ctx.Done():
			return r, ctx.Err()
		case <-time.After(a.pollInterval):
		}
	}
}

func (a *app) printRetirement(r retire.Retirement) {
	t := newTable(a.stdout)
	where := r.Env
	if r.App != "" {
		where = r.App + " " + r.Env
	}
	t.row("retirement", fmt.Sprintf("%d: %s %s in %s", r.ID, r.Kind, r.Subject, where))
	t.row("stage", string(r.Stage))
	t.row("detail", r.Detail)
	if r.Backup != "" {
		t.row("backup", r.Backup)
	}
	if !r.WatchUntil.IsZero() {
		t.row("watch until", r.WatchUntil.UTC().Format(time.RFC3339))
	}
	_ = t.flush()
	if r.Stage == retire.StageDeleted {
		if len(r.References) == 0 {
			a.printf("no reference to %s left in the repository\n", r.Subject)
		}
		for _, ref := range r.References {
			a.printf("reference left: %s\n", ref)
		}
	}
}

// retireExit is the exit status of a retirement's stage.
func retireExit(r retire.Retirement) error {
	switch r.Stage {
	case retire.StageRefused:
		return &ExitError{Code: ExitGate}
	case retire.StageReenabled:
		return &ExitError{Code: ExitRolledBack}
	case retire.StageFailed:
		return &ExitError{Code: ExitFailure}
	}
	return nil
}
