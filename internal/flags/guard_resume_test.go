package flags_test

// Guarded rollouts that outlive the service driving them: persisted at
// each step in the real SQLite store, resumed by another service on the
// same store at their step with the bake time they had left, on virtual
// time (clocktest), measured by a stats source the test feeds.

import (
	"context"
	"errors"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/shipgate/shipgate/internal/analysis"
	"github.com/shipgate/shipgate/internal/audit"
	"github.com/shipgate/shipgate/internal/clock/clocktest"
	"github.com/shipgate/shipgate/internal/flags"
	"github.com/shipgate/shipgate/internal/sqlite"
)

// feedStats is a router's per-flag counters: each read adds 1000
// requests to each variant, 10 ms each, of which the flag-on ones fail in
// the proportion failOn.
type feedStats struct {
	mu      sync.Mutex
	reads   int
	failOn  float64
	on, off analysis.Sample
}

func (s *feedStats) FlagStats(context.Context) (map[string]map[string]analysis.Sample, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reads++
	b := analysis.BucketFor(10 * time.Millisecond)
	s.on.Requests += 1000
	s.on.Status5xx += uint64(s.failOn * 1000)
	s.on.Latency[b] += 1000
	s.off.Requests += 1000
	s.off.Latency[b] += 1000
	return map[string]map[string]analysis.Sample{"checkout": {"on": s.on, "off": s.off}}, nil
}

func (s *feedStats) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.reads
}

func (s *feedStats) setFailOn(f float64) {
	s.mu.Lock()
	s.failOn = f
	s.mu.Unlock()
}

type resumeEnv struct {
	t     *testing.T
	store *sqlite.Store
	clk   *clocktest.Fake
	src   *feedStats
}

var resumeSpec = flags.GuardSpec{Steps: []int{10, 50, 100}, Bake: 10 * time.Minute, Interval: 30 * time.Second,
	Guards: []string{"error_rate<5%"}, MinRequests: 100, MaxWait: time.Hour}

func newResumeEnv(t *testing.T) *resumeEnv {
	t.Helper()
	store, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "shipgate.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	e := &resumeEnv{t: t, store: store, clk: clocktest.New(time.Date(2026, 1, 5, 9, 0, 0, 0, time.UTC)), src: &feedStats{}}
	svc := e.service(false)
	if _, err := svc.Create(t.Context(), flags.NewBooleanFlag("checkout", "payments", "", time.Time{}, e.clk.Now()), flags.Who{Actor: "user:dev"}); err != nil {
		t.Fatal(err)
	}
	svc.Close()
	return e
}

// service starts a flags service on the env's store, as a server does.
func (e *resumeEnv) service(passive bool) *flags.Service {
	e.t.Helper()
	svc, err := flags.NewService(e.t.Context(), flags.Options{Store: e.store, Clock: e.clk, Stats: e.src, Passive: passive})
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(svc.Close)
	return svc
}

// stored returns the guarded rollout of checkout as the store has it.
func (e *resumeEnv) stored() flags.GuardRecord {
	e.t.Helper()
	recs, err := e.store.LoadGuards(e.t.Context())
	if err != nil {
		e.t.Fatal(err)
	}
	for _, r := range recs {
		if r.Key == "checkout" {
			return r
		}
	}
	e.t.Fatal("no guarded rollout of checkout in the store")
	return flags.GuardRecord{}
}

// until steps the virtual clock an interval at a time, each time once the
// rollout waits on its ticker and then until it has read the stats, until
// cond holds of svc's status; it fails after limit of virtual time.
func (e *resumeEnv) until(svc *flags.Service, limit time.Duration, what string, cond func(flags.GuardStatus) bool) flags.GuardStatus {
	e.t.Helper()
	end := e.clk.Now().Add(limit)
	for {
		if st, ok := svc.GuardedStatus("checkout"); ok && cond(st) {
			return st
		}
		if e.clk.Now().After(end) {
			st, _ := svc.GuardedStatus("checkout")
			e.t.Fatalf("after %s of virtual time, still not %s: %+v", limit, what, st)
		}
		waitReal(e.t, "the rollout to wait on its ticker", func() bool {
			st, _ := svc.GuardedStatus("checkout")
			return e.clk.Waiters() > 0 || st.Done()
		})
		before := e.src.count()
		e.clk.Step(resumeSpec.Interval)
		waitReal(e.t, "the rollout to read the stats", func() bool {
			if st, ok := svc.GuardedStatus("checkout"); ok && st.Done() {
				return true
			}
			return e.src.count() > before
		})
	}
}

// waitReal polls cond until it holds, for up to 30 s of real time (a
// busy machine).
func waitReal(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func (e *resumeEnv) audited(action string) []audit.Event {
	e.t.Helper()
	events, err := e.store.ListAudit(e.t.Context(), audit.Filter{Subject: "flag/checkout", Action: action})
	if err != nil {
		e.t.Fatal(err)
	}
	return events
}

// crashAtStep2 starts a guarded rollout on one service, lets it reach its
// second step (50%) and bake 4 of its 10 minutes there, and closes that
// service, as a killed server stops driving.
func (e *resumeEnv) crashAtStep2() flags.GuardRecord {
	e.t.Helper()
	first := e.service(false)
	if _, err := first.StartGuardedRollout("checkout", resumeSpec, flags.Who{Actor: "user:dev", Reason: "new checkout"}); err != nil {
		e.t.Fatal(err)
	}
	st := e.until(first, time.Hour, "at 50%", func(st flags.GuardStatus) bool { return st.Step == 1 })
	e.until(first, time.Hour, "4 minutes into 50%", func(flags.GuardStatus) bool { return e.clk.Now().Sub(st.StepStarted) >= 4*time.Minute })
	first.Close()
	rec := e.stored()
	if rec.Status.Phase != flags.GuardRunning || rec.Status.Step != 1 || rec.Status.Percent != 50 || !rec.Status.StepStarted.Equal(st.StepStarted) || rec.LastOff == nil {
		e.t.Fatalf("stored after the crash: %+v; want running at step 2 (50%%) since %s, with the flag-off window of step 1", rec, st.StepStarted)
	}
	// Saved every tenth of the bake: the crash may lose the last minute.
	if rec.Status.Baked < 3*time.Minute || rec.Status.Baked > 4*time.Minute {
		e.t.Fatalf("stored bake served at step 2: %s, want 4m, or 3m if the last save was lost in the crash", rec.Status.Baked)
	}
	if rec.Actor != "user:dev" || rec.Reason != "new checkout" || rec.Spec.Bake != resumeSpec.Bake || len(rec.Spec.Guards) != 1 {
		e.t.Fatalf("stored rollout lost who started it or its spec: %+v", rec)
	}
	if n := len(e.audited(flags.ActionGuardStep)); n != 2 {
		e.t.Fatalf("%d audited steps before the crash, want 2", n)
	}
	return rec
}

func TestService_DriveResumesAGuardedRolloutAtItsStepWithTheTimeItHadLeft(t *testing.T) {
	e := newResumeEnv(t)
	rec := e.crashAtStep2()

	// The flag stays where it was while nobody drives it.
	f, _ := e.service(true).Snapshot().Flag("checkout")
	if p, _ := flags.PlanOf(f); p.Percent != 50 {
		t.Fatalf("flag at %d%% after the crash, want 50%%", p.Percent)
	}

	// The server stays down 3 minutes: that is not bake time.
	e.clk.Step(3 * time.Minute)
	resumedAt := e.clk.Now()
	second := e.service(false)
	if err := second.Drive(t.Context()); err != nil {
		t.Fatal(err)
	}
	st, ok := second.GuardedStatus("checkout")
	if !ok || st.Phase != flags.GuardRunning || st.Step != 1 {
		t.Fatalf("after Drive: %+v; want running at step 2", st)
	}
	st = e.until(second, time.Hour, "at 100%", func(st flags.GuardStatus) bool { return st.Step == 2 })
	// About 4 minutes were baked before the crash: step 2 bakes the 6
	// left after the resume, neither 10 again nor 3 (the downtime is not
	// bake time).
	left := resumeSpec.Bake - rec.Status.Baked
	if got := st.StepStarted.Sub(resumedAt); got < left || got > left+resumeSpec.Interval {
		t.Fatalf("step 2 went on %s after the resume, want the %s it had left", got, left)
	}
	st = e.until(second, time.Hour, "done", flags.GuardStatus.Done)
	if st.Phase != flags.GuardSucceeded || st.Percent != 100 {
		t.Fatalf("ended %s at %d%%: %s; want succeeded at 100%%", st.Phase, st.Percent, st.Reason)
	}
	f, _ = second.Snapshot().Flag("checkout")
	if p, _ := flags.PlanOf(f); p.Percent != 100 || f.State != flags.Enabled {
		t.Fatalf("flag after the rollout: %+v", f)
	}
	steps := e.audited(flags.ActionGuardStep)
	if len(steps) != 3 {
		t.Fatalf("%d audited steps, want 3 (one per step, none repeated by the resume)", len(steps))
	}
	for i, want := range []string{"guarded rollout step 1/3: 10% (new checkout)", "guarded rollout step 2/3: 50% (new checkout)", "guarded rollout step 3/3: 100% (new checkout)"} {
		if got := steps[len(steps)-1-i].Reason; got != want {
			t.Errorf("audited step %d: %q, want %q", i+1, got, want)
		}
	}
	if done := e.audited(flags.ActionGuardDone); len(done) != 1 || done[0].Outcome != "ok" {
		t.Fatalf("audited end: %+v", done)
	}
	if got := e.stored(); got.Status.Phase != flags.GuardSucceeded {
		t.Fatalf("stored at the end: %+v", got.Status)
	}
}

func TestService_GuardFailingAfterResumeSwitchesTheFlagOff(t *testing.T) {
	e := newResumeEnv(t)
	e.crashAtStep2()
	e.src.setFailOn(0.4)
	second := e.service(false)
	if err := second.Drive(t.Context()); err != nil {
		t.Fatal(err)
	}
	st := e.until(second, time.Hour, "done", flags.GuardStatus.Done)
	if st.Phase != flags.GuardSwitchedOff || st.Step != 1 {
		t.Fatalf("ended %s at step %d: %s; want switched_off at step 2", st.Phase, st.Step+1, st.Reason)
	}
	f, _ := second.Snapshot().Flag("checkout")
	if f.State != flags.Disabled {
		t.Fatalf("flag state %s, want DISABLED", f.State)
	}
	off := e.audited(flags.ActionGuardOff)
	if len(off) != 1 || off[0].Actor != "shipgate" || off[0].Data["after"] == "" {
		t.Fatalf("audit of the switch: %+v", off)
	}
	if n := len(e.audited(flags.ActionGuardStep)); n != 2 {
		t.Fatalf("%d audited steps, want 2", n)
	}
	if got := e.stored(); got.Status.Phase != flags.GuardSwitchedOff {
		t.Fatalf("stored at the end: %+v", got.Status)
	}
}

func TestService_PassiveServiceLeavesGuardedRolloutsToTheDriver(t *testing.T) {
	e := newResumeEnv(t)
	follower := e.service(true)
	st, err := follower.StartGuardedRollout("checkout", resumeSpec, flags.Who{Actor: "user:dev"})
	if err != nil || st.Phase != flags.GuardRunning {
		t.Fatalf("start on a follower: %+v, %v", st, err)
	}
	if _, err := follower.StartGuardedRollout("checkout", resumeSpec, flags.Who{Actor: "user:dev"}); err == nil {
		t.Fatal("a second guarded rollout of the same flag was accepted")
	}
	e.clk.Step(time.Hour)
	f, _ := follower.Snapshot().Flag("checkout")
	if p, _ := flags.PlanOf(f); p.Percent != 0 || len(e.audited(flags.ActionGuardStep)) != 0 || e.src.count() != 0 {
		t.Fatalf("a passive service drove the rollout: flag at %d%%, %d reads of the stats", p.Percent, e.src.count())
	}

	leader := e.service(true)
	ctx, stopLeading := context.WithCancel(t.Context())
	if err := leader.Drive(ctx); err != nil {
		t.Fatal(err)
	}
	e.until(leader, time.Hour, "at 50%", func(st flags.GuardStatus) bool { return st.Step == 1 })
	// Leadership ends: the rollout stops where it is, still running in
	// the store.
	stopLeading()
	waitReal(t, "the rollout to stop", func() bool {
		st, _ := leader.GuardedStatus("checkout")
		return st.Phase == flags.GuardRunning && e.clk.Waiters() == 0
	})
	if rec := e.stored(); rec.Status.Phase != flags.GuardRunning || rec.Status.Step != 1 {
		t.Fatalf("stored after leadership ended: %+v", rec.Status)
	}
	// The follower reads the leader's progress from the store.
	if st, ok := follower.GuardedStatus("checkout"); !ok || st.Step != 1 || st.Percent != 50 {
		t.Fatalf("follower's view: %+v", st)
	}

	// Another leader finishes it; the follower may then start the next.
	next := e.service(true)
	if err := next.Drive(t.Context()); err != nil {
		t.Fatal(err)
	}
	e.until(next, time.Hour, "done", flags.GuardStatus.Done)
	if st, ok := follower.GuardedStatus("checkout"); !ok || st.Phase != flags.GuardSucceeded {
		t.Fatalf("follower's view of the end: %+v", st)
	}
	if _, err := follower.StartGuardedRollout("checkout", resumeSpec, flags.Who{Actor: "user:dev"}); err != nil {
		t.Fatalf("a new guarded rollout through the follower after the last ended: %v", err)
	}
}

// failingStore is the real store whose commits of a guarded rollout's
// step fail while failSteps is above 0, as while PostgreSQL restarts.
type failingStore struct {
	*sqlite.Store
	mu        sync.Mutex
	failSteps int
	attempts  int
}

func (s *failingStore) CommitFlags(ctx context.Context, c flags.Change) error {
	s.mu.Lock()
	s.attempts++
	for _, e := range c.Audit {
		if e.Action == flags.ActionGuardStep && s.failSteps > 0 {
			s.failSteps--
			s.mu.Unlock()
			return errors.New("the database system is starting up")
		}
	}
	s.mu.Unlock()
	return s.Store.CommitFlags(ctx, c)
}

func (s *failingStore) progress() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.attempts
}

func TestService_GuardStepRetriedWhileTheStoreFails(t *testing.T) {
	e := newResumeEnv(t)
	fs := &failingStore{Store: e.store, failSteps: 3}
	svc, err := flags.NewService(t.Context(), flags.Options{Store: fs, Clock: e.clk, Stats: e.src})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(svc.Close)
	if _, err := svc.StartGuardedRollout("checkout", resumeSpec, flags.Who{Actor: "user:dev"}); err != nil {
		t.Fatal(err)
	}
	// Step the clock each time the rollout waits on it, until it ends.
	limit := e.clk.Now().Add(2 * time.Hour)
	for {
		st, _ := svc.GuardedStatus("checkout")
		if st.Done() {
			break
		}
		if e.clk.Now().After(limit) {
			t.Fatalf("not done after 2h of virtual time: %+v", st)
		}
		waitReal(t, "the rollout to wait on the clock", func() bool {
			st, _ := svc.GuardedStatus("checkout")
			return e.clk.Waiters() > 0 || st.Done()
		})
		before := e.src.count() + fs.progress()
		e.clk.Step(resumeSpec.Interval)
		waitReal(t, "the rollout to go on", func() bool {
			st, _ := svc.GuardedStatus("checkout")
			return e.src.count()+fs.progress() > before || st.Done()
		})
	}
	st, _ := svc.GuardedStatus("checkout")
	if st.Phase != flags.GuardSucceeded || st.Percent != 100 {
		t.Fatalf("ended %s at %d%%: %s; want succeeded at 100%%", st.Phase, st.Percent, st.Reason)
	}
	fs.mu.Lock()
	left := fs.failSteps
	fs.mu.Unlock()
	if left != 0 {
		t.Fatalf("%d failures left unused", left)
	}
	// The step whose commit failed was taken once, when the store came
	// back: one audit event each.
	if n := len(e.audited(flags.ActionGuardStep)); n != 3 {
		t.Fatalf("%d audited steps, want 3", n)
	}
}
