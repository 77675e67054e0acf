package cli

import (
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/shipgate/shipgate/internal/rollout"
)

func (a *app) releaseCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "release",
		Short: "Record releases and their CI checks",
		Long: `Record a release with the results of its CI checks (release create), or
show one (release show). A deploy's checks gate reads them.`,
		Args: subcommandArgs("release"),
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(a.releaseCreateCommand(), a.releaseShowCommand())
	return cmd
}

func (a *app) releaseCreateCommand() *cobra.Command {
	var (
		commit     string
		commitTime string
		checks     []string
		vars       []string
		image      string
		change     changeFlags
		tf         testFlags
	)
	cmd := &cobra.Command{
		Use:   "create APP VERSION --commit SHA",
		Short: "Record a release and its CI checks (CI calls it after its build)",
		Long: `Record VERSION of APP with the commit it was built from and the results
of its CI checks. Recording the same version again adds or updates checks,
so CI may report each check as it finishes; a different commit for the
same version is refused.

A check is NAME=STATE: the name starts with a letter or digit and holds
letters, digits, '.', '_' and '-'; the state is passed, failed or pending.

Exits 0 once recorded, 2 for invalid input, 1 on any other error.`,
		Example: `  shipgate release create shop 1.4.2 --commit "$GITHUB_SHA" --check unit=passed --check e2e=pending
  shipgate release create shop 1.4.2 --commit "$GITHUB_SHA" --commit-time "$(git show -s --format=%cI)" --check e2e=passed`,
		Args: argRange(2, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if strings.TrimSpace(commit) == "" {
				return invalidf("--commit is required: the commit SHA the release was built from, for example --commit \"$(git rev-parse HEAD)\"")
			}
			var ct time.Time
			if commitTime != "" {
				t, err := time.Parse(time.RFC3339, commitTime)
				if err != nil {
					return invalidf("invalid --commit-time %q: want an RFC 3339 time such as 2025-03-01T14:02:00Z (git show -s --format=%%cI)", commitTime)
				}
				ct = t
			}
			cm, err := parseChecks(checks)
			if err != nil {
				return err
			}
			vm, err := parseVars(vars)
			if err != nil {
				return err
			}
			changeReq, err := change.request(cmd)
			if err != nil {
				return err
			}
			upload, err := tf.upload(commit)
			if err != nil {
				return err
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			rel, err := c.CreateRelease(cmd.Context(), rollout.ReleaseRequest{
				App:        args[0],
				Version:    args[1],
				Commit:     commit,
				CommitTime: ct,
				Checks:     cm,
				Vars:       vm,
				Image:      image,
			})
			if err != nil {
				return err
			}
			if changeReq != nil {
				if _, err := c.PutChange(cmd.Context(), rel.App, rel.Version, *changeReq); err != nil {
					return err
				}
			}
			if upload != nil {
				return a.recordTests(cmd.Context(), c, rel, *upload)
			}
			if a.jsonOutput() {
				return a.printJSON(rel)
			}
			a.printf("release %s %s recorded\n", rel.App, rel.Version)
			return a.printRelease(rel)
		},
	}
	f := cmd.Flags()
	f.StringVar(&commit, "commit", "", "source commit SHA the release was built from (required)")
	f.StringVar(&commitTime, "commit-time", "", "when the commit was made, RFC 3339; used for lead time")
	f.StringArrayVar(&checks, "check", nil, "CI check result `NAME=STATE` (repeatable); STATE is passed, failed or pending")
	f.StringArrayVar(&vars, "var", nil, "release variable `KEY=VALUE` (repeatable); overrides the app's vars")
	f.StringVar(&image, "image", "", "container `IMAGE` of the release on Kubernetes (a deploy of it gives the same --image)")
	change.register(f)
	tf.register(cmd)
	return cmd
}

func (a *app) releaseShowCommand() *cobra.Command {
	return &cobra.Command{
		Use:     "show APP VERSION",
		Short:   "Show a release: its commit, CI checks and variables (values for admin tokens only)",
		Example: `  shipgate release show shop 1.4.2 -o json`,
		Args:    argRange(2, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			rel, err := c.GetRelease(cmd.Context(), args[0], args[1])
			if err != nil {
				return err
			}
			if a.jsonOutput() {
				return a.printJSON(rel)
			}
			a.printf("release %s %s\n", rel.App, rel.Version)
			return a.printRelease(rel)
		},
	}
}

// parseChecks turns NAME=STATE flags into a map. The name and the state
// are checked by the server, which names the one at fault.
func parseChecks(checks []string) (map[string]rollout.CheckState, error) {
	if len(checks) == 0 {
		return nil, nil
	}
	m := make(map[string]rollout.CheckState, len(checks))
	for _, kv := range checks {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" || v == "" {
			return nil, invalidf("invalid --check %q: want NAME=STATE, STATE one of passed, failed, pending", kv)
		}
		m[k] = rollout.CheckState(v)
	}
	return m, nil
}

// printRelease prints a release's commit and checks, after its title line.
func (a *app) printRelease(rel rollout.Release) error {
	now := a.now()
	commit := orDash(rel.Commit)
	if !rel.CommitTime.IsZero() {
		commit += " at " + clock(rel.CommitTime, now)
	}
	t := newTable(a.stdout)
	t.row("commit", commit)
	names := slices.Sorted(maps.Keys(rel.Checks))
	checks := make([]string, len(names))
	for i, n := range names {
		checks[i] = n + " " + string(rel.Checks[n])
	}
	t.row("checks", strings.Join(checks, ", "))
	if rel.Image != "" {
		t.row("image", rel.Image)
	}
	// Values are secrets: the server sends them to admin tokens only, and
	// "[redacted]" to the others.
	vars := make([]string, 0, len(rel.Vars))
	for _, n := range slices.Sorted(maps.Keys(rel.Vars)) {
		vars = append(vars, n+"="+rel.Vars[n])
	}
	if len(vars) > 0 {
		t.row("vars", strings.Join(vars, ", "))
	}
	return t.flush()
}
