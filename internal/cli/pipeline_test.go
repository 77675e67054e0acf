package cli

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/shipgate/shipgate/internal/rollout"
)

// The pipeline side of scriptedService: releases, plans, drift, approvals
// and drills, scripted like its deploys. As there, these tests are about
// the CLI; the gates themselves are the engine's.

const (
	// gatedVersion is refused by the pipeline gate unless it is a hotfix.
	gatedVersion = "5.0.0"
	// approvalVersion waits at an approval step for a few polls.
	approvalVersion = "2.0.0"
)

var pipelineRefusal = &rollout.GateError{Gate: "pipeline", Message: gatedVersion + " has not succeeded in staging"}

// hotfixScript is a good rollout that skipped the pipeline gate.
func hotfixScript(good []rollout.Rollout) []rollout.Rollout {
	states := make([]rollout.Rollout, len(good))
	for i, r := range good {
		r.Hotfix, r.Bypassed = true, []string{"pipeline"}
		states[i] = r
	}
	return states
}

// approvalScript waits at its approval step for three polls, is approved,
// and succeeds.
func approvalScript(base rollout.Rollout) []rollout.Rollout {
	base.Steps = []rollout.Step{
		{Kind: rollout.StepStart},
		{Kind: rollout.StepApproval},
		{Kind: rollout.StepWeight, Weight: 50, Duration: time.Minute},
		{Kind: rollout.StepPromote},
	}
	at := func(phase rollout.Phase, step, weight int) rollout.Rollout {
		r := base
		r.Phase, r.StepIndex, r.Weight = phase, step, weight
		return r
	}
	approved := at(rollout.PhaseRunning, 2, 50)
	approved.Approval = &rollout.Approval{By: "user:lead", At: t0.Add(time.Minute)}
	done := at(rollout.PhaseSucceeded, 4, 100)
	done.Approval, done.FinishedAt = approved.Approval, t0.Add(3*time.Minute)
	return []rollout.Rollout{
		at(rollout.PhaseRunning, 0, 0),
		at(rollout.PhaseRunning, 1, 0),
		at(rollout.PhaseRunning, 1, 0),
		at(rollout.PhaseRunning, 1, 0),
		approved,
		done,
	}
}

// drillScript is a drill of production that passes, or of staging that
// fails. The passing one is promoted on its way: --wait must not take
// that for the end, as it would for a deploy.
func drillScript(env string) []rollout.Rollout {
	base := rollout.Rollout{App: "shop", Env: env, Kind: rollout.KindDrill, Version: "1.0.0", FromVersion: "1.1.0", CreatedAt: t0, Actor: "user:ci",
		Steps: []rollout.Step{{Kind: rollout.StepStart}, {Kind: rollout.StepSmoke}, {Kind: rollout.StepPromote}, {Kind: rollout.StepRestore}}}
	at := func(phase rollout.Phase, step int) rollout.Rollout {
		r := base
		r.Phase, r.StepIndex = phase, step
		return r
	}
	if env == "staging" {
		failed := at(rollout.PhaseRolledBack, 1)
		failed.Reason, failed.FinishedAt = "smoke GET /healthz: 503", t0.Add(20*time.Second)
		return []rollout.Rollout{at(rollout.PhaseRunning, 0), at(rollout.PhaseRunning, 1), failed}
	}
	promoted := at(rollout.PhaseRunning, 3)
	promoted.Weight, promoted.PromotedAt = 100, t0.Add(30*time.Second)
	done := promoted
	done.Phase, done.StepIndex, done.FinishedAt = rollout.PhaseSucceeded, 4, t0.Add(95*time.Second)
	return []rollout.Rollout{at(rollout.PhaseRunning, 0), promoted, promoted, done}
}

func (s *scriptedService) CreateRelease(_ context.Context, req rollout.ReleaseRequest) (rollout.Release, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.releases = append(s.releases, req)
	return rollout.Release{App: req.App, Version: req.Version, Commit: req.Commit, CommitTime: req.CommitTime, Checks: req.Checks, Vars: req.Vars, CreatedAt: t0}, nil
}

func (s *scriptedService) GetRelease(_ context.Context, app, version string) (rollout.Release, error) {
	if version != "1.1.0" {
		return rollout.Release{}, fmt.Errorf("release %s of %s: %w", version, app, rollout.ErrNotFound)
	}
	return rollout.Release{App: app, Version: version, Commit: "abc123", Checks: map[string]rollout.CheckState{"unit": rollout.CheckPassed, "e2e": rollout.CheckFailed}, Vars: map[string]string{"DB_PASSWORD": "hunter2"}, CreatedAt: t0}, nil
}

func (s *scriptedService) Pause(_ context.Context, req rollout.PauseRequest) (rollout.Rollout, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pauses = append(s.pauses, "pause "+req.Reason)
	return rollout.Rollout{ID: 3, App: req.App, Env: "production", Kind: rollout.KindDeploy, Version: "1.1.0", Phase: rollout.PhaseRunning, Paused: "paused by " + req.Actor}, nil
}

func (s *scriptedService) Resume(_ context.Context, req rollout.PauseRequest) (rollout.Rollout, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pauses = append(s.pauses, "resume "+req.Reason)
	return rollout.Rollout{ID: 3, App: req.App, Env: "production", Kind: rollout.KindDeploy, Version: "1.1.0", Phase: rollout.PhaseRunning}, nil
}

func (s *scriptedService) Retry(_ context.Context, req rollout.RetryRequest) (rollout.Rollout, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pauses = append(s.pauses, "retry "+req.Actor)
	return rollout.Rollout{ID: 4, App: req.App, Env: "production", Kind: rollout.KindDeploy, Version: "1.1.0", Phase: rollout.PhaseRunning}, nil
}

func (s *scriptedService) Promote(_ context.Context, req rollout.PromoteRequest) (rollout.Rollout, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.promotions = append(s.promotions, req)
	return rollout.Rollout{ID: 3, App: req.App, Env: "production", Kind: rollout.KindDeploy, Version: "1.1.0", Phase: rollout.PhaseRunning, CreatedAt: t0}, nil
}

func (s *scriptedService) Approve(_ context.Context, req rollout.ApproveRequest) (rollout.Rollout, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.approvals = append(s.approvals, req)
	if req.Env == "staging" {
		return rollout.Rollout{}, fmt.Errorf("no rollout of shop/staging waits for approval: %w", rollout.ErrNotFound)
	}
	r := approvalScript(rollout.Rollout{ID: 3, App: req.App, Env: "production", Kind: rollout.KindDeploy, Version: approvalVersion, CreatedAt: t0})[4]
	r.Approval.By, r.Approval.Comment = req.Actor, req.Comment
	return r, nil
}

func (s *scriptedService) Plan(_ context.Context, req rollout.DeployRequest) (rollout.PlanView, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.plans = append(s.plans, req)
	pipeline := rollout.GateStatus{Gate: "pipeline", OK: true, Detail: req.Version + " succeeded in staging"}
	if req.Version == gatedVersion {
		pipeline = rollout.GateStatus{Gate: "pipeline", Detail: pipelineRefusal.Message, Bypassed: req.Hotfix}
	}
	return rollout.PlanView{App: req.App, Env: "production", Version: req.Version, From: "1.0.0", Strategy: "canary", Hotfix: req.Hotfix,
		Gates: []rollout.GateStatus{pipeline, {Gate: "checks", OK: true, Detail: "unit passed, e2e passed"}},
		Steps: []rollout.PlannedStep{
			{Kind: rollout.StepStart, Description: "start 2 instances of " + req.Version, Rollback: "stop them; 1.0.0 keeps all traffic"},
			{Kind: rollout.StepWeight, Description: "10% of users for 1m under analysis", Rollback: "traffic back to 1.0.0 at once"},
			{Kind: rollout.StepPromote, Description: "100% to " + req.Version, Rollback: "traffic back to 1.0.0, still running"},
		}}, nil
}

func (s *scriptedService) Drift(_ context.Context, app, env, against string) (rollout.DriftReport, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.drifts = append(s.drifts, [2]string{env, against})
	if env == "staging" {
		return rollout.DriftReport{App: app, Env: env, Against: "production", Diffs: []rollout.Difference{
			{Kind: "vars", Detail: "DEBUG only in staging", Allowed: true},
			{Kind: "instances", Detail: "1 in staging, 2 in production"},
		}}, nil
	}
	return rollout.DriftReport{App: app, Env: "production", Against: "staging", OK: true, Diffs: []rollout.Difference{
		{Kind: "vars", Detail: "DEBUG only in staging", Allowed: true},
	}}, nil
}

func (s *scriptedService) Drill(_ context.Context, req rollout.DrillRequest) (rollout.Rollout, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.drills = append(s.drills, req)
	env := req.Env
	if env == "" {
		env = "production"
	}
	s.nextID++
	states := drillScript(env)
	for i := range states {
		states[i].ID = s.nextID
	}
	s.rollouts[s.nextID] = states
	return states[0], nil
}

// wantContains fails unless every one of want is in got.
func wantContains(t *testing.T, name, got string, want ...string) {
	t.Helper()
	for _, s := range want {
		if !strings.Contains(got, s) {
			t.Errorf("%s does not contain %q:\n%s", name, s, got)
		}
	}
}

func TestCLI_Plan(t *testing.T) {
	for _, tc := range []struct {
		name       string
		args       []string
		wantCode   int
		wantStdout []string
		wantStderr string
	}{
		{
			name: "gates pass", args: []string{"plan", "shop", "1.1.0"}, wantCode: ExitOK,
			wantStdout: []string{
				"plan: shop 1.1.0 to production, replacing 1.0.0 (canary)",
				"  pipeline  ✓  1.1.0 succeeded in staging",
				"  1. start: start 2 instances of 1.1.0\n     rollback: stop them; 1.0.0 keeps all traffic\n",
				"  3. promote: 100% to 1.1.0\n     rollback: traffic back to 1.0.0, still running\n",
				"ready: every gate passes or is bypassed",
			},
		},
		{
			name: "a gate refuses", args: []string{"plan", "shop", gatedVersion}, wantCode: ExitGate,
			wantStdout: []string{"  pipeline  ✗  " + gatedVersion + " has not succeeded in staging", "  checks    ✓  unit passed"},
			wantStderr: "error: pipeline gate: " + gatedVersion + " has not succeeded in staging\n",
		},
		{
			name: "hotfix bypasses", args: []string{"plan", "shop", gatedVersion, "--hotfix", "--reason", "checkout is down"}, wantCode: ExitOK,
			wantStdout: []string{"(canary, hotfix)", "  pipeline  bypassed  " + gatedVersion + " has not succeeded in staging", "ready:"},
		},
		{
			name: "hotfix without reason", args: []string{"plan", "shop", gatedVersion, "--hotfix"}, wantCode: ExitInvalid,
			wantStderr: "error: --reason is required with --hotfix",
		},
		{
			name: "invalid version", args: []string{"plan", "shop", "../x"}, wantCode: ExitInvalid,
			wantStderr: "error: version: must start with a letter or digit",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			r := e.run(t, tc.args...)
			r.wantCode(t, tc.wantCode)
			wantContains(t, "stdout", r.stdout, tc.wantStdout...)
			if tc.wantStderr != "" {
				wantContains(t, "stderr", r.stderr, tc.wantStderr)
			} else if r.stderr != "" {
				t.Errorf("stderr = %q, want nothing", r.stderr)
			}
			if len(e.svc.deploys) != 0 {
				t.Fatalf("plan deployed: %+v", e.svc.deploys)
			}
		})
	}

	t.Run("request", func(t *testing.T) {
		e := newEnv(t)
		r := e.run(t, "plan", "shop", "1.1.0", "--env", "production", "--hotfix", "--reason", "checkout is down", "--var", "A=1", "--commit", "abc")
		r.wantCode(t, ExitOK)
		got := e.svc.plans[0]
		if got.App != "shop" || got.Version != "1.1.0" || got.Env != "production" || !got.Hotfix || got.Reason != "checkout is down" ||
			got.Vars["A"] != "1" || got.Commit != "abc" || got.Actor != "user:ci" {
			t.Fatalf("server got %+v", got)
		}
	})
}

func TestCLI_PlanJSON(t *testing.T) {
	e := newEnv(t)
	r := e.run(t, "-o", "json", "plan", "shop", gatedVersion)
	r.wantCode(t, ExitGate)
	var pv rollout.PlanView
	decodeOne(t, r.stdout, &pv)
	if got, want := pv.Gates[0], (rollout.GateStatus{Gate: "pipeline", Detail: pipelineRefusal.Message}); got != want {
		t.Fatalf("gate = %+v, want %+v", got, want)
	}
	if got, want := len(pv.Steps), 3; got != want {
		t.Fatalf("steps = %d, want %d", got, want)
	}
	// stdout holds the JSON only; the refusal is said on stderr.
	wantContains(t, "stderr", r.stderr, "error: pipeline gate: ")
}

func TestCLI_Drift(t *testing.T) {
	t.Run("allowed", func(t *testing.T) {
		e := newEnv(t)
		r := e.run(t, "drift")
		r.wantCode(t, ExitOK)
		wantContains(t, "stdout", r.stdout,
			"drift: shop production against staging",
			"KIND  DETAIL                 ALLOWED",
			"vars  DEBUG only in staging  yes",
		)
		if got, want := e.svc.drifts, [][2]string{{"", ""}}; len(got) != 1 || got[0] != want[0] {
			t.Fatalf("server got %v, want %v", got, want)
		}
	})
	t.Run("not allowed", func(t *testing.T) {
		e := newEnv(t)
		r := e.run(t, "drift", "shop", "--env", "staging", "--against", "production")
		r.wantCode(t, ExitGate)
		wantContains(t, "stdout", r.stdout, "instances  1 in staging, 2 in production  no")
		wantContains(t, "stderr", r.stderr, "error: drift gate: staging differs from production in 1 way the drift gate does not allow\n")
		if got, want := e.svc.drifts[0], [2]string{"staging", "production"}; got != want {
			t.Fatalf("server got %v, want %v", got, want)
		}
	})
	t.Run("json", func(t *testing.T) {
		e := newEnv(t)
		r := e.run(t, "drift", "--env", "staging", "-o", "json")
		r.wantCode(t, ExitGate)
		var rep rollout.DriftReport
		decodeOne(t, r.stdout, &rep)
		if rep.OK || len(rep.Diffs) != 2 || rep.Diffs[1].Allowed {
			t.Fatalf("report = %+v, want the server's", rep)
		}
	})
	t.Run("against itself", func(t *testing.T) {
		e := newEnv(t)
		r := e.run(t, "drift", "--env", "staging", "--against", "staging")
		r.wantCode(t, ExitInvalid)
		wantContains(t, "stderr", r.stderr, "error: against: must be another environment")
	})
}

func TestCLI_Drill(t *testing.T) {
	for _, tc := range []struct {
		name       string
		args       []string
		wantCode   int
		wantStdout []string
	}{
		{"passes", []string{"drill", "--wait"}, ExitOK, []string{"rollout 1 succeeded: the rollback drill of shop production passed (took 1m35s)"}},
		{"fails", []string{"drill", "shop", "--env", "staging", "--wait"}, ExitRolledBack, []string{
			"rollout 1 rolled back: the rollback drill of shop staging failed: smoke GET /healthz: 503",
		}},
		{"no wait", []string{"drill", "shop"}, ExitOK, []string{
			"rollout 1 running: rollback drill of shop production: 1.0.0 comes back, is checked, then 1.1.0 is restored",
			"follow it with: shipgate status shop",
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			r := e.run(t, tc.args...)
			r.wantCode(t, tc.wantCode)
			wantContains(t, "stdout", r.stdout, tc.wantStdout...)
			if got := e.svc.drills; len(got) != 1 || got[0].App != "shop" || got[0].Actor != "user:ci" {
				t.Fatalf("server got %+v", got)
			}
		})
	}
	t.Run("json", func(t *testing.T) {
		e := newEnv(t)
		r := e.run(t, "-o", "json", "drill", "--env", "staging", "--wait")
		r.wantCode(t, ExitRolledBack)
		var ro rollout.Rollout
		decodeOne(t, r.stdout, &ro)
		if got, want := ro.Kind, rollout.KindDrill; got != want {
			t.Fatalf("kind = %q, want %q", got, want)
		}
		wantContains(t, "stderr", r.stderr, "error: rollout 1 rolled back: smoke GET /healthz: 503")
	})
}

func TestCLI_DeployHotfix(t *testing.T) {
	t.Run("without reason", func(t *testing.T) {
		e := newEnv(t)
		r := e.run(t, "deploy", "shop", gatedVersion, "--hotfix")
		r.wantCode(t, ExitInvalid)
		wantContains(t, "stderr", r.stderr, "error: --reason is required with --hotfix")
		if len(e.svc.deploys) != 0 {
			t.Fatalf("a hotfix without reason reached the server")
		}
	})
	t.Run("with reason", func(t *testing.T) {
		e := newEnv(t)
		r := e.run(t, "deploy", "shop", gatedVersion, "--hotfix", "--reason", "checkout is down", "--wait")
		r.wantCode(t, ExitOK)
		if got := e.svc.deploys[0]; !got.Hotfix || got.Reason != "checkout is down" {
			t.Fatalf("server got %+v, want hotfix with the reason", got)
		}
		wantContains(t, "stdout", r.stdout, "rollout 1 succeeded: shop "+gatedVersion+" is live in production")
	})
	t.Run("no wait", func(t *testing.T) {
		e := newEnv(t)
		r := e.run(t, "deploy", "shop", gatedVersion, "--hotfix", "--reason", "checkout is down")
		r.wantCode(t, ExitOK)
		wantContains(t, "stdout", r.stdout, "hotfix: gates skipped: pipeline (each skip is in the audit log)")
	})
}

func TestCLI_DeployGate(t *testing.T) {
	for _, args := range [][]string{
		{"deploy", "shop", gatedVersion},
		{"deploy", "shop", gatedVersion, "--wait", "-o", "json"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			e := newEnv(t)
			r := e.run(t, args...)
			r.wantCode(t, ExitGate)
			if got, want := r.stderr, "error: pipeline gate: "+gatedVersion+" has not succeeded in staging\n"; got != want {
				t.Fatalf("stderr = %q, want %q", got, want)
			}
			// With -o json, the error is JSON on stdout too.
			want := ""
			if hasFlag(args, "-o") {
				want = `{"error":{"message":"pipeline gate: ` + gatedVersion + ` has not succeeded in staging","exit_code":4,"code":"gate","field":"pipeline"}}` + "\n"
			}
			if r.stdout != want {
				t.Fatalf("stdout = %q, want %q", r.stdout, want)
			}
		})
	}
}

func TestCLI_DeployWaitApproval(t *testing.T) {
	for _, output := range []string{"text", "json"} {
		t.Run(output, func(t *testing.T) {
			e := newEnv(t)
			r := e.run(t, "-o", output, "deploy", "shop", approvalVersion, "--wait")
			r.wantCode(t, ExitOK)
			// The rollout waits for three polls; the command says once how
			// to approve it, -o json included.
			if got, want := strings.Count(r.stderr, "waiting for approval: shipgate approve shop --env production\n"), 1; got != want {
				t.Fatalf("approval notices = %d, want %d:\n%s", got, want, r.stderr)
			}
		})
	}
}

func TestCLI_Approve(t *testing.T) {
	e := newEnv(t)
	r := e.run(t, "approve", "--comment", "dashboards look fine")
	r.wantCode(t, ExitOK)
	if got, want := e.svc.approvals, []rollout.ApproveRequest{{App: "shop", Comment: "dashboards look fine", Actor: "user:ci", Role: "deployer"}}; len(got) != 1 || got[0] != want[0] {
		t.Fatalf("server got %+v, want %+v", got, want)
	}
	wantContains(t, "stdout", r.stdout, "rollout 3 approved by user:ci: shop "+approvalVersion+" goes on in production")

	r = e.run(t, "approve", "shop", "--env", "production", "-o", "json")
	r.wantCode(t, ExitOK)
	var ro rollout.Rollout
	decodeOne(t, r.stdout, &ro)
	if ro.Approval == nil || ro.Approval.By != "user:ci" {
		t.Fatalf("approval = %+v, want one by user:ci", ro.Approval)
	}

	r = e.run(t, "approve", "shop", "--env", "staging")
	r.wantCode(t, ExitFailure)
	wantContains(t, "stderr", r.stderr, "error: no rollout of shop/staging waits for approval\n")
}

func TestCLI_ReleaseCreate(t *testing.T) {
	t.Run("checks reach the server", func(t *testing.T) {
		e := newEnv(t)
		r := e.run(t, "release", "create", "shop", "1.4.2", "--commit", "3f2a9c1", "--commit-time", "2025-03-01T13:58:00Z",
			"--check", "unit=passed", "--check", "e2e.chrome=pending", "--var", "COLOR=blue")
		r.wantCode(t, ExitOK)
		got := e.svc.releases[0]
		if got.App != "shop" || got.Version != "1.4.2" || got.Commit != "3f2a9c1" || !got.CommitTime.Equal(t0.Add(-2*time.Minute)) ||
			len(got.Checks) != 2 || got.Checks["unit"] != rollout.CheckPassed || got.Checks["e2e.chrome"] != rollout.CheckPending ||
			got.Vars["COLOR"] != "blue" || got.Actor != "user:ci" {
			t.Fatalf("server got %+v", got)
		}
		wantContains(t, "stdout", r.stdout, "release shop 1.4.2 recorded", "checks  e2e.chrome pending, unit passed")
	})
	t.Run("json", func(t *testing.T) {
		e := newEnv(t)
		r := e.run(t, "release", "create", "shop", "1.4.2", "--commit", "3f2a9c1", "--check", "unit=failed", "-o", "json")
		r.wantCode(t, ExitOK)
		var rel rollout.Release
		decodeOne(t, r.stdout, &rel)
		if got, want := rel.Checks["unit"], rollout.CheckFailed; got != want {
			t.Fatalf("check unit = %q, want %q", got, want)
		}
	})
	for _, tc := range []struct {
		name       string
		args       []string
		wantStderr string
	}{
		{"missing commit", []string{"release", "create", "shop", "1.4.2"}, "error: --commit is required"},
		{"bad commit time", []string{"release", "create", "shop", "1.4.2", "--commit", "a", "--commit-time", "yesterday"}, `error: invalid --commit-time "yesterday"`},
		{"bad check", []string{"release", "create", "shop", "1.4.2", "--commit", "a", "--check", "unit"}, `error: invalid --check "unit"`},
		// The server checks names and states, and names the field.
		{"bad check state", []string{"release", "create", "shop", "1.4.2", "--commit", "a", "--check", "unit=green"}, `error: checks: check "unit" has state "green"; want passed, failed or pending`},
		{"bad check name", []string{"release", "create", "shop", "1.4.2", "--commit", "a", "--check", "unit tests=passed"}, `error: checks: check name "unit tests"`},
		{"bad version", []string{"release", "create", "shop", "../1", "--commit", "a"}, "error: version: must start with a letter or digit"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			r := e.run(t, tc.args...)
			r.wantCode(t, ExitInvalid)
			wantContains(t, "stderr", r.stderr, tc.wantStderr)
			if len(e.svc.releases) != 0 {
				t.Fatalf("an invalid release reached the service: %+v", e.svc.releases)
			}
		})
	}
}

func TestCLI_ReleaseShow(t *testing.T) {
	e := newEnv(t)
	r := e.run(t, "release", "show", "shop", "1.1.0")
	r.wantCode(t, ExitOK)
	wantContains(t, "stdout", r.stdout, "release shop 1.1.0\n", "commit  abc123\n", "checks  e2e failed, unit passed\n")

	r = e.run(t, "release", "show", "shop", "1.1.0", "-o", "json")
	r.wantCode(t, ExitOK)
	var rel rollout.Release
	decodeOne(t, r.stdout, &rel)
	if got, want := rel.Commit, "abc123"; got != want {
		t.Fatalf("commit = %q, want %q", got, want)
	}

	r = e.run(t, "release", "show", "shop", "7.0.0")
	r.wantCode(t, ExitFailure)
	wantContains(t, "stderr", r.stderr, "error: release 7.0.0 of shop not found\n")
}

func TestCLI_Promote(t *testing.T) {
	e := newEnv(t)
	r := e.run(t, "promote", "--reason", "low traffic tonight")
	r.wantCode(t, ExitOK)
	if got, want := e.svc.promotions, []rollout.PromoteRequest{{App: "shop", Reason: "low traffic tonight", Actor: "user:ci"}}; len(got) != 1 || got[0] != want[0] {
		t.Fatalf("server got %+v, want %+v", got, want)
	}
	wantContains(t, "stdout", r.stdout, "rollout 3: bake ended by you; shop 1.1.0 goes on in production")
	r = e.run(t, "promote")
	r.wantCode(t, ExitInvalid)
	wantContains(t, "stderr", r.stderr, "--reason is required")

	r = e.run(t, "promote", "--full", "--reason", "fix verified on staging")
	r.wantCode(t, ExitOK)
	if got, want := e.svc.promotions[1], (rollout.PromoteRequest{App: "shop", Reason: "fix verified on staging", Full: true, Actor: "user:ci"}); got != want {
		t.Fatalf("server got %+v, want %+v", got, want)
	}
	wantContains(t, "stdout", r.stdout, "rollout 3: every remaining bake skipped by you; shop 1.1.0 goes to 100% in production")
}

func TestCLI_PauseResume(t *testing.T) {
	e := newEnv(t)
	r := e.run(t, "pause", "--reason", "provider incident")
	r.wantCode(t, ExitOK)
	wantContains(t, "stdout", r.stdout, "rollout 3 paused: shop 1.1.0 holds in production")
	r = e.run(t, "resume", "--reason", "provider fixed")
	r.wantCode(t, ExitOK)
	wantContains(t, "stdout", r.stdout, "rollout 3 resumed: shop 1.1.0 bakes on in production")
	if got := strings.Join(e.svc.pauses, ", "); got != "pause provider incident, resume provider fixed" {
		t.Fatalf("server got %s", got)
	}
	r = e.run(t, "pause")
	r.wantCode(t, ExitInvalid)
}

func TestCLI_Retry(t *testing.T) {
	e := newEnv(t)
	r := e.run(t, "retry", "-o", "json")
	r.wantCode(t, ExitOK)
	var ro rollout.Rollout
	decodeOne(t, r.stdout, &ro)
	if ro.ID != 4 || strings.Join(e.svc.pauses, ",") != "retry user:ci" {
		t.Fatalf("rollout %d, server got %v; want rollout 4 retried by user:ci", ro.ID, e.svc.pauses)
	}
}
