package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/shipgate/shipgate/internal/api"
	"github.com/shipgate/shipgate/internal/rollout"
	"github.com/shipgate/shipgate/internal/testsignal"
)

// testFlags are the test signal flags of release create.
type testFlags struct {
	junit      []string
	ciDuration time.Duration
}

func (tf *testFlags) register(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringArrayVar(&tf.junit, "junit", nil, "JUnit XML report `FILE` of the release's CI run (repeatable); each test's result is recorded")
	f.DurationVar(&tf.ciDuration, "ci-duration", 0, "how long the CI run took, such as 12m30s; the ci_time gate reads it")
}

// upload reads the reports, or returns nil when there are none.
func (tf *testFlags) upload(commit string) (*api.TestUploadRequest, error) {
	if len(tf.junit) == 0 {
		if tf.ciDuration != 0 {
			return nil, invalidf("--ci-duration goes with --junit: give the CI run's JUnit reports too")
		}
		return nil, nil
	}
	if tf.ciDuration < 0 {
		return nil, invalidf("invalid --ci-duration %s: must not be negative", tf.ciDuration)
	}
	req := &api.TestUploadRequest{Commit: commit}
	if tf.ciDuration > 0 {
		req.CIDuration = tf.ciDuration.String()
	}
	for _, name := range tf.junit {
		info, err := os.Stat(name)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			return nil, invalidf("--junit %s: no such file", name)
		case err != nil:
			return nil, fmt.Errorf("--junit %s: %w", name, err)
		case info.Size() > testsignal.MaxReportSize:
			return nil, invalidf("--junit %s: larger than %d MiB", name, testsignal.MaxReportSize>>20)
		}
		b, err := os.ReadFile(name) //nolint:gosec // a report the user named
		if err != nil {
			return nil, fmt.Errorf("--junit %s: %w", name, err)
		}
		// Checked here too, so that a bad file records nothing at all.
		if _, err := testsignal.ParseJUnit(bytes.NewReader(b)); err != nil {
			return nil, invalidf("--junit %s: %v", name, err)
		}
		req.Reports = append(req.Reports, string(b))
	}
	return req, nil
}

// releaseTests is the JSON output of release create --junit.
type releaseTests struct {
	Release rollout.Release       `json:"release"`
	Tests   testsignal.RunSummary `json:"tests"`
}

// recordTests uploads a release's test reports and prints the release
// with what the reports say.
func (a *app) recordTests(ctx context.Context, c *api.Client, rel rollout.Release, req api.TestUploadRequest) error {
	sum, err := c.RecordTests(ctx, rel.App, rel.Version, req)
	if err != nil {
		var fe *rollout.FieldError
		if errors.As(err, &fe) {
			// reports[i] is the i-th --junit file.
			var i int
			if _, scanErr := fmt.Sscanf(fe.Field, "reports[%d]", &i); scanErr == nil {
				return &ExitError{Code: ExitInvalid, Err: fmt.Errorf("--junit: %s", fe.Message)}
			}
		}
		return err
	}
	if a.jsonOutput() {
		return a.printJSON(releaseTests{Release: rel, Tests: sum})
	}
	a.printf("release %s %s recorded\n", rel.App, rel.Version)
	if err := a.printRelease(rel); err != nil {
		return err
	}
	t := newTable(a.stdout)
	total := sum.Counts.Total
	t.row("tests", fmt.Sprintf("%d: %d passed, %d failed, %d skipped, %d passed on a retry", total.Total, total.Passed, total.Failed, total.Skipped, total.Flaky))
	for _, level := range []string{testsignal.LevelUnit, testsignal.LevelIntegration, testsignal.LevelE2E} {
		if c, ok := sum.Counts.ByLevel[level]; ok {
			t.row("  "+level, fmt.Sprintf("%d: %d passed, %d failed", c.Total, c.Passed, c.Failed))
		}
	}
	if sum.Run.CIDuration > 0 {
		t.row("CI time", humanDuration(sum.Run.CIDuration))
	}
	if sum.Run.Infra {
		t.row("infra", "most tests failed at once: taken for an infrastructure failure, not for flaky tests")
	}
	if err := t.flush(); err != nil {
		return err
	}
	now := a.now()
	for _, f := range sum.Flaky {
		a.printf("flaky: %s, for %s (%s)\n", f.ID, humanDuration(f.Age(now)), f.Reason)
	}
	return nil
}

func (a *app) testsCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "tests",
		Short: "Look at the test results recorded with releases",
		Args:  subcommandArgs("tests"),
		RunE:  func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(a.testsFlakyCommand())
	return cmd
}

func (a *app) testsFlakyCommand() *cobra.Command {
	var repo string
	cmd := &cobra.Command{
		Use:   "flaky [APP]",
		Short: "List the flaky tests: since when, and who owns them",
		Long: `List the tests that are flaky now, oldest first: the test, its level,
how long it has been flaky, why it counts as flaky, and its owner from the
repository's CODEOWNERS (CODEOWNERS, .github/CODEOWNERS, docs/CODEOWNERS or
.gitlab/CODEOWNERS in --repo) when there is one.

A test is flaky from the first run in which it failed and passed on the
same commit (a retry, or two CI runs) or kept changing outcome; it stays
flaky until it passes ten runs in a row at the first attempt. APP defaults
to the app the server manages.`,
		Example: `  shipgate tests flaky
  shipgate tests flaky shop --repo . -o json`,
		Args: argRange(0, 1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, app, err := a.appClient(cmd.Context(), args)
			if err != nil {
				return err
			}
			list, err := c.FlakyTests(cmd.Context(), app)
			if err != nil {
				return err
			}
			if owners := readCodeOwners(repo); owners != nil {
				for i := range list {
					list[i].Owner = owners.Owner(testsignal.TestPath(list[i]))
				}
			}
			if a.jsonOutput() {
				return a.printJSON(list)
			}
			if len(list) == 0 {
				a.printf("no flaky tests in %s\n", app)
				return nil
			}
			now := a.now()
			t := newTable(a.stdout, "TEST", "LEVEL", "FLAKY FOR", "SINCE", "OWNER", "WHY")
			for _, f := range list {
				t.row(f.ID, f.Level, humanDuration(f.Age(now)), f.FirstSeen.UTC().Format(time.RFC3339), f.Owner, f.Reason)
			}
			if err := t.flush(); err != nil {
				return err
			}
			noun := "tests"
			if len(list) == 1 {
				noun = "test"
			}
			a.printf("%s %s flaky\n", strconv.Itoa(len(list)), noun)
			return nil
		},
	}
	cmd.Flags().StringVar(&repo, "repo", ".", "the repository whose CODEOWNERS names the owners")
	return cmd
}

// readCodeOwners reads the repository's CODEOWNERS from where GitHub and
// GitLab look for it, nil when there is none.
func readCodeOwners(repo string) testsignal.CodeOwners {
	for _, p := range []string{".github/CODEOWNERS", "CODEOWNERS", "docs/CODEOWNERS", ".gitlab/CODEOWNERS"} {
		b, err := os.ReadFile(filepath.Join(repo, p)) //nolint:gosec // a file of the repository the user named
		if err == nil {
			return testsignal.ParseCodeOwners(string(b))
		}
	}
	return nil
}
