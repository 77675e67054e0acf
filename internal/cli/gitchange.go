package cli

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/shipgate/shipgate/internal/dora"
)

// gitChange reads a release's change from the git repository in the
// working directory: the commits of rng (like "v1.4.1..HEAD") with their
// committer times, the files and lines changed (git diff --shortstat), and
// the pull requests merged (merge commits "Merge pull request #N" and
// squash merges ending "(#N)").
func gitChange(ctx context.Context, rng string) ([]dora.Commit, dora.Size, error) {
	if !strings.Contains(rng, "..") || strings.HasPrefix(rng, "-") {
		return nil, dora.Size{}, invalidf("invalid --git-range %q: want FROM..TO, like v1.4.1..HEAD (the previous release's commit to this one's)", rng)
	}
	out, err := git(ctx, "log", "--format=%H%x09%cI%x09%s", rng)
	if err != nil {
		return nil, dora.Size{}, err
	}
	var (
		commits []dora.Commit
		prs     = map[string]bool{}
	)
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if line == "" {
			continue
		}
		parts := strings.SplitN(line, "\t", 3)
		if len(parts) < 3 {
			return nil, dora.Size{}, fmt.Errorf("git log: unexpected line %q", line)
		}
		t, err := time.Parse(time.RFC3339, parts[1])
		if err != nil {
			return nil, dora.Size{}, fmt.Errorf("git log: commit %s: time %q: %w", parts[0], parts[1], err)
		}
		commits = append(commits, dora.Commit{SHA: parts[0], Time: t})
		if m := prPattern.FindStringSubmatch(parts[2]); m != nil {
			prs[m[1]+m[2]] = true
		}
	}
	stat, err := git(ctx, "diff", "--shortstat", rng)
	if err != nil {
		return nil, dora.Size{}, err
	}
	size := dora.Size{PRs: len(prs)}
	for _, m := range statPattern.FindAllStringSubmatch(stat, -1) {
		n, _ := strconv.Atoi(m[1])
		if strings.HasPrefix(m[2], "file") {
			size.Files = n
		} else {
			size.Lines += n
		}
	}
	return commits, size, nil
}

var (
	// prPattern finds a pull request number in a merge commit's subject
	// ("Merge pull request #12 from ...") or a squash merge's ("... (#12)").
	prPattern   = regexp.MustCompile(`^Merge pull request #(\d+)|\(#(\d+)\)$`)
	statPattern = regexp.MustCompile(`(\d+) (files? changed|insertions?\(\+\)|deletions?\(-\))`)
)

func git(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "git", args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("git %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}
