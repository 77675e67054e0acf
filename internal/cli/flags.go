package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/shipgate/shipgate/internal/api"
	"github.com/shipgate/shipgate/internal/flags"
)

func (a *app) flagsCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "flags",
		Short: "Feature flags: ship dark, release to some users, then to all",
		Long: `Manage feature flags. Definitions are flagd's (an existing flagd file
imports unchanged); apps read them with any OpenFeature SDK through the
OFREP endpoint /ofrep/v1 of the server, with a key from 'flags keys create'.

Every change is written to the audit log with your token's name and the
--reason you give.`,
		Args: subcommandArgs("flags"),
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(
		a.flagsListCommand(),
		a.flagsGetCommand(),
		a.flagsCreateCommand(),
		a.flagsActionCommand("enable", "Serve a flag again"),
		a.flagsActionCommand("disable", "Switch a flag off for everyone at once (the kill switch)"),
		a.flagsActionCommand("archive", "Disable a flag and mark it archived, before deleting it"),
		a.flagsRolloutCommand(),
		a.flagsDeleteCommand(),
		a.flagsImportCommand(),
		a.flagsExportCommand(),
		a.flagsStaleCommand(),
		a.flagsSegmentCommand(),
		a.flagsKeysCommand(),
	)
	return cmd
}

func (a *app) flagsListCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List flags: state, stage, rollout, owner and use",
		Args:  argRange(0, 0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			list, err := c.ListFlags(cmd.Context())
			if err != nil {
				return err
			}
			if a.jsonOutput() {
				return a.printJSON(list)
			}
			if len(list) == 0 {
				a.printf("no flags yet; create one with 'shipgate flags create KEY --owner TEAM'\n")
				return nil
			}
			now := a.now()
			t := newTable(a.stdout, "KEY", "STATE", "STAGE", "ROLLOUT", "OWNER", "EVALUATIONS", "LAST", "EXPIRES")
			for _, f := range list {
				rollout := "custom"
				if f.Plan != nil {
					rollout = planText(*f.Plan)
				}
				t.row(f.Key, strings.ToLower(f.State), f.Stage, rollout, f.Owner, strconv.FormatUint(f.Evaluations, 10),
					clock(f.LastEvaluated, now), f.Expires)
			}
			return t.flush()
		},
	}
}

// planText describes a plan: "5% + 2 users, segment internal".
func planText(p flags.Plan) string {
	if p.Percent == 0 && !p.HasConditions() {
		return "nobody (dark)"
	}
	parts := []string{fmt.Sprintf("%d%%", p.Percent)}
	if n := len(p.Users); n > 0 {
		parts = append(parts, fmt.Sprintf("%d user%s", n, pluralS(n)))
	}
	for _, s := range p.Segments {
		parts = append(parts, "segment "+s)
	}
	for _, r := range p.Rules {
		parts = append(parts, r.String())
	}
	return strings.Join(parts, " + ")
}

func pluralS(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

func (a *app) flagsGetCommand() *cobra.Command {
	return &cobra.Command{
		Use:     "get FLAG",
		Short:   "Show a flag; -o json prints its full flagd definition",
		Example: "  shipgate flags get new-checkout -o json",
		Args:    argRange(1, 1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			d, err := c.GetFlag(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if a.jsonOutput() {
				return a.printJSON(d)
			}
			return a.printFlag(d)
		},
	}
}

func (a *app) printFlag(d api.FlagDetail) error {
	f := d.Definition
	a.printf("flag %s: %s", d.Key, strings.ToLower(string(f.State)))
	if st := f.Stage(); st != "" {
		a.printf(", %s", st)
	}
	a.printf("\n")
	if owner := f.MetaString(flags.MetaOwner); owner != "" {
		a.printf("owner: %s\n", owner)
	}
	if desc := f.MetaString(flags.MetaDescription); desc != "" {
		a.printf("description: %s\n", desc)
	}
	if exp := f.MetaString(flags.MetaExpires); exp != "" {
		a.printf("expires: %s\n", exp)
	}
	if p, ok := flags.PlanOf(f); ok {
		a.printf("rollout: %s\n", planText(p))
	}
	vs, _ := json.Marshal(f.Variants)
	a.printf("variants: %s, default %s\n", vs, orDash(f.Default()))
	if len(f.Targeting) > 0 {
		a.printf("targeting: %s\n", f.Targeting)
	}
	a.printf("evaluations: %d", d.Usage.Total())
	if !d.Usage.Last.IsZero() {
		a.printf(", last %s", clock(d.Usage.Last, a.now()))
	}
	a.printf("\n")
	return nil
}

// printChanged prints a changed flag: JSON, or one line.
func (a *app) printChanged(d api.FlagDetail, what string) error {
	if a.jsonOutput() {
		return a.printJSON(d)
	}
	a.printf("flag %s %s", d.Key, what)
	if p, ok := flags.PlanOf(d.Definition); ok && d.Definition.State == flags.Enabled {
		a.printf(": %s", planText(p))
	}
	a.printf("\n")
	return nil
}

func (a *app) flagsCreateCommand() *cobra.Command {
	var owner, description, expires, reason, file string
	cmd := &cobra.Command{
		Use:   "create FLAG --owner TEAM",
		Short: "Create a boolean flag served dark (off for everyone)",
		Long: `Create a flag. By default it is a boolean flag with variants on and off,
serving off to everyone: the code ships dark. With --file, the flag is the
flagd definition in the file.`,
		Example: `  shipgate flags create new-checkout --owner payments --expires 2026-03-31 --description "one-page checkout"
  shipgate flags create theme --file theme.json`,
		Args: argRange(1, 1),
		RunE: func(cmd *cobra.Command, args []string) error {
			req := api.CreateFlagRequest{Key: args[0], Owner: owner, Description: description, Expires: expires, Reason: reason}
			if expires != "" {
				if _, err := flags.ParseTime(expires); err != nil {
					return invalidf("invalid --expires: %v", err)
				}
			}
			if file != "" {
				b, err := os.ReadFile(file) //nolint:gosec // a file the user names
				if err != nil {
					return invalidf("read --file: %v", err)
				}
				if _, problems := flags.ParseFlag(args[0], b); len(problems) > 0 {
					return invalidDefinition(file, &flags.ValidationError{Problems: problems})
				}
				req.Definition = b
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			d, err := c.CreateFlag(cmd.Context(), req)
			if err != nil {
				return err
			}
			return a.printChanged(d, "created")
		},
	}
	f := cmd.Flags()
	f.StringVar(&owner, "owner", "", "team or person who owns the flag (shown in the staleness report)")
	f.StringVar(&description, "description", "", "what the flag is for")
	f.StringVar(&expires, "expires", "", "date after which the flag is debt, e.g. 2026-03-31")
	f.StringVar(&reason, "reason", "", "why (recorded in the audit log)")
	f.StringVar(&file, "file", "", "a flagd flag definition (JSON) to create instead of a boolean flag")
	return cmd
}

// invalidDefinition is exit code 2 with every problem at file: path.
func invalidDefinition(file string, err error) error {
	var ve *flags.ValidationError
	if !errors.As(err, &ve) {
		return invalidf("%s: %v", file, err)
	}
	lines := make([]string, len(ve.Problems))
	for i, p := range ve.Problems {
		lines[i] = file + ": " + p.String()
	}
	return invalidf("%s", strings.Join(lines, "\n"))
}

func (a *app) flagsActionCommand(action, short string) *cobra.Command {
	var reason string
	cmd := &cobra.Command{
		Use:     action + " FLAG",
		Short:   short,
		Example: fmt.Sprintf("  shipgate flags %s new-checkout --reason \"...\"", action),
		Args:    argRange(1, 1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			d, err := c.FlagAction(cmd.Context(), args[0], action, reason)
			if err != nil {
				return err
			}
			return a.printChanged(d, action+"d")
		},
	}
	cmd.Flags().StringVar(&reason, "reason", "", "why (recorded in the audit log)")
	return cmd
}

func (a *app) flagsRolloutCommand() *cobra.Command {
	var (
		targets, segments, users, guards    []string
		steps                               []int
		clearFirst, replace, noWait, follow bool
		reason, bake, interval              string
		minRequests                         int
		timeout                             time.Duration
	)
	cmd := &cobra.Command{
		Use:   "rollout FLAG [PERCENT%]",
		Short: "Choose who gets a flag: users, segments, attribute rules, a percentage; or a guarded rollout",
		Long: `Choose who gets a boolean flag's "on" variant, without writing JSON Logic:
--users (targeting keys), --segment (shared rules), --target (attribute
rules: "email ends_with @acme.com", "country in CA,US", "plan = pro",
"appVersion >= 2.1.0") and a percentage of everyone else. They add to what
the flag has; --clear starts over. Raising the percentage keeps the users
who had the flag: 5% are among the 25%.

With --steps, --bake and --guard, a guarded rollout raises the percentage
step by step, comparing flag-on with flag-off requests as the builtin
router sees them (the app answers X-Flag-<key>: <variant>), and switches
the flag off by itself when a guard fails. It waits until the rollout ends
unless --no-wait: exit 0 at 100%, 3 when the flag was switched off.`,
		Example: `  shipgate flags rollout new-checkout --segment internal
  shipgate flags rollout new-checkout 5%
  shipgate flags rollout new-checkout --target "email ends_with @acme.com" --users u-1,u-2
  shipgate flags rollout new-checkout --steps 1,5,25,100 --bake 10m --guard "error_rate<0.5%" --guard "latency_p99<2x"`,
		Args: argRange(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			key := args[0]
			if follow {
				return a.followGuarded(cmd.Context(), key, timeout)
			}
			if len(steps) > 0 || len(guards) > 0 || bake != "" {
				if len(args) > 1 || len(targets)+len(segments)+len(users) > 0 || clearFirst {
					return invalidf("a guarded rollout (--steps) sets the percentage itself; set users, segments and rules first")
				}
				return a.guardedRollout(cmd.Context(), key, api.GuardRequest{Steps: steps, Bake: bake, Interval: interval, Guards: guards,
					MinRequests: minRequests, Reason: reason}, noWait, timeout)
			}
			req := api.TargetRequest{Users: users, Segments: segments, Rules: targets, Clear: clearFirst, Replace: replace, Reason: reason}
			for _, t := range targets {
				if _, err := flags.ParseRule(t); err != nil {
					return invalidf("invalid --target: %v", err)
				}
			}
			if len(args) == 2 {
				p, err := parsePercent(args[1])
				if err != nil {
					return err
				}
				req.Percent = &p
			}
			if req.Percent == nil && len(targets)+len(segments)+len(users) == 0 && !clearFirst {
				return invalidf("say who gets the flag: a percentage (5%%), --users, --segment or --target; see 'shipgate flags rollout --help'")
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			d, err := c.TargetFlag(cmd.Context(), key, req)
			if err != nil {
				return err
			}
			return a.printChanged(d, "now on for")
		},
	}
	f := cmd.Flags()
	f.StringArrayVar(&targets, "target", nil, `attribute rule, e.g. "email ends_with @acme.com" (repeatable)`)
	f.StringSliceVar(&segments, "segment", nil, "segment (shared rule) whose users get the flag (repeatable)")
	f.StringSliceVar(&users, "users", nil, "targeting keys that get the flag, comma-separated")
	f.BoolVar(&clearFirst, "clear", false, "drop the flag's users, segments and rules first")
	f.BoolVar(&replace, "replace", false, "overwrite hand-written targeting")
	f.StringVar(&reason, "reason", "", "why (recorded in the audit log)")
	f.IntSliceVar(&steps, "steps", nil, "guarded rollout: percentages, e.g. 1,5,25,100")
	f.StringVar(&bake, "bake", "", "guarded rollout: least time at each step, e.g. 10m")
	f.StringArrayVar(&guards, "guard", nil, `guarded rollout: e.g. "error_rate<0.5%", "latency_p99<2x", "latency_p99<300ms" (repeatable)`)
	f.StringVar(&interval, "interval", "", "guarded rollout: how often the guards are judged (default 1s)")
	f.IntVar(&minRequests, "min-requests", 0, "guarded rollout: flag-on requests needed before a guard passes (default 50)")
	f.BoolVar(&noWait, "no-wait", false, "guarded rollout: start it and return")
	f.BoolVar(&follow, "follow", false, "follow the flag's guarded rollout in progress until it ends")
	f.DurationVar(&timeout, "timeout", 24*time.Hour, "guarded rollout: how long to wait for the end")
	return cmd
}

func parsePercent(s string) (int, error) {
	n, err := strconv.Atoi(strings.TrimSuffix(s, "%"))
	if err != nil || n < 0 || n > 100 {
		return 0, invalidf("invalid percentage %q: want 0%% to 100%%, such as 5%%", s)
	}
	return n, nil
}

// guardedRollout starts a guarded rollout and, unless noWait, follows it.
func (a *app) guardedRollout(ctx context.Context, key string, req api.GuardRequest, noWait bool, timeout time.Duration) error {
	if len(req.Steps) == 0 || req.Bake == "" || len(req.Guards) == 0 {
		return invalidf("a guarded rollout needs --steps, --bake and at least one --guard")
	}
	for _, g := range req.Guards {
		if _, err := flags.ParseGuard(g); err != nil {
			return invalidf("invalid --guard: %v", err)
		}
	}
	c, err := a.client()
	if err != nil {
		return err
	}
	st, err := c.StartGuardedRollout(ctx, key, req)
	if err != nil {
		return err
	}
	if noWait {
		if a.jsonOutput() {
			return a.printJSON(st)
		}
		a.printf("guarded rollout of %s started: %v%%; follow it with 'shipgate flags rollout %s --follow'\n", key, st.Steps, key)
		return nil
	}
	return a.waitGuarded(ctx, c, st, timeout)
}

// followGuarded follows the guarded rollout of key that is in progress.
func (a *app) followGuarded(ctx context.Context, key string, timeout time.Duration) error {
	c, err := a.client()
	if err != nil {
		return err
	}
	st, err := c.GuardedRollout(ctx, key)
	if err != nil {
		return err
	}
	return a.waitGuarded(ctx, c, st, timeout)
}

// waitGuarded polls a guarded rollout until it ends and exits like
// deploy --wait: 0 at 100%, 3 when the flag was switched off.
func (a *app) waitGuarded(ctx context.Context, c *api.Client, st flags.GuardStatus, timeout time.Duration) error {
	key := st.Key
	var err error
	deadline := a.now().Add(timeout)
	lastLine := ""
	for {
		if !a.jsonOutput() {
			line := fmt.Sprintf("%s: step %d/%d at %d%%, %s", key, st.Step+1, len(st.Steps), st.Percent, orDash(string(st.Verdict)))
			if st.On.Requests > 0 {
				line += fmt.Sprintf(" (on: %d req, %s errors; off: %d req, %s errors)", st.On.Requests, percent(st.On.ErrorRate), st.Off.Requests, percent(st.Off.ErrorRate))
			}
			if line != lastLine {
				a.printf("%s\n", line)
				lastLine = line
			}
		}
		if st.Done() {
			break
		}
		if a.now().After(deadline) {
			return &ExitError{Code: ExitFailure, Err: fmt.Errorf("the guarded rollout of %s is still running after %s; it goes on without you", key, timeout)}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(a.pollInterval):
		}
		if st, err = c.GuardedRollout(ctx, key); err != nil {
			return err
		}
	}
	if a.jsonOutput() {
		if err := a.printJSON(st); err != nil {
			return err
		}
	} else {
		a.printf("%s: %s: %s\n", key, strings.ReplaceAll(st.Phase, "_", " "), st.Reason)
	}
	switch st.Phase {
	case flags.GuardSucceeded:
		return nil
	case flags.GuardSwitchedOff:
		return &ExitError{Code: ExitRolledBack}
	}
	return &ExitError{Code: ExitFailure}
}

func (a *app) flagsDeleteCommand() *cobra.Command {
	var (
		force  bool
		reason string
	)
	cmd := &cobra.Command{
		Use:   "delete FLAG",
		Short: "Delete a flag (archive it first; --force and --reason for one still in use)",
		Long: `Delete a flag. A flag evaluated in the last 7 days is still read by code:
archive it first ('shipgate flags archive'), or delete it with --force and
a --reason, which go to the audit log.`,
		Args: argRange(1, 1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if force && strings.TrimSpace(reason) == "" {
				return invalidf("--force needs a --reason: say why you delete a flag that is still in use")
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			if err := c.DeleteFlag(cmd.Context(), args[0], force, reason); err != nil {
				return err
			}
			if a.jsonOutput() {
				return a.printJSON(map[string]string{"deleted": args[0]})
			}
			a.printf("flag %s deleted\n", args[0])
			return nil
		},
	}
	cmd.Flags().BoolVar(&force, "force", false, "delete even if it was evaluated recently")
	cmd.Flags().StringVar(&reason, "reason", "", "why (required with --force)")
	return cmd
}

func (a *app) flagsImportCommand() *cobra.Command {
	var reason string
	cmd := &cobra.Command{
		Use:   "import FILE",
		Short: "Load a flagd flags file: every flag and shared rule in it is created or replaced",
		Long: `Load a flagd flag-definition file (JSON). Its flags and $evaluators are
created or replaced in one change; flags not in the file are left alone.
The file is checked before anything is sent: what flagd refuses to load
is printed with its JSON path, and the command exits 2 without changing
anything. What flagd loads and resolves at evaluation time (an unknown
operator, a $ref to no shared rule, a result that is not a variant) is
imported, and printed as a warning. A $ref may name a shared rule
already stored on the server.`,
		Example: "  shipgate flags import flags.flagd.json --reason \"move from flagd\"",
		Args:    argRange(1, 1),
		RunE: func(cmd *cobra.Command, args []string) error {
			data, err := os.ReadFile(args[0])
			if err != nil {
				return invalidf("read %s: %v", args[0], err)
			}
			if _, err := flags.ParseFile(data); err != nil {
				return invalidDefinition(args[0], err)
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			res, err := c.ImportFlags(cmd.Context(), data, reason)
			if err != nil {
				return err
			}
			if a.jsonOutput() {
				return a.printJSON(res)
			}
			if len(res.Changed) == 0 {
				a.printf("%s: nothing changed\n", args[0])
				return nil
			}
			a.printf("%s: %d flag%s created or changed: %s\n", args[0], len(res.Changed), pluralS(len(res.Changed)), strings.Join(res.Changed, ", "))
			for _, w := range res.Warnings {
				a.printf("warning: %s: %s\n", args[0], w)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&reason, "reason", "", "why (recorded in the audit log)")
	return cmd
}

func (a *app) flagsExportCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "export",
		Short: "Print every flag as a flagd flags file",
		Args:  argRange(0, 0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			b, err := c.ExportFlags(cmd.Context())
			if err != nil {
				return err
			}
			var v any
			if err := json.Unmarshal(b, &v); err != nil {
				return fmt.Errorf("decode export: %w", err)
			}
			return a.printJSON(v)
		},
	}
}

func (a *app) flagsStaleCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "stale",
		Short: "List flags that are debt: expired, unused, or at 100% for long, with their owners",
		Long: `List the flags to clean up: past their expiry date, not evaluated for 30
days (or never, 30 days after creation), or at 100% for 14 days, with
their owner and why. Exit code 0 either way; use -o json in scripts.`,
		Args: argRange(0, 0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			debts, err := c.StaleFlags(cmd.Context())
			if err != nil {
				return err
			}
			if a.jsonOutput() {
				return a.printJSON(debts)
			}
			if len(debts) == 0 {
				a.printf("no stale flags\n")
				return nil
			}
			t := newTable(a.stdout, "KEY", "OWNER", "STAGE", "WHY")
			for _, d := range debts {
				t.row(d.Key, d.Owner, string(d.Stage), strings.Join(d.Reasons, "; "))
			}
			return t.flush()
		},
	}
}

func (a *app) flagsSegmentCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "segment",
		Short: "Manage segments: named groups of users shared by flags",
		Args:  argRange(0, 0),
		RunE:  func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	var (
		targets      []string
		rule, reason string
	)
	set := &cobra.Command{
		Use:   "set NAME --target RULE...",
		Short: "Create or change a segment: any of its rules matches",
		Example: `  shipgate flags segment set internal --target "email ends_with @acme.com" --target "plan = staff"
  shipgate flags segment set beta --rule '{"in": [{"var": "targetingKey"}, ["u1", "u2"]]}'`,
		Args: argRange(1, 1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if (len(targets) == 0) == (rule == "") {
				return invalidf("give either --target rules or one --rule (JSON Logic)")
			}
			for _, t := range targets {
				if _, err := flags.ParseRule(t); err != nil {
					return invalidf("invalid --target: %v", err)
				}
			}
			req := api.SegmentRequest{Rules: targets, Reason: reason}
			if rule != "" {
				if !json.Valid([]byte(rule)) {
					return invalidf("--rule is not valid JSON")
				}
				req.Rule = json.RawMessage(rule)
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			seg, err := c.PutSegment(cmd.Context(), args[0], req)
			if err != nil {
				return err
			}
			if a.jsonOutput() {
				return a.printJSON(seg)
			}
			a.printf("segment %s: %s\n", seg.Name, seg.Rule)
			return nil
		},
	}
	set.Flags().StringArrayVar(&targets, "target", nil, `attribute rule, e.g. "email ends_with @acme.com" (repeatable)`)
	set.Flags().StringVar(&rule, "rule", "", "the rule as JSON Logic")
	set.Flags().StringVar(&reason, "reason", "", "why (recorded in the audit log)")
	cmd.AddCommand(set)
	return cmd
}

func (a *app) flagsKeysCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "keys",
		Short: "Manage flag client keys, which apps use to evaluate flags",
		Args:  argRange(0, 0),
		RunE:  func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(&cobra.Command{
		Use:   "create NAME",
		Short: "Create a key that can only evaluate flags (shown once)",
		Long: `Create a flag client key for an app's OpenFeature SDK. It can evaluate
flags over OFREP and do nothing else: every admin route refuses it. The
secret is shown once. Needs an admin token.`,
		Args: argRange(1, 1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			k, err := c.CreateFlagKey(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if a.jsonOutput() {
				return a.printJSON(k)
			}
			a.printf("flag client key %s (shown once):\n%s\n", k.Name, k.Secret)
			return nil
		},
	})
	return cmd
}
