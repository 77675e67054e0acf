package cli

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/shipgate/shipgate/internal/api"
	"github.com/shipgate/shipgate/internal/rollout"
)

// live reports whether a running rollout's outcome is decided: its release
// was promoted to 100% and every step left is a scale-down, which only
// stops the old instances and cannot roll the release back. A promoted
// rollout with a post-promotion smoke check or a blue-green observe step
// ahead is not decided: either can still roll it back. A drill is not over
// at its promotion: the release that was current is still to be restored.
func live(ro rollout.Rollout) bool {
	if ro.Kind == rollout.KindDrill || ro.Phase != rollout.PhaseRunning || ro.PromotedAt.IsZero() {
		return false
	}
	for _, s := range ro.Steps[min(ro.StepIndex, len(ro.Steps)):] {
		if s.Kind != rollout.StepScaleDown {
			return false
		}
	}
	return true
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
// it until it settles and reports the outcome with report, else it says
// that it started.
func (a *app) follow(ctx context.Context, c *api.Client, ro rollout.Rollout, wf waitFlags, report func(rollout.Rollout) error) error {
	if !wf.wait {
		return a.printStarted(ro)
	}
	ro, err := a.wait(ctx, c, ro, wf.timeout)
	if err != nil {
		return err
	}
	return report(ro)
}

// wait polls a rollout until it settles or timeout passes, showing its
// progress on stderr in text mode. A server that cannot be reached (it
// restarts, or its host does) does not end the wait: the rollout goes on
// without it, and a restarted server resumes it, so wait keeps polling
// until timeout and says when it reaches the server again.
func (a *app) wait(ctx context.Context, c *api.Client, ro rollout.Rollout, timeout time.Duration) (rollout.Rollout, error) {
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	p := &progress{a: a}
	p.show(ro)
	tick := time.NewTicker(a.pollInterval)
	defer tick.Stop()
	// lostAt is when the server stopped answering, zero while it answers.
	var lostAt time.Time
	var lastErr error
	for !settled(ro) {
		select {
		case <-wctx.Done():
			goesOn := fmt.Sprintf("rollout %d goes on on the server (%s, %s); follow it with: shipgate status %s", ro.ID, ro.Phase, stepText(ro), ro.App)
			if ctx.Err() != nil {
				return ro, &ExitError{Code: ExitFailure, Err: errors.New("interrupted; " + goesOn)}
			}
			if !lostAt.IsZero() {
				goesOn = fmt.Sprintf("the server at %s has not answered since %s (%v); %s", a.server, clock(lostAt, a.now()), lastErr, goesOn)
			}
			return ro, &ExitError{Code: ExitFailure, Err: fmt.Errorf("timed out after %s; %s", humanDuration(timeout), goesOn)}
		case <-tick.C:
		}
		next, err := c.GetRollout(wctx, ro.ID)
		if err != nil {
			if wctx.Err() != nil {
				continue // the select above says why
			}
			if !unreachable(err) {
				return ro, fmt.Errorf("follow rollout %d: %w", ro.ID, err)
			}
			if lostAt.IsZero() {
				lostAt = a.now()
				// Said once, also with -o json (on stderr): a silent wait
				// of minutes looks like a hang.
				fmt.Fprintf(a.stderr, "%s  lost the server at %s (%v); the rollout goes on without it; retrying until the --timeout\n",
					clock(lostAt, lostAt), a.server, err)
			}
			lastErr = err
			continue
		}
		if !lostAt.IsZero() {
			now := a.now()
			fmt.Fprintf(a.stderr, "%s  reconnected to the server at %s after %s\n", clock(now, now), a.server, humanDuration(now.Sub(lostAt)))
			lostAt, lastErr = time.Time{}, nil
		}
		ro = next
		p.show(ro)
	}
	return ro, nil
}

// unreachable reports whether err means the server could not be asked, or
// could not answer for now: it is down, restarting, or behind a proxy that
// says so. Any other answer (a refused token, an unknown rollout) is final.
func unreachable(err error) bool {
	var ae *api.APIError
	if errors.As(err, &ae) {
		switch ae.Status {
		case http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
			return true
		}
		return false
	}
	return true
}

// progress prints one line per change of a rollout, and at least one every
// progressEvery so that a long bake does not look like a hang.
type progress struct {
	a      *app
	last   string
	lastAt time.Time
	// asked is set once the command to approve the rollout was printed.
	asked bool
	// paused is the pause last said, so that each pause is said once.
	paused string
}

func (p *progress) show(ro rollout.Rollout) {
	if !p.a.jsonOutput() {
		p.line(ro)
	}
	p.askApproval(ro)
	p.sayPaused(ro)
}

// sayPaused says once per pause why a rollout's bake holds and how to let
// it go on. It does so with -o json too (on stderr): a paused bake waits
// for a person however long, and the progress lines alone (the verdict
// may read "pass" by then) do not show it.
func (p *progress) sayPaused(ro rollout.Rollout) {
	if ro.Paused == "" || ro.Paused == p.paused || ro.Phase != rollout.PhaseRunning {
		p.paused = ro.Paused
		return
	}
	p.paused = ro.Paused
	now := p.a.now()
	fmt.Fprintf(p.a.stderr, "%s  PAUSED: %s\n", clock(now, now), ro.Paused)
	fmt.Fprintf(p.a.stderr, "%s  waiting for a person: shipgate promote %s --env %s --reason TEXT to go on, shipgate rollback %s --env %s --reason TEXT to roll back\n",
		clock(now, now), ro.App, ro.Env, ro.App, ro.Env)
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
		a.printf("rollout %d promoted: %s %s is live in %s at 100%%, nothing left can roll it back; the old instances stop %s%s\n",
			ro.ID, ro.App, ro.Version, ro.Env, scaleDownText(ro), took)
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

// scaleDownText says when a decided rollout stops the old instances.
func scaleDownText(ro rollout.Rollout) string {
	if ro.StepIndex < len(ro.Steps) && ro.Steps[ro.StepIndex].Duration > 0 && !ro.StepStartedAt.IsZero() {
		return "at " + clock(ro.StepStartedAt.Add(ro.Steps[ro.StepIndex].Duration), ro.StepStartedAt)
	}
	return "now"
}

// reportRollback prints what a settled rollback did and returns the error
// that gives the exit code. The rollout followed is either the one a
// rollback interrupted (a deploy: rolled back is what was asked for) or a
// rollback to the previous release (succeeded is what was asked for).
func (a *app) reportRollback(ro rollout.Rollout) error {
	var ok bool
	var text string
	switch {
	case ro.Kind == rollout.KindRollback && (ro.Phase == rollout.PhaseSucceeded || live(ro)):
		ok = true
		text = fmt.Sprintf("rollback %d done: %s %s is back on %s", ro.ID, ro.App, ro.Env, ro.Version)
		if ro.FromVersion != "" {
			text += fmt.Sprintf("; %s gets no traffic and its instances stop %s", ro.FromVersion, scaleDownText(ro))
			if ro.Phase == rollout.PhaseSucceeded {
				text = fmt.Sprintf("rollback %d done: %s %s is back on %s; %s is stopped", ro.ID, ro.App, ro.Env, ro.Version, ro.FromVersion)
			}
		}
	case ro.Kind == rollout.KindRollback:
		text = fmt.Sprintf("rollback %d %s: %s; %s %s stays on %s", ro.ID, strings.ReplaceAll(string(ro.Phase), "_", " "),
			orDash(ro.Reason), ro.App, ro.Env, orDash(ro.FromVersion))
	case ro.Phase == rollout.PhaseRolledBack:
		ok = true
		back := "has no release live (it was the first deploy)"
		if ro.FromVersion != "" {
			back = "is back on " + ro.FromVersion
		}
		text = fmt.Sprintf("rollback done: rollout %d of %s was stopped; %s %s %s; %s is stopped", ro.ID, ro.Version, ro.App, ro.Env, back, ro.Version)
	case ro.Phase == rollout.PhaseFailed:
		text = fmt.Sprintf("rollback of rollout %d failed: %s; see what is live with: shipgate status %s", ro.ID, orDash(ro.Reason), ro.App)
	default:
		// The rollout ended before the rollback reached it.
		text = fmt.Sprintf("nothing rolled back: rollout %d of %s had already %s", ro.ID, ro.Version, strings.ReplaceAll(string(ro.Phase), "_", " "))
		if live(ro) {
			text = fmt.Sprintf("nothing rolled back: rollout %d of %s was already promoted", ro.ID, ro.Version)
		}
	}
	if a.jsonOutput() {
		if err := a.printJSON(ro); err != nil {
			return err
		}
		if !ok {
			return &ExitError{Code: ExitRolledBack, Err: errors.New(text)}
		}
		return nil
	}
	switch end := ro.FinishedAt; {
	case end.IsZero():
	case ro.Kind != rollout.KindRollback && !ro.RollbackStartedAt.IsZero():
		// A rollout stopped: how long its rollback took, not the rollout.
		if !ro.TrafficRestoredAt.IsZero() {
			text += " (traffic back " + humanDuration(ro.TrafficRestoredAt.Sub(ro.RollbackStartedAt)) + " after the rollback began, done after " + humanDuration(end.Sub(ro.RollbackStartedAt)) + ")"
		} else {
			text += " (done " + humanDuration(end.Sub(ro.RollbackStartedAt)) + " after the rollback began)"
		}
	case !ro.CreatedAt.IsZero():
		text += " (took " + humanDuration(end.Sub(ro.CreatedAt)) + ")"
	}
	a.printf("%s\n", text)
	if !ok {
		return &ExitError{Code: ExitRolledBack}
	}
	return nil
}
