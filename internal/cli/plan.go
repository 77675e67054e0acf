package cli

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/shipgate/shipgate/internal/rollout"
)

func (a *app) planCommand() *cobra.Command {
	var df deployFlags
	cmd := &cobra.Command{
		Use:   "plan APP VERSION",
		Short: "Show what a deploy would do and whether its gates pass, changing nothing",
		Long: `Show what 'shipgate deploy APP VERSION' with the same flags would do,
without doing anything: each deploy gate (pipeline, checks, approval,
drill, drift) and whether it passes now, then the numbered steps of the
rollout, each with what a rollback at that step would do.

Exits 0 when every gate passes or is bypassed by --hotfix, 4 when a gate
would refuse the deploy, so that CI can call plan as a pre-check.`,
		Example: `  shipgate plan shop 1.4.2
  shipgate plan shop 1.4.3 --hotfix --reason "checkout 500s since 14:02"
  shipgate plan shop 1.4.2 --env staging -o json`,
		Args: argRange(2, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, req, err := a.deployClient(&df, args)
			if err != nil {
				return err
			}
			pv, err := c.Plan(cmd.Context(), req)
			if err != nil {
				return err
			}
			if err := render(a, pv, a.printPlan); err != nil {
				return err
			}
			return refusal(pv.Gates)
		},
	}
	df.register(cmd)
	return cmd
}

func (a *app) printPlan(pv rollout.PlanView) error {
	title := fmt.Sprintf("plan: %s %s to %s", pv.App, pv.Version, pv.Env)
	if pv.From != "" {
		title += ", replacing " + pv.From
	} else {
		title += ", its first release there"
	}
	if pv.Strategy != "" {
		title += " (" + pv.Strategy
		if pv.Hotfix {
			title += ", hotfix"
		}
		title += ")"
	}
	a.printf("%s\n", title)

	a.printf("gates:\n")
	if len(pv.Gates) == 0 {
		a.printf("  none\n")
	} else {
		t := newTable(a.stdout)
		for _, g := range pv.Gates {
			t.row("  "+g.Gate, gateMark(g), g.Detail)
		}
		if err := t.flush(); err != nil {
			return err
		}
	}

	if len(pv.Migrations) > 0 {
		vs := make([]string, len(pv.Migrations))
		for i, v := range pv.Migrations {
			vs[i] = strconv.FormatInt(v, 10)
		}
		a.printf("migrations: applies %s before any traffic; a rollback runs their downs, newest first\n", strings.Join(vs, ", "))
	}

	if pv.Image != "" {
		a.printf("image: %s\n", pv.Image)
	}
	if len(pv.Vars) > 0 {
		a.printf("variables: %s (values not shown)\n", strings.Join(pv.Vars, ", "))
	}
	a.printf("steps:\n")
	for i, s := range pv.Steps {
		desc := s.Description
		if desc == "" {
			desc = string(s.Kind)
		} else {
			desc = string(s.Kind) + ": " + desc
		}
		a.printf("  %d. %s\n", i+1, desc)
		a.printf("     rollback: %s\n", orDash(s.Rollback))
	}
	for _, n := range pv.Evidence {
		a.printf("evidence: step %d needs %d canary requests to pass %s: %.3g requests/s through the router\n", n.Step+1, n.Requests, n.Gate, n.RPS)
	}
	for _, w := range pv.Warnings {
		a.printf("warning: %s\n", w)
	}
	if refusal(pv.Gates) == nil {
		a.printf("ready: every gate passes or is bypassed\n")
	}
	return nil
}

// gateMark is ✓ for a gate that passes, ✗ for one that refuses, and
// "bypassed" for one a hotfix skips.
func gateMark(g rollout.GateStatus) string {
	switch {
	case g.Bypassed:
		return "bypassed"
	case g.OK:
		return "✓"
	}
	return "✗"
}

// refusal returns the ExitGate error of the first gate that would refuse
// the deploy, nil when every gate passes or is bypassed.
func refusal(gates []rollout.GateStatus) error {
	var refused []rollout.GateStatus
	for _, g := range gates {
		if !g.OK && !g.Bypassed {
			refused = append(refused, g)
		}
	}
	if len(refused) == 0 {
		return nil
	}
	var err error = &rollout.GateError{Gate: refused[0].Gate, Message: orDash(refused[0].Detail)}
	if n := len(refused) - 1; n > 0 {
		err = fmt.Errorf("%w (and %d more; see the plan)", err, n)
	}
	return &ExitError{Code: ExitGate, Err: err}
}
