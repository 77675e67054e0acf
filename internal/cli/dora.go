package cli

import (
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/shipgate/shipgate/internal/api"
	"github.com/shipgate/shipgate/internal/dora"
	"github.com/shipgate/shipgate/internal/report"
	"github.com/shipgate/shipgate/internal/rollout"
)

// Output formats some commands offer besides text and json; a command
// lists them in its annotationFormats annotation.
const (
	outputMarkdown    = "md"
	outputHTML        = "html"
	annotationFormats = "shipgate.formats"
)

func (a *app) doraCommand() *cobra.Command {
	var q report.Query
	var since string
	cmd := &cobra.Command{
		Use:   "dora",
		Short: "Show the DORA keys per app and environment",
		Long: `Show the five DORA keys computed from Shipgate's own record: deployment
frequency (deploys and deploy-days per week), change lead time (median and
p90, first commit to live at 100%), change fail rate, failed deployment
recovery time and deployment rework rate. Every number shows its sample
size, its band (DORA 2023) and its trend against the four weeks before.

The period is --week (last, this or 2026-W48) or the --since before now
(default 28d). Weeks start on the server's zone Monday 00:00 unless
--timezone or --week-start say otherwise. See docs/dora.md.`,
		Example: `  shipgate dora --env production
  shipgate dora --app shop --week 2026-W48 -o md
  shipgate dora --since 12w --timezone Europe/Paris -o json`,
		Annotations: map[string]string{annotationFormats: outputMarkdown},
		Args:        argRange(0, 0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			d, err := report.ParseSince(since)
			if err != nil {
				return invalidf("invalid --since: %s", err.Error())
			}
			if d != 0 && q.Week != "" {
				return invalidf("give --week or --since, not both")
			}
			q.Since = d
			c, err := a.client()
			if err != nil {
				return err
			}
			v, err := c.DORA(cmd.Context(), q)
			if err != nil {
				return err
			}
			switch a.output {
			case outputJSON:
				return a.printJSON(v)
			case outputMarkdown:
				return report.WriteDORAMarkdown(a.stdout, v)
			}
			return a.printDORA(v)
		},
	}
	cmd.AddCommand(a.doraRecordCommand())
	f := cmd.Flags()
	f.StringVar(&q.App, "app", "", "only this app")
	f.StringVar(&q.Env, "env", "production", "only this environment (\"\" for all)")
	f.StringVar(&since, "since", "", "the period before now: 28d, 4w, 36h (default 28d)")
	f.StringVar(&q.Week, "week", "", "one week instead: last, this or an ISO week such as 2026-W48")
	f.StringVar(&q.Timezone, "timezone", "", "time zone of week and day boundaries (IANA name; default the server's)")
	f.StringVar(&q.WeekStart, "week-start", "", "first day of the week (default monday)")
	return cmd
}

func (a *app) printDORA(v report.View) error {
	a.printf("DORA keys, %s to %s (weeks start %s 00:00 %s; bands: %s)\n",
		v.From.Format("2006-01-02 15:04"), v.To.Format("2006-01-02 15:04"), v.WeekStart, v.Timezone, dora.BandSource)
	if len(v.Summaries) == 0 {
		a.printf("no rollouts in this period or the four weeks before\n")
		return nil
	}
	for _, s := range v.Summaries {
		a.printf("\n%s/%s\n", s.App, s.Env)
		t := newTable(a.stdout, "KEY", "VALUE", "BAND", "TREND")
		for _, r := range report.Rows(s) {
			t.row(r.Key, r.Value, r.Band, r.Trend)
		}
		if err := t.flush(); err != nil {
			return err
		}
		if n := s.Keys.NotReachedUsers; n > 0 {
			a.printf("%d rollout(s) stopped before any user saw them (not deployments)\n", n)
		}
	}
	return nil
}

func (a *app) incidentCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "incident",
		Short: "Record production incidents and the deploys that caused and fixed them",
		Long: `Record an incident against the deploy (rollout id) that caused it, and
resolve it, naming the deploy that fixed it. DORA counts the deploy as
failed and the fix as rework; nothing is linked by guesswork.`,
		Args: subcommandArgs("incident"),
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(a.incidentOpenCommand(), a.incidentResolveCommand(), a.incidentListCommand())
	return cmd
}

func parseOptionalTime(flag, s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, invalidf("invalid --%s %q: want an RFC 3339 time such as 2026-11-24T03:12:00Z", flag, s)
	}
	return t, nil
}

func (a *app) incidentOpenCommand() *cobra.Command {
	var (
		req api.IncidentRequest
		at  string
	)
	cmd := &cobra.Command{
		Use:     "open APP --env ENV --deploy ID --title TEXT",
		Short:   "Open an incident, linked to the deploy that caused it",
		Example: `  shipgate incident open shop --env production --deploy 42 --title "checkout 500s" --at 2026-11-24T03:12:00Z`,
		Args:    argRange(1, 1),
		RunE: func(cmd *cobra.Command, args []string) error {
			t, err := parseOptionalTime("at", at)
			if err != nil {
				return err
			}
			req.App, req.OpenedAt = args[0], t
			c, err := a.client()
			if err != nil {
				return err
			}
			in, err := c.OpenIncident(cmd.Context(), req)
			if err != nil {
				return err
			}
			return render(a, in, func(in dora.Incident) error {
				a.printf("incident %d opened on %s/%s%s\n", in.ID, in.App, in.Env, deployNote(" against deploy", in.DeployID))
				return nil
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&req.Env, "env", "production", "environment")
	f.Int64Var(&req.DeployID, "deploy", 0, "rollout id of the deploy that caused it (0: unknown)")
	f.StringVar(&req.Title, "title", "", "what went wrong (required)")
	f.StringVar(&at, "at", "", "when it was detected, RFC 3339 (default now)")
	return cmd
}

func deployNote(prefix string, id int64) string {
	if id == 0 {
		return ""
	}
	return prefix + " " + strconv.FormatInt(id, 10)
}

func (a *app) incidentResolveCommand() *cobra.Command {
	var (
		req api.ResolveRequest
		at  string
	)
	cmd := &cobra.Command{
		Use:     "resolve ID [--fixed-by DEPLOY]",
		Short:   "Resolve an incident, naming the deploy that fixed it",
		Example: `  shipgate incident resolve 3 --fixed-by 45`,
		Args:    argRange(1, 1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := strconv.ParseInt(args[0], 10, 64)
			if err != nil || id <= 0 {
				return invalidf("invalid incident id %q", args[0])
			}
			if req.ResolvedAt, err = parseOptionalTime("at", at); err != nil {
				return err
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			in, err := c.ResolveIncident(cmd.Context(), id, req)
			if err != nil {
				return err
			}
			return render(a, in, func(in dora.Incident) error {
				a.printf("incident %d resolved%s\n", in.ID, deployNote(" by deploy", in.FixDeployID))
				return nil
			})
		},
	}
	f := cmd.Flags()
	f.Int64Var(&req.FixDeployID, "fixed-by", 0, "rollout id of the deploy (a hotfix) that fixed it")
	f.StringVar(&at, "at", "", "when service was restored, RFC 3339 (default now)")
	return cmd
}

func (a *app) incidentListCommand() *cobra.Command {
	var app, env string
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List incidents",
		Args:  argRange(0, 0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			ins, err := c.ListIncidents(cmd.Context(), app, env)
			if err != nil {
				return err
			}
			return render(a, ins, func(ins []dora.Incident) error {
				now := a.now()
				t := newTable(a.stdout, "ID", "APP", "ENV", "DEPLOY", "FIXED BY", "OPENED", "RESOLVED", "TITLE")
				for _, in := range ins {
					resolved := ""
					if !in.ResolvedAt.IsZero() {
						resolved = clock(in.ResolvedAt, now)
					}
					t.row(strconv.FormatInt(in.ID, 10), in.App, in.Env, idOrDash(in.DeployID), idOrDash(in.FixDeployID),
						clock(in.OpenedAt, now), resolved, in.Title)
				}
				return t.flush()
			})
		},
	}
	cmd.Flags().StringVar(&app, "app", "", "only this app")
	cmd.Flags().StringVar(&env, "env", "", "only this environment")
	return cmd
}

func idOrDash(id int64) string {
	if id == 0 {
		return "-"
	}
	return strconv.FormatInt(id, 10)
}

// parseChangeCommits reads --change-commit SHA=TIME flags.
func parseChangeCommits(flags []string) ([]dora.Commit, error) {
	var out []dora.Commit
	for _, f := range flags {
		sha, at, ok := strings.Cut(f, "=")
		t, err := time.Parse(time.RFC3339, at)
		if !ok || sha == "" || err != nil {
			return nil, invalidf("invalid --change-commit %q: want SHA=TIME, TIME in RFC 3339 (git log --format=%%H=%%cI)", f)
		}
		out = append(out, dora.Commit{SHA: sha, Time: t})
	}
	return out, nil
}

// changeFlags are release create's flags for the change a release brings
// (docs/dora.md): its commits and its size.
type changeFlags struct {
	commits           []string
	files, lines, prs int
	gitRange          string
}

func (c *changeFlags) register(f *pflag.FlagSet) {
	f.StringArrayVar(&c.commits, "change-commit", nil, "a commit of the change since the previous release, `SHA=TIME` (repeatable); the oldest starts the lead time")
	f.IntVar(&c.files, "files", 0, "files changed since the previous release")
	f.IntVar(&c.lines, "lines", 0, "lines changed (added + deleted) since the previous release")
	f.IntVar(&c.prs, "prs", 0, "pull requests merged since the previous release")
	f.StringVar(&c.gitRange, "git-range", "", "read the change from the git repository here: the commits, files, lines and PRs of `FROM..TO` (the previous release's commit to this one's)")
}

// request returns the change to record, nil when no change flag was given.
func (c *changeFlags) request(cmd *cobra.Command) (*api.ChangeRequest, error) {
	commits, err := parseChangeCommits(c.commits)
	if err != nil {
		return nil, err
	}
	f := cmd.Flags()
	sized := f.Changed("files") || f.Changed("lines") || f.Changed("prs")
	if c.gitRange != "" {
		if len(commits) > 0 || sized {
			return nil, invalidf("give --git-range, or --change-commit and --files/--lines/--prs, not both")
		}
		gc, size, err := gitChange(cmd.Context(), c.gitRange)
		if err != nil {
			return nil, err
		}
		return &api.ChangeRequest{Commits: gc, Size: &size}, nil
	}
	if len(commits) == 0 && !sized {
		return nil, nil
	}
	req := &api.ChangeRequest{Commits: commits}
	if sized {
		if c.files < 0 || c.lines < 0 || c.prs < 0 {
			return nil, invalidf("--files, --lines and --prs must be 0 or more")
		}
		req.Size = &dora.Size{Files: c.files, Lines: c.lines, PRs: c.prs}
	}
	return req, nil
}

func (a *app) reportCommand() *cobra.Command {
	var q report.WeekQuery
	cmd := &cobra.Command{
		Use:   "report",
		Short: "The Monday report: last week's deploy success rate and DORA keys",
		Long: `Print the weekly report of an environment (production by default): the
deploy success rate as the headline, the DORA keys of each app with their
band and trend (sparklines of the four weeks before), the failed deploys
with the gate, value and threshold that convicted them, the slowest lead
times, the fail rate by change size, flags past their expiry and the
migrations that were reverted.

-o md (the default text output is the same Markdown), -o html (one
self-contained page with inline SVG charts) or -o json.`,
		Example: `  shipgate report --week last -o html > report.html
  shipgate report --week 2026-W48 --env production -o json`,
		Annotations: map[string]string{annotationFormats: outputMarkdown + " " + outputHTML},
		Args:        argRange(0, 0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			rep, err := c.Report(cmd.Context(), q)
			if err != nil {
				return err
			}
			format := a.output
			if format == outputText {
				format = report.FormatMarkdown
			}
			return report.Render(a.stdout, rep, format)
		},
	}
	f := cmd.Flags()
	f.StringVar(&q.Week, "week", "last", "the week: last, this or an ISO week such as 2026-W48")
	f.StringVar(&q.App, "app", "", "only this app")
	f.StringVar(&q.Env, "env", "production", "the environment")
	f.StringVar(&q.Timezone, "timezone", "", "time zone of week boundaries (IANA name; default the server's)")
	f.StringVar(&q.WeekStart, "week-start", "", "first day of the week (default monday)")
	return cmd
}

func (a *app) doraRecordCommand() *cobra.Command {
	var (
		req                                   api.ExternalDeployRequest
		started, live, rolledBack, restoredAt string
	)
	cmd := &cobra.Command{
		Use:   "record APP VERSION --at T [--live-at T] [--rolled-back-at T --restored-at T]",
		Short: "Record a deploy made outside Shipgate, so that DORA counts it",
		Long: `Record a deploy that happened outside Shipgate (before it was adopted, or
by another tool) as a finished rollout of kind external: DORA counts it as
a deployment, incidents can name it by its rollout id, and the engine never
acts on it. Give --rolled-back-at (and --restored-at) for one that was
undone.`,
		Example: `  shipgate dora record shop 1.3.0 --env production --at 2026-11-02T10:00:00Z --live-at 2026-11-02T10:20:00Z
  shipgate dora record shop 1.3.1 --at 2026-11-03T09:00:00Z --rolled-back-at 2026-11-03T09:40:00Z --restored-at 2026-11-03T09:45:00Z`,
		Args: argRange(2, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			req.App, req.Version = args[0], args[1]
			for _, t := range []struct {
				flag, s string
				into    *time.Time
			}{{"at", started, &req.StartedAt}, {"live-at", live, &req.LiveAt}, {"rolled-back-at", rolledBack, &req.RolledBackAt}, {"restored-at", restoredAt, &req.RestoredAt}} {
				v, err := parseOptionalTime(t.flag, t.s)
				if err != nil {
					return err
				}
				*t.into = v
			}
			if req.StartedAt.IsZero() {
				return invalidf("--at is required: when the deploy began, RFC 3339")
			}
			if req.LiveAt.IsZero() && req.RolledBackAt.IsZero() {
				req.LiveAt = req.StartedAt
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			ro, err := c.RecordExternalDeploy(cmd.Context(), req)
			if err != nil {
				return err
			}
			return render(a, ro, func(ro rollout.Rollout) error {
				a.printf("deploy of %s %s in %s recorded as rollout %d (%s)\n", ro.App, ro.Version, ro.Env, ro.ID, ro.Phase)
				return nil
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&req.Env, "env", "production", "environment")
	f.StringVar(&started, "at", "", "when the deploy began, RFC 3339 (required)")
	f.StringVar(&live, "live-at", "", "when it served every user (default --at, unless it was rolled back)")
	f.StringVar(&rolledBack, "rolled-back-at", "", "when it was found bad and undone")
	f.StringVar(&restoredAt, "restored-at", "", "when the old version served everyone again")
	f.BoolVar(&req.Hotfix, "hotfix", false, "it was an emergency fix (rework)")
	f.StringVar(&req.Reason, "reason", "", "why, in words")
	return cmd
}
