package cli

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/shipgate/shipgate/internal/api"
)

// watchStatus follows the server's rollout event stream (GET /v1/events)
// and prints a line each time an environment changes: until no rollout is
// in progress any more (right away when none is), or timeout passes. With
// -o json each event is one JSON line.
func (a *app) watchStatus(ctx context.Context, c *api.Client, app string, timeout time.Duration) error {
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	last := map[string]string{}
	seenActive := false
	return c.Events(ctx, app, func(s api.Snapshot) error {
		active := false
		for _, e := range s.Envs {
			line := envLine(e)
			if e.Rollout != nil {
				active = true
			}
			if line == last[e.Env] {
				continue
			}
			last[e.Env] = line
			if !a.jsonOutput() {
				a.printf("%s %s %s\n", a.now().UTC().Format("15:04:05"), e.Env, line)
			}
		}
		if a.jsonOutput() {
			if err := a.printJSONLine(s); err != nil {
				return err
			}
		}
		if active {
			seenActive = true
		}
		if !active {
			if !seenActive && !a.jsonOutput() {
				a.printf("no rollout in progress\n")
			}
			return api.ErrStopEvents
		}
		return nil
	})
}

func envLine(e api.EnvSnapshot) string {
	var b strings.Builder
	fmt.Fprintf(&b, "stable %s", orDash(e.Stable))
	if r := e.Rollout; r != nil {
		fmt.Fprintf(&b, "; rollout #%d %s %s, %d%% to the canary, step %s", r.ID, r.Version, r.Phase, r.Weight, orDash(r.Step))
		if r.Waiting {
			b.WriteString(", waiting for approval")
		}
		if e.Verdict != "" && e.Canary != nil {
			fmt.Fprintf(&b, "; analysis %s (canary %d requests, %.2f%% errors)", e.Verdict, e.Canary.Requests, 100*e.Canary.ErrorRate)
		}
	}
	return b.String()
}
