package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shipgate/shipgate/internal/analysis"
	"github.com/shipgate/shipgate/internal/api"
	"github.com/shipgate/shipgate/internal/audit"
	"github.com/shipgate/shipgate/internal/auth"
	"github.com/shipgate/shipgate/internal/rollout"
)

// scriptedService is a Service whose rollouts move through a scripted
// series of states, one per GetRollout, so that deploy --wait can be seen
// following a rollout to its end. These tests are about the CLI (flags,
// output, exit codes); the rollout engine has its own tests, and the
// end-to-end tests run the CLI against the real engine.
type scriptedService struct {
	mu sync.Mutex
	// controlPlane, when set, is the leadership Status reports.
	controlPlane *rollout.ControlPlaneStatus
	// historyImage, when set, is the image of rollout 2 in History.
	historyImage string
	// scripts holds, per version, the states a rollout goes through.
	scripts map[string][]rollout.Rollout
	// events, when set, is what Audit answers.
	events     []audit.Event
	rollouts   map[int64][]rollout.Rollout
	polls      map[int64]int
	nextID     int64
	deploys    []rollout.DeployRequest
	rollbacks  []rollout.RollbackRequest
	releases   []rollout.ReleaseRequest
	approvals  []rollout.ApproveRequest
	promotions []rollout.PromoteRequest
	pauses     []string
	plans      []rollout.DeployRequest
	drifts     [][2]string // env, against
	drills     []rollout.DrillRequest
}

var _ api.Service = (*scriptedService)(nil)

var t0 = time.Date(2025, 3, 1, 14, 0, 0, 0, time.UTC)

func canarySteps() []rollout.Step {
	return []rollout.Step{
		{Kind: rollout.StepStart},
		{Kind: rollout.StepWeight, Weight: 10, Duration: time.Minute},
		{Kind: rollout.StepWeight, Weight: 50, Duration: time.Minute},
		{Kind: rollout.StepPromote},
		{Kind: rollout.StepScaleDown, Duration: 30 * time.Second},
	}
}

func judgement(v analysis.Verdict, canaryErr float64) *rollout.Judgement {
	return &rollout.Judgement{
		Verdict: v,
		Canary:  rollout.Summary{Requests: 120, ErrorRate: canaryErr, P99: 41 * time.Millisecond},
		Stable:  rollout.Summary{Requests: 1000, ErrorRate: 0.001, P99: 38 * time.Millisecond},
	}
}

func newScriptedService() *scriptedService {
	base := rollout.Rollout{App: "shop", Env: "production", Kind: rollout.KindDeploy, FromVersion: "1.0.0", Steps: canarySteps(), CreatedAt: t0, Actor: "user:ci"}
	at := func(phase rollout.Phase, step, weight int, j *rollout.Judgement) rollout.Rollout {
		r := base
		r.Phase, r.StepIndex, r.Weight, r.Analysis = phase, step, weight, j
		return r
	}
	good := []rollout.Rollout{
		at(rollout.PhaseRunning, 0, 0, nil),
		at(rollout.PhaseRunning, 1, 10, judgement(analysis.Inconclusive, 0)),
		at(rollout.PhaseRunning, 2, 50, judgement(analysis.Pass, 0.002)),
		at(rollout.PhaseRunning, 4, 100, judgement(analysis.Pass, 0.002)),
		at(rollout.PhaseSucceeded, 5, 100, judgement(analysis.Pass, 0.002)),
	}
	good[4].FinishedAt = t0.Add(72 * time.Second)

	promoted := []rollout.Rollout{
		at(rollout.PhaseRunning, 0, 0, nil),
		at(rollout.PhaseRunning, 4, 100, judgement(analysis.Pass, 0)),
	}
	promoted[1].PromotedAt = t0.Add(time.Minute)

	bad := []rollout.Rollout{
		at(rollout.PhaseRunning, 0, 0, nil),
		at(rollout.PhaseRunning, 1, 10, judgement(analysis.Inconclusive, 0.3)),
		at(rollout.PhaseRollingBack, 1, 0, judgement(analysis.Fail, 0.4)),
		at(rollout.PhaseRolledBack, 1, 0, judgement(analysis.Fail, 0.4)),
	}
	bad[2].Reason = "error_rate 40.00% > 1.00%"
	bad[3].Reason = "error_rate 40.00% > 1.00%"
	bad[3].FinishedAt = t0.Add(43 * time.Second)

	stuck := []rollout.Rollout{at(rollout.PhaseRunning, 1, 10, judgement(analysis.Inconclusive, 0))}

	// afterPromotion is a rollout promoted to 100% with a step ahead that
	// can still roll it back (a blue-green observe, a post-promotion smoke
	// check), which then does.
	afterPromotion := func(strategy string, steps []rollout.Step, promoteAt int) []rollout.Rollout {
		b := base
		b.Phase, b.Strategy, b.Steps = rollout.PhaseRunning, strategy, steps
		states := []rollout.Rollout{b, b, b, b}
		states[1].StepIndex, states[1].Weight, states[1].PromotedAt = promoteAt, 100, t0.Add(time.Minute)
		states[2] = states[1]
		states[2].StepIndex++
		states[3].Phase, states[3].StepIndex, states[3].Reason = rollout.PhaseRolledBack, promoteAt+1, "gate error_rate <= 1% failed after promotion"
		states[3].PromotedAt, states[3].FinishedAt = states[1].PromotedAt, t0.Add(90*time.Second)
		return states
	}
	blueGreen := afterPromotion("blue_green", []rollout.Step{{Kind: rollout.StepStart}, {Kind: rollout.StepSmoke},
		{Kind: rollout.StepPromote}, {Kind: rollout.StepObserve, Duration: time.Minute}, {Kind: rollout.StepScaleDown, Duration: 10 * time.Minute}}, 2)
	canaryPostSmoke := afterPromotion("canary", []rollout.Step{{Kind: rollout.StepStart}, {Kind: rollout.StepSmoke},
		{Kind: rollout.StepWeight, Weight: 10, Duration: time.Minute}, {Kind: rollout.StepPromote}, {Kind: rollout.StepPostSmoke},
		{Kind: rollout.StepScaleDown, Duration: 30 * time.Second}}, 3)
	rolling := afterPromotion("rolling", []rollout.Step{{Kind: rollout.StepBatch, Count: 1, Duration: time.Minute},
		{Kind: rollout.StepBatch, Count: 1, Duration: time.Minute}, {Kind: rollout.StepPromote}, {Kind: rollout.StepPostSmoke},
		{Kind: rollout.StepScaleDown}}, 2)

	return &scriptedService{
		scripts: map[string][]rollout.Rollout{"1.1.0": good, "1.2.0": promoted, "6.6.6": bad, "9.9.9": stuck,
			"3.0.0": blueGreen, "3.1.0": canaryPostSmoke, "3.2.0": rolling,
			gatedVersion: hotfixScript(good), approvalVersion: approvalScript(base)},
		rollouts: map[int64][]rollout.Rollout{},
		polls:    map[int64]int{},
	}
}

func (s *scriptedService) Deploy(_ context.Context, req rollout.DeployRequest) (rollout.Rollout, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.deploys = append(s.deploys, req)
	if req.Version == "4.0.9" {
		return rollout.Rollout{}, fmt.Errorf("rollout 1 of shop/production is running: %w", rollout.ErrConflict)
	}
	if req.Version == gatedVersion && !req.Hotfix {
		return rollout.Rollout{}, fmt.Errorf("deploy shop %s: %w", req.Version, pipelineRefusal)
	}
	script, ok := s.scripts[req.Version]
	if !ok {
		return rollout.Rollout{}, fmt.Errorf("release %s: %w", req.Version, rollout.ErrNotFound)
	}
	s.nextID++
	states := make([]rollout.Rollout, len(script))
	for i, r := range script {
		r.ID, r.Version = s.nextID, req.Version
		states[i] = r
	}
	s.rollouts[s.nextID] = states
	return states[0], nil
}

func (s *scriptedService) Rollback(_ context.Context, req rollout.RollbackRequest) (rollout.Rollout, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rollbacks = append(s.rollbacks, req)
	s.nextID++
	if req.Reason == "stop the canary" {
		// A rollback of the running rollout: the deploy it interrupts ends
		// rolled back, as asked.
		r := rollout.Rollout{ID: s.nextID, App: req.App, Env: "production", Kind: rollout.KindDeploy, Version: "1.1.0", FromVersion: "1.0.0",
			Phase: rollout.PhaseRollingBack, Steps: canarySteps(), StepIndex: 2, Reason: "rolled back by " + req.Actor + ": " + req.Reason, CreatedAt: t0}
		done := r
		done.Phase, done.FinishedAt = rollout.PhaseRolledBack, t0.Add(time.Minute)
		done.RollbackStartedAt, done.TrafficRestoredAt = t0.Add(50*time.Second), t0.Add(50*time.Second+200*time.Millisecond)
		s.rollouts[r.ID] = []rollout.Rollout{r, done}
		return r, nil
	}
	r := rollout.Rollout{ID: s.nextID, App: req.App, Env: "production", Kind: rollout.KindRollback, Version: "1.0.0", FromVersion: "1.1.0", Phase: rollout.PhaseRunning, Reason: req.Reason, Actor: req.Actor, CreatedAt: t0}
	done := r
	done.Phase, done.FinishedAt = rollout.PhaseSucceeded, t0.Add(800*time.Millisecond)
	s.rollouts[r.ID] = []rollout.Rollout{r, done}
	return r, nil
}

func (s *scriptedService) Status(_ context.Context, app string) (rollout.AppStatus, error) {
	if app != "shop" {
		return rollout.AppStatus{}, fmt.Errorf("app %q: %w", app, rollout.ErrNotFound)
	}
	active := s.scripts["1.1.0"][2]
	active.ID, active.Version, active.Image = 42, "1.1.0", "registry.example/shop:1.1.0"
	return rollout.AppStatus{App: "shop", Envs: []rollout.EnvStatus{{
		Env:    "production",
		Listen: "127.0.0.1:8080",
		Image:  "registry.example/shop:1.0.0",
		State: &rollout.EnvState{App: "shop", Env: "production", Stable: "1.0.0", Previous: "0.9.0",
			Instances: []rollout.Instance{{ID: "a"}, {ID: "b"}}},
		Active: &active,
	}}, ControlPlane: s.leadership()}, nil
}

func (s *scriptedService) leadership() *rollout.ControlPlaneStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.controlPlane
}

func (s *scriptedService) setLeadership(cp *rollout.ControlPlaneStatus) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.controlPlane = cp
}

func (s *scriptedService) GetRollout(_ context.Context, id int64) (rollout.Rollout, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	states, ok := s.rollouts[id]
	if !ok {
		return rollout.Rollout{}, fmt.Errorf("rollout %d: %w", id, rollout.ErrNotFound)
	}
	s.polls[id]++
	return states[min(s.polls[id], len(states)-1)], nil
}

func (s *scriptedService) History(_ context.Context, app, _ string, _ int) ([]rollout.Rollout, error) {
	return []rollout.Rollout{
		{ID: 2, App: app, Env: "production", Version: "6.6.6", FromVersion: "1.1.0", Phase: rollout.PhaseRolledBack, Image: s.historyImage,
			Reason: "error_rate 40.00% > 1.00%", CreatedAt: t0, FinishedAt: t0.Add(43 * time.Second)},
		{ID: 1, App: app, Env: "production", Version: "1.1.0", FromVersion: "1.0.0", Phase: rollout.PhaseSucceeded,
			CreatedAt: t0.Add(-time.Hour), FinishedAt: t0.Add(-time.Hour + 72*time.Second)},
	}, nil
}

func (s *scriptedService) Audit(_ context.Context, f audit.Filter) ([]audit.Event, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.events != nil {
		return s.events, nil
	}
	events := []audit.Event{
		{Seq: 2, Time: t0, Actor: "shipgate", Action: audit.ActionRollbackAuto, Subject: "rollout/2", Reason: "error_rate 40.00% > 1.00%"},
		{Seq: 1, Time: t0, Actor: "user:ci", Action: audit.ActionDeploy, Subject: "shop/production/6.6.6"},
	}[:min(2, max(f.Limit, 1))]
	if f.Action != "" {
		events = slices.DeleteFunc(events, func(e audit.Event) bool { return e.Action != f.Action })
	}
	return events, nil
}

type tokenMap map[string]auth.Token

func (m tokenMap) TokenByHash(_ context.Context, h string) (auth.Token, error) {
	if t, ok := m[h]; ok {
		return t, nil
	}
	return auth.Token{}, fmt.Errorf("token: %w", rollout.ErrNotFound)
}

// env is an API server over a scriptedService, and what a run of the CLI
// against it needs.
type env struct {
	svc    *scriptedService
	url    string
	token  string // a deployer token's secret
	data   string // a data dir without a token file
	getenv map[string]string
}

func newEnv(t *testing.T) *env {
	t.Helper()
	secret, err := auth.NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	svc := newScriptedService()
	srv := httptest.NewServer(api.NewHandler(svc, tokenMap{auth.Hash(secret): {Name: "ci", Role: auth.RoleDeployer}}, api.HandlerOptions{App: "shop"}))
	t.Cleanup(srv.Close)
	return &env{svc: svc, url: srv.URL, token: secret, data: t.TempDir(), getenv: map[string]string{}}
}

type result struct {
	code           int
	stdout, stderr string
}

// run runs the CLI with args against the env's server, with the token
// given by --token unless args or the environment already say.
func (e *env) run(t *testing.T, args ...string) result {
	t.Helper()
	base := []string{"--server", e.url, "--data", e.data}
	if !hasFlag(args, "--token") && e.getenv[envToken] == "" {
		base = append(base, "--token", e.token)
	}
	return e.runRaw(t, append(base, args...)...)
}

func (e *env) runRaw(t *testing.T, args ...string) result {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(t.Context(), args, deps{
		stdin:         strings.NewReader(""),
		stdout:        &stdout,
		stderr:        &stderr,
		getenv:        func(k string) string { return e.getenv[k] },
		now:           func() time.Time { return t0.Add(2 * time.Minute) },
		pollInterval:  5 * time.Millisecond,
		progressEvery: 5 * time.Second,
	})
	return result{code: code, stdout: stdout.String(), stderr: stderr.String()}
}

func hasFlag(args []string, flag string) bool {
	for _, a := range args {
		if a == flag || strings.HasPrefix(a, flag+"=") {
			return true
		}
	}
	return false
}

func (r result) wantCode(t *testing.T, want int) {
	t.Helper()
	if r.code != want {
		t.Fatalf("exit code = %d, want %d\nstdout:\n%s\nstderr:\n%s", r.code, want, r.stdout, r.stderr)
	}
}

// decodeOne decodes stdout as exactly one JSON document into v.
func decodeOne(t *testing.T, stdout string, v any) {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(stdout))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("stdout is not the expected JSON: %v\n%s", err, stdout)
	}
	if dec.More() {
		t.Fatalf("stdout holds more than one JSON document:\n%s", stdout)
	}
}

func TestCLI_DeployWait(t *testing.T) {
	for _, tc := range []struct {
		name, version string
		wantCode      int
		wantStdout    []string
		wantStderr    []string
	}{
		{
			name: "succeeds", version: "1.1.0", wantCode: ExitOK,
			wantStdout: []string{"rollout 1 succeeded: shop 1.1.0 is live in production (took 1m12s)"},
			wantStderr: []string{"step 1/5 start, weight 0%", "step 2/5 weight 10%", "step 3/5 weight 50%",
				"canary err 0.20% p99 41ms (120 req) | stable err 0.10% p99 38ms | verdict pass"},
		},
		{
			name: "promoted while old instances drain", version: "1.2.0", wantCode: ExitOK,
			wantStdout: []string{"rollout 1 promoted: shop 1.2.0 is live in production at 100%"},
		},
		{
			name: "rolled back", version: "6.6.6", wantCode: ExitRolledBack,
			wantStdout: []string{"rollout 1 rolled back: error_rate 40.00% > 1.00%", "shop production is back on 1.0.0 (took 43s)"},
			wantStderr: []string{"verdict fail | rolling_back: error_rate 40.00% > 1.00%"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			r := e.run(t, "deploy", "shop", tc.version, "--wait")
			r.wantCode(t, tc.wantCode)
			for _, s := range tc.wantStdout {
				if !strings.Contains(r.stdout, s) {
					t.Errorf("stdout does not contain %q:\n%s", s, r.stdout)
				}
			}
			for _, s := range tc.wantStderr {
				if !strings.Contains(r.stderr, s) {
					t.Errorf("stderr does not contain %q:\n%s", s, r.stderr)
				}
			}
			if strings.Contains(r.stderr, "error:") {
				t.Errorf("stderr has an error line:\n%s", r.stderr)
			}
		})
	}
}

// TestCLI_DeployWaitUntilFinal is defect 1 of issue 10: deploy --wait
// returned (exit 0, "promoted ... draining") as soon as the release was
// promoted, while a blue-green observe step or a post-promotion smoke
// check could still roll it back. It must wait until nothing can, and
// exit 3 when the release was rolled back, for every strategy.
func TestCLI_DeployWaitUntilFinal(t *testing.T) {
	for _, tc := range []struct{ strategy, version string }{
		{"blue_green", "3.0.0"}, {"canary", "3.1.0"}, {"rolling", "3.2.0"},
	} {
		t.Run(tc.strategy, func(t *testing.T) {
			e := newEnv(t)
			r := e.run(t, "deploy", "shop", tc.version, "--wait")
			r.wantCode(t, ExitRolledBack)
			if want := "rollout 1 rolled back: gate error_rate <= 1% failed after promotion"; !strings.Contains(r.stdout, want) {
				t.Fatalf("stdout does not contain %q:\n%s", want, r.stdout)
			}
			if strings.Contains(r.stdout, "promoted") {
				t.Fatalf("stdout reports a promotion that did not last:\n%s", r.stdout)
			}
			r = e.run(t, "deploy", "shop", tc.version, "--wait", "-o", "json")
			r.wantCode(t, ExitRolledBack)
			var ro rollout.Rollout
			decodeOne(t, r.stdout, &ro)
			if ro.Phase != rollout.PhaseRolledBack {
				t.Fatalf("phase = %s, want rolled_back", ro.Phase)
			}
		})
	}
}

func TestCLI_DeployWaitProgressLines(t *testing.T) {
	e := newEnv(t)
	r := e.run(t, "deploy", "shop", "1.1.0", "--wait")
	r.wantCode(t, ExitOK)
	// One line per change: the scripted rollout has five states, and the
	// many polls in between (each repeating the last state) print nothing
	// new within progressEvery.
	if got, want := strings.Count(r.stderr, "\n"), 5; got != want {
		t.Fatalf("progress lines = %d, want %d:\n%s", got, want, r.stderr)
	}
}

func TestCLI_DeployWaitJSON(t *testing.T) {
	for _, tc := range []struct {
		version   string
		wantCode  int
		wantPhase rollout.Phase
	}{
		{"1.1.0", ExitOK, rollout.PhaseSucceeded},
		{"6.6.6", ExitRolledBack, rollout.PhaseRolledBack},
	} {
		t.Run(tc.version, func(t *testing.T) {
			e := newEnv(t)
			r := e.run(t, "-o", "json", "deploy", "shop", tc.version, "--wait")
			r.wantCode(t, tc.wantCode)
			var ro rollout.Rollout
			decodeOne(t, r.stdout, &ro)
			if got, want := ro.Phase, tc.wantPhase; got != want {
				t.Fatalf("phase = %q, want %q", got, want)
			}
			if strings.Contains(r.stderr, "step ") {
				t.Fatalf("progress printed in JSON mode:\n%s", r.stderr)
			}
		})
	}
}

func TestCLI_DeployNoWait(t *testing.T) {
	e := newEnv(t)
	r := e.run(t, "deploy", "shop", "1.1.0", "--env", "production", "--var", "COLOR=blue", "--var", "EMPTY=", "--commit", "abc123")
	r.wantCode(t, ExitOK)
	if want := "rollout 1 running: shop 1.1.0 to production, replacing 1.0.0"; !strings.Contains(r.stdout, want) {
		t.Fatalf("stdout does not contain %q:\n%s", want, r.stdout)
	}
	got := e.svc.deploys[0]
	if got.App != "shop" || got.Version != "1.1.0" || got.Env != "production" || got.Commit != "abc123" ||
		got.Vars["COLOR"] != "blue" || got.Vars["EMPTY"] != "" || len(got.Vars) != 2 {
		t.Fatalf("server got %+v", got)
	}
	if got, want := got.Actor, "user:ci"; got != want {
		t.Fatalf("actor = %q, want %q", got, want)
	}
	if got, want := e.svc.polls[1], 0; got != want {
		t.Fatalf("polls without --wait = %d, want %d", got, want)
	}

	r = e.run(t, "deploy", "shop", "1.1.0", "-o", "json")
	r.wantCode(t, ExitOK)
	var ro rollout.Rollout
	decodeOne(t, r.stdout, &ro)
	if got, want := ro.ID, int64(2); got != want {
		t.Fatalf("id = %d, want %d", got, want)
	}
	if got := e.svc.deploys[1].Image; got != "" {
		t.Fatalf("image without --image = %q, want none", got)
	}

	// --image reaches the server through the API's JSON field "image".
	r = e.run(t, "deploy", "shop", "1.1.0", "--image", "registry.example/shop@sha256:0123")
	r.wantCode(t, ExitOK)
	if got, want := e.svc.deploys[2].Image, "registry.example/shop@sha256:0123"; got != want {
		t.Fatalf("image = %q, want %q", got, want)
	}
}

func TestCLI_DeployTimeout(t *testing.T) {
	e := newEnv(t)
	r := e.run(t, "deploy", "shop", "9.9.9", "--wait", "--timeout", "50ms")
	r.wantCode(t, ExitFailure)
	if want := "error: timed out after 50ms; rollout 1 goes on on the server"; !strings.Contains(r.stderr, want) {
		t.Fatalf("stderr does not contain %q:\n%s", want, r.stderr)
	}
}

func TestCLI_DeployInterrupted(t *testing.T) {
	e := newEnv(t)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var stdout bytes.Buffer
	var stderr lockedBuffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"--server", e.url, "--token", e.token, "deploy", "shop", "9.9.9", "--wait"}, deps{
			stdout: &stdout, stderr: &stderr, getenv: func(string) string { return "" },
			now: time.Now, pollInterval: 5 * time.Millisecond, progressEvery: time.Hour,
		})
	}()
	// Interrupted while it waits: once the deploy was accepted (a fixed
	// 50ms could end before, on a busy machine).
	waitFor(t, func() bool { return strings.Contains(stderr.String(), "step 2/5") })
	cancel()
	code := <-done
	if got, want := code, ExitFailure; got != want {
		t.Fatalf("exit code = %d, want %d\n%s", got, want, stderr.String())
	}
	if want := "error: interrupted; rollout 1 goes on on the server"; !strings.Contains(stderr.String(), want) {
		t.Fatalf("stderr does not contain %q:\n%s", want, stderr.String())
	}
}

func TestCLI_DeployWaitRepeatsProgress(t *testing.T) {
	// A rollout that does not change still gets a line every
	// progressEvery, so that a long bake does not look like a hang.
	e := newEnv(t)
	var stdout, stderr bytes.Buffer
	// About 50 progress periods before the timeout: at least 3 lines even
	// if a busy machine starves the CLI for most of them.
	code := run(t.Context(), []string{"--server", e.url, "--token", e.token, "deploy", "shop", "9.9.9", "--wait", "--timeout", "2s"}, deps{
		stdout: &stdout, stderr: &stderr, getenv: func(string) string { return "" },
		now: time.Now, pollInterval: 5 * time.Millisecond, progressEvery: 40 * time.Millisecond,
	})
	if got, want := code, ExitFailure; got != want {
		t.Fatalf("exit code = %d, want %d\n%s", got, want, stderr.String())
	}
	if got := strings.Count(stderr.String(), "step 2/5 weight 10%"); got < 3 {
		t.Fatalf("repeated progress lines = %d, want at least 3:\n%s", got, stderr.String())
	}
}

func TestCLI_DeployErrors(t *testing.T) {
	for _, tc := range []struct {
		name       string
		args       []string
		wantCode   int
		wantStderr string
	}{
		{"invalid version", []string{"deploy", "shop", "../x"}, ExitInvalid, "error: version: must start with a letter or digit"},
		{"unknown release", []string{"deploy", "shop", "7.0.0"}, ExitFailure, "error: release 7.0.0 not found\n"},
		{"conflict", []string{"deploy", "shop", "4.0.9"}, ExitFailure, "error: rollout 1 of shop/production is running\n"},
		{"bad var", []string{"deploy", "shop", "1.1.0", "--var", "NOVALUE"}, ExitInvalid, `error: invalid --var "NOVALUE": want KEY=VALUE`},
		{"missing version", []string{"deploy", "shop"}, ExitInvalid, "error: wrong number of arguments (got 1); usage: shipgate deploy APP VERSION"},
		{"bad timeout", []string{"deploy", "shop", "1.1.0", "--wait", "--timeout", "0s"}, ExitInvalid, "error: invalid --timeout 0s"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			r := e.run(t, tc.args...)
			r.wantCode(t, tc.wantCode)
			if !strings.Contains(r.stderr, tc.wantStderr) {
				t.Fatalf("stderr does not contain %q:\n%s", tc.wantStderr, r.stderr)
			}
			if got := strings.Count(r.stderr, "error:"); got != 1 {
				t.Fatalf("error printed %d times, want once:\n%s", got, r.stderr)
			}
			if r.stdout != "" {
				t.Fatalf("stdout = %q, want nothing", r.stdout)
			}
		})
	}
}

func TestCLI_Rollback(t *testing.T) {
	t.Run("missing reason", func(t *testing.T) {
		e := newEnv(t)
		r := e.run(t, "rollback", "shop")
		r.wantCode(t, ExitInvalid)
		if !strings.Contains(r.stderr, "--reason is required") {
			t.Fatalf("stderr does not name --reason:\n%s", r.stderr)
		}
		if len(e.svc.rollbacks) != 0 {
			t.Fatalf("server was asked to roll back without a reason")
		}
	})
	t.Run("default app and wait", func(t *testing.T) {
		e := newEnv(t)
		r := e.run(t, "rollback", "--reason", "checkout errors", "--wait")
		r.wantCode(t, ExitOK)
		if got, want := e.svc.rollbacks, []rollout.RollbackRequest{{App: "shop", Reason: "checkout errors", Actor: "user:ci"}}; len(got) != 1 || got[0] != want[0] {
			t.Fatalf("server got %+v, want %+v", got, want)
		}
		if want := "rollback 1 done: shop production is back on 1.0.0; 1.1.0 is stopped (took 800ms)"; !strings.Contains(r.stdout, want) {
			t.Fatalf("stdout does not contain %q:\n%s", want, r.stdout)
		}
	})
	t.Run("wait on the rollback of a running rollout", func(t *testing.T) {
		e := newEnv(t)
		r := e.run(t, "rollback", "--reason", "stop the canary", "--wait")
		// Rolled back is what was asked for: success, and says so.
		r.wantCode(t, ExitOK)
		// How long the rollback took, not the rollout it stopped (which
		// read "took 1m" for a rollback of 10 s: found by rolling back a
		// canary as a new user would).
		if want := "rollback done: rollout 1 of 1.1.0 was stopped; shop production is back on 1.0.0; 1.1.0 is stopped (traffic back 200ms after the rollback began, done after 10s)\n"; !strings.Contains(r.stdout, want) {
			t.Fatalf("stdout does not contain %q:\n%s", want, r.stdout)
		}
	})
	t.Run("no wait on the rollback of a running rollout", func(t *testing.T) {
		e := newEnv(t)
		r := e.run(t, "rollback", "--reason", "stop the canary")
		r.wantCode(t, ExitOK)
		if want := "rolling back rollout 1 of 1.1.0: shop production is back on 1.0.0; 1.1.0 is being stopped"; !strings.Contains(r.stdout, want) {
			t.Fatalf("stdout does not contain %q:\n%s", want, r.stdout)
		}
	})
	t.Run("no wait", func(t *testing.T) {
		e := newEnv(t)
		r := e.run(t, "rollback", "shop", "--env", "production", "--reason", "slow")
		r.wantCode(t, ExitOK)
		if want := "rollout 1 running: shop production goes back to 1.0.0"; !strings.Contains(r.stdout, want) {
			t.Fatalf("stdout does not contain %q:\n%s", want, r.stdout)
		}
	})
}

func TestCLI_TextOutput(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want []string
	}{
		{"status", []string{"status"}, []string{
			"app shop",
			"ENV         ROUTER          STABLE  INSTANCES  PREVIOUS  ROLLOUT",
			"production  127.0.0.1:8080  1.0.0   2          0.9.0     #42 1.1.0 running step 3/5 weight 50%",
			"production: canary err 0.20% p99 41ms",
			"production: 1.0.0 runs the image registry.example/shop:1.0.0",
			"production: 1.1.0 runs the image registry.example/shop:1.1.0",
		}},
		{"history", []string{"history", "--env", "production"}, []string{
			"ID  ENV         VERSION  FROM   PHASE        STARTED",
			"2   production  6.6.6    1.1.0  rolled_back",
			"43s       error_rate 40.00% > 1.00%",
			"1m12s     -",
		}},
		{"audit", []string{"audit", "--limit", "5"}, []string{
			"SEQ  TIME",
			"shipgate  rollback.auto  rollout/2              error_rate 40.00% > 1.00%",
			"user:ci   deploy         shop/production/6.6.6  -",
		}},
		{"version", []string{"version"}, []string{"shipgate dev, commit ", "(module github.com/shipgate/shipgate"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			r := e.run(t, tc.args...)
			r.wantCode(t, ExitOK)
			for _, s := range tc.want {
				if !strings.Contains(r.stdout, s) {
					t.Errorf("stdout does not contain %q:\n%s", s, r.stdout)
				}
			}
		})
	}
}

// TestCLI_HistoryImage: the history table has an IMAGE column, after
// VERSION, when a rollout has an image ("-" for one without), and none
// when no rollout has one (local processes).
func TestCLI_HistoryImage(t *testing.T) {
	e := newEnv(t)
	r := e.run(t, "history")
	r.wantCode(t, ExitOK)
	if strings.Contains(r.stdout, "IMAGE") {
		t.Errorf("history without images has an IMAGE column:\n%s", r.stdout)
	}
	e.svc.historyImage = "registry.example/shop@sha256:abc"
	r = e.run(t, "history")
	r.wantCode(t, ExitOK)
	for _, want := range []string{
		"ID  ENV         VERSION  IMAGE                             FROM   PHASE",
		"2   production  6.6.6    registry.example/shop@sha256:abc  1.1.0  rolled_back",
		"1   production  1.1.0    -                                 1.0.0  succeeded",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("history does not contain %q:\n%s", want, r.stdout)
		}
	}
}

func TestCLI_JSONOutput(t *testing.T) {
	e := newEnv(t)
	t.Run("status", func(t *testing.T) {
		r := e.run(t, "status", "shop", "-o", "json")
		r.wantCode(t, ExitOK)
		var st rollout.AppStatus
		decodeOne(t, r.stdout, &st)
		if got, want := st.Envs[0].Active.ID, int64(42); got != want {
			t.Fatalf("active rollout = %d, want %d", got, want)
		}
	})
	t.Run("history", func(t *testing.T) {
		r := e.run(t, "--output=json", "history")
		r.wantCode(t, ExitOK)
		var list []rollout.Rollout
		decodeOne(t, r.stdout, &list)
		if got, want := len(list), 2; got != want {
			t.Fatalf("rollouts = %d, want %d", got, want)
		}
	})
	t.Run("audit", func(t *testing.T) {
		r := e.run(t, "audit", "-o", "json")
		r.wantCode(t, ExitOK)
		var events []audit.Event
		decodeOne(t, r.stdout, &events)
		if got, want := events[0].Action, audit.ActionRollbackAuto; got != want {
			t.Fatalf("action = %q, want %q", got, want)
		}
	})
	t.Run("version", func(t *testing.T) {
		r := e.run(t, "version", "-o", "json")
		r.wantCode(t, ExitOK)
		var v versionInfo
		decodeOne(t, r.stdout, &v)
		// A test binary is built from the shipgate module, so Go records it.
		if v.Version == "" || v.Go == "" || !strings.HasPrefix(v.Module, "github.com/shipgate/shipgate ") {
			t.Fatalf("version = %+v, want version, go and the module set", v)
		}
	})
}

func TestCLI_Token(t *testing.T) {
	t.Run("from data dir", func(t *testing.T) {
		e := newEnv(t)
		if err := os.WriteFile(filepath.Join(e.data, "token"), []byte(e.token+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		r := e.runRaw(t, "--server", e.url, "--data", e.data, "status")
		r.wantCode(t, ExitOK)
	})
	t.Run("data dir from environment", func(t *testing.T) {
		e := newEnv(t)
		if err := os.WriteFile(filepath.Join(e.data, "token"), []byte(e.token), 0o600); err != nil {
			t.Fatal(err)
		}
		e.getenv[envData] = e.data
		e.getenv[envServer] = e.url
		r := e.runRaw(t, "status")
		r.wantCode(t, ExitOK)
	})
	t.Run("environment wins over file", func(t *testing.T) {
		e := newEnv(t)
		if err := os.WriteFile(filepath.Join(e.data, "token"), []byte("sgt_wrong"), 0o600); err != nil {
			t.Fatal(err)
		}
		e.getenv[envToken] = e.token
		r := e.runRaw(t, "--server", e.url, "--data", e.data, "status")
		r.wantCode(t, ExitOK)
	})
	t.Run("wrong token", func(t *testing.T) {
		e := newEnv(t)
		r := e.run(t, "--token", "sgt_notarealtoken", "deploy", "shop", "1.1.0")
		r.wantCode(t, ExitFailure)
		want := "error: the server at " + e.url + " (from --server) refused the token: unknown token; the token comes from --token, $SHIPGATE_TOKEN or " + filepath.Join(e.data, "token")
		if !strings.Contains(r.stderr, want) {
			t.Fatalf("stderr does not contain %q:\n%s", want, r.stderr)
		}
		if strings.Contains(r.stderr, "sgt_notarealtoken") {
			t.Fatalf("the token is printed:\n%s", r.stderr)
		}
		if len(e.svc.deploys) != 0 {
			t.Fatalf("deploy reached the service with a wrong token")
		}
	})
	t.Run("no token", func(t *testing.T) {
		e := newEnv(t)
		r := e.runRaw(t, "--server", e.url, "--data", e.data, "status")
		r.wantCode(t, ExitFailure)
		if !strings.Contains(r.stderr, "refused the token: missing token") {
			t.Fatalf("stderr does not say the token is missing:\n%s", r.stderr)
		}
	})
}

func TestCLI_Usage(t *testing.T) {
	for _, tc := range []struct {
		name       string
		args       []string
		wantStderr string
	}{
		{"unknown command", []string{"deplo"}, `error: unknown command "deplo"`},
		{"unknown flag", []string{"status", "--nope"}, "error: unknown flag: --nope"},
		{"bad output", []string{"-o", "yaml", "status"}, `error: invalid --output "yaml": want text or json`},
		{"bad server", []string{"--server", "localhost:7070", "status"}, `error: invalid --server "localhost:7070"`},
		{"bad limit", []string{"history", "--limit", "0"}, "error: invalid --limit 0"},
		{"bad log level", []string{"server", "--log-level", "loud"}, `error: invalid --log-level "loud"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			r := e.runRaw(t, tc.args...)
			r.wantCode(t, ExitInvalid)
			if !strings.Contains(r.stderr, tc.wantStderr) {
				t.Fatalf("stderr does not contain %q:\n%s", tc.wantStderr, r.stderr)
			}
		})
	}
}

func TestCLI_ServerUnreachable(t *testing.T) {
	srv := httptest.NewServer(nil)
	url := srv.URL
	srv.Close()
	e := &env{getenv: map[string]string{}, data: t.TempDir()}
	r := e.runRaw(t, "--server", url, "--token", "x", "status")
	r.wantCode(t, ExitFailure)
	if want := "error: cannot reach the shipgate server at " + url; !strings.Contains(r.stderr, want) {
		t.Fatalf("stderr does not contain %q:\n%s", want, r.stderr)
	}
}

func TestCLI_Validate(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	bad := filepath.Join(dir, "bad.yaml")
	writeFile(t, good, `app: shop
run:
  command: ["./shop", "--port", "${PORT}"]
environments:
  production:
    listen: 127.0.0.1:8080
strategy:
  canary:
    steps: [{weight: 10, bake: 1m}, {weight: 50, bake: 1m}]
analysis:
  gates:
    - {metric: error_rate, max: 0.01}
    - {metric: latency_p99, max_ratio_to_stable: 2}
`)
	writeFile(t, bad, `app: shop
run:
  command: ["./shop", "--port", "${PORT}"]
  instancez: 3
environments:
  production:
    listen: 127.0.0.1:8080
strategy:
  canary:
    steps: [{weight: 10, bake: 1m}, {weight: 50, bake: 1m}]
analysis:
  gates:
    - {metric: error_rate, max: 0.01}
    - {metric: latency_p99, max_ratio_to_stable: 2}
`)
	e := &env{getenv: map[string]string{}, data: t.TempDir()}

	t.Run("ok", func(t *testing.T) {
		r := e.runRaw(t, "validate", "-f", good)
		r.wantCode(t, ExitOK)
		if got, want := r.stdout, good+": ok (app shop, 1 environment)\n"; got != want {
			t.Fatalf("stdout = %q, want %q", got, want)
		}
	})
	t.Run("problems", func(t *testing.T) {
		r := e.runRaw(t, "validate", "-f", bad)
		r.wantCode(t, ExitInvalid)
		if want := bad + ":4:3: "; !strings.Contains(r.stderr, want) {
			t.Fatalf("stderr does not point at %q:\n%s", want, r.stderr)
		}
		if !strings.Contains(r.stderr, "instancez") {
			t.Fatalf("stderr does not name the field:\n%s", r.stderr)
		}
		if r.stdout != "" {
			t.Fatalf("stdout = %q, want nothing", r.stdout)
		}
	})
	t.Run("problems json", func(t *testing.T) {
		r := e.runRaw(t, "validate", "-f", bad, "-o", "json")
		r.wantCode(t, ExitInvalid)
		var v validation
		decodeOne(t, r.stdout, &v)
		if v.Valid || len(v.Problems) == 0 {
			t.Fatalf("validation = %+v, want invalid with problems", v)
		}
		if got, want := v.Problems[0], (problem{File: bad, Line: 4, Column: 3}); got.File != want.File || got.Line != want.Line || got.Column != want.Column || !strings.Contains(got.Field, "instancez") {
			t.Fatalf("problem = %+v, want %s:%d:%d naming instancez", got, want.File, want.Line, want.Column)
		}
	})
	t.Run("evidence warnings", func(t *testing.T) {
		thin := filepath.Join(dir, "thin.yaml")
		data, err := os.ReadFile(good)
		if err != nil {
			t.Fatal(err)
		}
		writeFile(t, thin, strings.Replace(string(data), "analysis:\n", "analysis:\n  expected_rps: 2\n", 1))
		r := e.runRaw(t, "validate", "-f", thin)
		r.wantCode(t, ExitOK)
		if !regexp.MustCompile(`warning: production: step 3 \(weight 10% for 1m0s\) needs [0-9]+ canary requests to pass (error_rate|latency_p99)`).MatchString(r.stdout) {
			t.Fatalf("stdout does not warn about the 10%% step:\n%s", r.stdout)
		}
		r = e.runRaw(t, "validate", "-f", thin, "-o", "json")
		var v validation
		decodeOne(t, r.stdout, &v)
		if !v.Valid || len(v.Warnings) != 2 {
			t.Fatalf("validation = %+v, want valid with a warning for each step", v)
		}
	})
	t.Run("missing file", func(t *testing.T) {
		r := e.runRaw(t, "validate", "-f", filepath.Join(dir, "nope.yaml"))
		r.wantCode(t, ExitInvalid)
		if !strings.Contains(r.stderr, "nope.yaml") {
			t.Fatalf("stderr does not name the file:\n%s", r.stderr)
		}
	})
}

func writeFile(t *testing.T, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestHumanDuration(t *testing.T) {
	for _, tc := range []struct {
		in   time.Duration
		want string
	}{
		{0, "0s"},
		{350 * time.Millisecond, "350ms"},
		{45*time.Second + 400*time.Millisecond, "45s"},
		{72 * time.Second, "1m12s"},
		{time.Minute, "1m"},
		{30 * time.Minute, "30m"},
		{2*time.Hour + 5*time.Minute + 10*time.Second, "2h5m"},
	} {
		if got := humanDuration(tc.in); got != tc.want {
			t.Errorf("humanDuration(%s) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestLatency(t *testing.T) {
	for _, tc := range []struct {
		in   time.Duration
		want string
	}{
		{0, "-"},
		{850 * time.Microsecond, "850µs"},
		{12345 * time.Microsecond, "12.3ms"},
		{1234 * time.Millisecond, "1.23s"},
	} {
		if got := latency(tc.in); got != tc.want {
			t.Errorf("latency(%s) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// TestCLI_StatusSaysWhoLeads: with several servers on one store, status
// says which server answered, whether it leads, and who does.
func TestCLI_StatusSaysWhoLeads(t *testing.T) {
	e := newEnv(t)
	e.svc.setLeadership(&rollout.ControlPlaneStatus{Server: "s2", Leader: "s1", Term: 4})
	r := e.run(t, "status")
	r.wantCode(t, ExitOK)
	if want := "server s2 (follower); leader s1, term 4"; !strings.Contains(r.stdout, want) {
		t.Errorf("stdout does not contain %q:\n%s", want, r.stdout)
	}
	e.svc.setLeadership(&rollout.ControlPlaneStatus{Server: "s3", Leading: true, Leader: "s3", Term: 5})
	r = e.run(t, "status", "-o", "json")
	r.wantCode(t, ExitOK)
	var st rollout.AppStatus
	decodeOne(t, r.stdout, &st)
	if st.ControlPlane == nil || !st.ControlPlane.Leading || st.ControlPlane.Leader != "s3" || st.ControlPlane.Term != 5 {
		t.Errorf("control_plane = %+v, want s3 leading in term 5", st.ControlPlane)
	}
	e.svc.setLeadership(nil)
	if r = e.run(t, "status"); strings.Contains(r.stdout, "leader") || strings.Contains(r.stdout, "revision") {
		t.Errorf("a single server's status speaks of a leader or a config revision:\n%s", r.stdout)
	}
}

// TestCLI_StatusSaysConfigRevision: on a shared store, status says which
// config revision the server runs, and a newer one it could not apply.
func TestCLI_StatusSaysConfigRevision(t *testing.T) {
	e := newEnv(t)
	e.svc.setLeadership(&rollout.ControlPlaneStatus{Server: "s2", Leader: "s1", Term: 4, ConfigRevision: 3})
	r := e.run(t, "status")
	r.wantCode(t, ExitOK)
	if want := "config revision 3\n"; !strings.Contains(r.stdout, want) || strings.Contains(r.stdout, "NOT applied") {
		t.Errorf("stdout does not say %q alone:\n%s", want, r.stdout)
	}
	e.svc.setLeadership(&rollout.ControlPlaneStatus{Server: "s2", Leader: "s1", Term: 4, ConfigRevision: 3, ConfigPending: 4, ConfigError: "listen 127.0.0.1:8081: address in use"})
	r = e.run(t, "status")
	if want := "config revision 4 NOT applied on this server (it runs 3): listen 127.0.0.1:8081: address in use"; !strings.Contains(r.stdout, want) {
		t.Errorf("stdout does not contain %q:\n%s", want, r.stdout)
	}
}
