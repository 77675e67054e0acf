package cli

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/shipgate/shipgate/internal/api"
	"github.com/shipgate/shipgate/internal/rollout"
)

// maxPollFailures is how many polls in a row may fail to reach the server
// before --wait gives up; a server restart takes a few seconds, and the
// rollout resumes on its own after it.
const maxPollFailures = 20

// live reports whether a rollout is over for the person waiting on it: it
// reached a final phase, or its release was promoted to 100% and only the
// old instances are left to drain. A drill is not over at its promotion:
// the release that was current is still to be restored.
func live(ro rollout.Rollout) bool {
	return ro.Kind != rollout.KindDrill && ro.Phase == rollout.PhaseRunning && !ro.PromotedAt.IsZero()
}

// waitingForApproval reports whether a rollout waits for someone to run
// shipgate approve.
func waitingForApproval(ro rollout.Rollout) bool {
	return ro.Phase == rollout.PhaseRunning && ro.Approval == nil &&
		ro.StepIndex < len(ro.Steps) && ro.Steps[ro.StepIndex].Kind == rollout.StepApproval
}

func settled(ro rollout.Rollout) bool { return ro.Phase.Final() || live(ro) }

// waitFlags are --wait and --timeout, of the commands that start a
// rollout: deploy, rollback and drill.
type waitFlags struct {
	wait    bool
	timeout time.Duration
}

// register adds the flags to cmd, whose rollout is called what (a
// rollout, a rollback, a drill) and is over when until says.
func (wf *waitFlags) register(cmd *cobra.Command, what, until string) {
	f := cmd.Flags()
	f.BoolVar(&wf.wait, "wait", false, "follow the "+what+" until "+until)
	f.DurationVar(&wf.timeout, "timeout", 30*time.Minute, "with --wait, how long to wait before giving up (the "+what+" goes on)")
}

// check returns the ExitInvalid error of a --timeout that is not positive.
func (wf waitFlags) check() error {
	if wf.timeout <= 0 {
		return invalidf("invalid --timeout %s: want a positive duration such as 30m", wf.timeout)
	}
	return nil
}

// follow reports a rollout that was just started: with --wait it follows
// it until it settles, else it says that it started.
func (a *app) follow(ctx context.Context, c *api.Client, ro rollout.Rollout, wf waitFlags) error {
	if wf.wait {
		return a.waitAndReport(ctx, c, ro, wf.timeout)
	}
	return a.printStarted(ro)
}

// waitAndReport follows a rollout until it settles, then prints the
// outcome and returns the error that gives the exit code.
func (a *app) waitAndReport(ctx context.Context, c *api.Client, ro rollout.Rollout, timeout time.Duration) error {
	ro, err := a.wait(ctx, c, ro, timeout)
	if err != nil {
		return err
	}
	return a.report(ro)
}

// wait polls a rollout until it settles or timeout passes, showing its
// progress on stderr in text mode.
func (a *app) wait(ctx context.Context, c *api.Client, ro rollout.Rollout, timeout time.Duration) (rollout.Rollout, error) {
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	p := &progress{a: a}
	p.show(ro)
	tick := time.NewTicker(a.pollInterval)
	defer tick.Stop()
	failures := 0
	for !settled(ro) {
		select {
		case <-wctx.Done():
			goesOn := fmt.Sprintf("rollout %d goes on on the server (%s, %s); follow it with: shipgate status %s", ro.ID, ro.Phase, stepText(ro), ro.App)
			if ctx.Err() != nil {
				return ro, &ExitError{Code: ExitFailure, Err: errors.New("interrupted; " + goesOn)}
			}
			return ro, &ExitError{Code: ExitFailure, Err: fmt.Errorf("timed out after %s; %s", humanDuration(timeout), goesOn)}
		case <-tick.C:
		}
		next, err := c.GetRollout(wctx, ro.ID)
		if err != nil {
			if wctx.Err() != nil {
				continue // the select above says why
			}
			var ae *api.APIError
			if errors.As(err, &ae) || failures >= maxPollFailures {
				return ro, fmt.Errorf("follow rollout %d: %w", ro.ID, err)
			}
			failures++
			if !a.jsonOutput() {
				fmt.Fprintf(a.stderr, "%s  cannot reach the server, retrying: %v\n", clock(a.now(), a.now()), err)
			}
			continue
		}
		failures = 0
		ro = next
		p.show(ro)
	}
	return ro, nil
}

// progress prints one line per change of a rollout, and at least one every
// progressEvery so that a long bake does not look like a hang.
type progress struct {
	a      *app
	last   string
	lastAt time.Time
	// asked is set once the command to approve the rollout was printed.
	asked bool
}

func (p *progress) show(ro rollout.Rollout) {
	if !p.a.jsonOutput() {
		p.line(ro)
	}
	p.askApproval(ro)
}

// askApproval says once how to approve a rollout that waits for it. It
// does so with -o json too (on stderr), since nothing moves until someone
// acts.
func (p *progress) askApproval(ro rollout.Rollout) {
	if p.asked || !waitingForApproval(ro) {
		return
	}
	p.asked = true
	now := p.a.now()
	fmt.Fprintf(p.a.stderr, "%s  waiting for approval: shipgate approve %s --env %s\n", clock(now, now), ro.App, ro.Env)
}

func (p *progress) line(ro rollout.Rollout) {
	verdict := ""
	if ro.Analysis != nil {
		verdict = string(ro.Analysis.Verdict)
	}
	key := fmt.Sprintf("%s/%d/%d/%s", ro.Phase, ro.StepIndex, ro.Weight, verdict)
	now := p.a.now()
	if key == p.last && now.Sub(p.lastAt) < p.a.progressEvery {
		return
	}
	p.last, p.lastAt = key, now

	parts := []string{fmt.Sprintf("%s  rollout %d %s", clock(now, now), ro.ID, stepText(ro))}
	if s := analysisText(ro.Analysis); s != "" {
		parts = append(parts, s)
	}
	if ro.Phase != rollout.PhaseRunning {
		s := string(ro.Phase)
		if ro.Reason != "" {
			s += ": " + ro.Reason
		}
		parts = append(parts, s)
	}
	fmt.Fprintln(p.a.stderr, strings.Join(parts, " | "))
}

// report prints the outcome of a settled rollout and returns the error
// that gives the exit code: nil when the release is live, an ExitRolledBack
// ExitError when it was rolled back or failed.
func (a *app) report(ro rollout.Rollout) error {
	bad := ro.Phase == rollout.PhaseRolledBack || ro.Phase == rollout.PhaseFailed
	reason := orDash(ro.Reason)
	if a.jsonOutput() {
		if err := a.printJSON(ro); err != nil {
			return err
		}
		if bad {
			// stdout holds the JSON only; say why on stderr for the log.
			return &ExitError{Code: ExitRolledBack, Err: fmt.Errorf("rollout %d %s: %s", ro.ID, strings.ReplaceAll(string(ro.Phase), "_", " "), reason)}
		}
		return nil
	}
	end := ro.FinishedAt
	if end.IsZero() {
		end = ro.PromotedAt
	}
	took := ""
	if !end.IsZero() && !ro.CreatedAt.IsZero() {
		took = " (took " + humanDuration(end.Sub(ro.CreatedAt)) + ")"
	}
	switch {
	case ro.Kind == rollout.KindDrill && ro.Phase == rollout.PhaseSucceeded:
		a.printf("rollout %d succeeded: the rollback drill of %s %s passed%s\n", ro.ID, ro.App, ro.Env, took)
	case ro.Kind == rollout.KindDrill:
		a.printf("rollout %d %s: the rollback drill of %s %s failed: %s\n", ro.ID, strings.ReplaceAll(string(ro.Phase), "_", " "), ro.App, ro.Env, reason)
		a.printf("see what is live with: shipgate status %s\n", ro.App)
	case ro.Phase == rollout.PhaseSucceeded:
		a.printf("rollout %d succeeded: %s %s is live in %s%s\n", ro.ID, ro.App, ro.Version, ro.Env, took)
	case live(ro):
		a.printf("rollout %d promoted: %s %s is live in %s at 100%%, the old instances are draining%s\n", ro.ID, ro.App, ro.Version, ro.Env, took)
	case ro.Phase == rollout.PhaseRolledBack:
		a.printf("rollout %d rolled back: %s\n", ro.ID, reason)
		if ro.FromVersion != "" {
			a.printf("%s %s is back on %s%s\n", ro.App, ro.Env, ro.FromVersion, took)
		}
	default:
		a.printf("rollout %d %s: %s\n", ro.ID, ro.Phase, reason)
	}
	if bad {
		return &ExitError{Code: ExitRolledBack}
	}
	return nil
}
