package flags

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/shipgate/shipgate/internal/analysis"
	"github.com/shipgate/shipgate/internal/audit"
	"github.com/shipgate/shipgate/internal/clock"
)

// FlagStatsSource gives traffic counters per flag and variant, measured
// by a router from the X-Flag-<key>: <variant> response header the app
// sets. Counters are cumulative; the guard subtracts snapshots.
type FlagStatsSource interface {
	FlagStats(ctx context.Context) (map[string]map[string]analysis.Sample, error)
}

// GuardSpec is a guarded rollout: the percentages to go through, how long
// to bake each, and the guards that switch the flag off when they fail.
type GuardSpec struct {
	// Steps are percentages, increasing, ending at 100 normally.
	Steps []int `json:"steps"`
	// Bake is the least time at each step; the step ends once it is over
	// and every guard passes.
	Bake time.Duration `json:"bake"`
	// Guards are conditions on flag-on requests, such as
	// "error_rate<0.5%", "latency_p99<2x" (times flag-off's p99) or
	// "latency_p99<300ms".
	Guards []string `json:"guards"`
	// Interval is how often the guards are judged. Default 1s.
	Interval time.Duration `json:"interval,omitempty"`
	// MinRequests is the least number of flag-on requests before a guard
	// may pass. Default 50.
	MinRequests int `json:"min_requests,omitempty"`
	// MaxWait bounds each step when the guards stay inconclusive (too
	// little traffic); the rollout then stops where it is. Default 3×Bake.
	MaxWait time.Duration `json:"max_wait,omitempty"`
}

// Guard phases.
const (
	GuardRunning     = "running"
	GuardSucceeded   = "succeeded"
	GuardSwitchedOff = "switched_off"
	GuardStalled     = "stalled"
	GuardFailed      = "failed"
)

// GuardStatus is where a guarded rollout is.
type GuardStatus struct {
	Key   string `json:"key"`
	Phase string `json:"phase"`
	// Step is the index in Steps of the current (or last) step.
	Step    int    `json:"step"`
	Percent int    `json:"percent"`
	Steps   []int  `json:"steps"`
	Reason  string `json:"reason,omitempty"`
	// Verdict and Results are the latest judgement of the guards.
	Verdict analysis.Verdict  `json:"verdict,omitempty"`
	Results []analysis.Result `json:"results,omitempty"`
	On      Traffic           `json:"on"`
	Off     Traffic           `json:"off"`
	Started time.Time         `json:"started"`
	// StepStarted is when the current step began.
	StepStarted time.Time `json:"step_started,omitzero"`
	// Baked is the bake time the current step has served, as of its last
	// persisted judgement: a resumed step bakes what is left. Time while
	// no server drove the rollout does not count.
	Baked    time.Duration `json:"baked"`
	Finished time.Time     `json:"finished,omitzero"`
}

// Traffic summarizes a window of requests.
type Traffic struct {
	Requests  uint64        `json:"requests"`
	ErrorRate float64       `json:"error_rate"`
	P99       time.Duration `json:"p99"`
}

func trafficOf(s analysis.Sample) Traffic {
	return Traffic{Requests: s.Requests, ErrorRate: s.ErrorRate(), P99: s.Latency.Quantile(0.99)}
}

// Done reports whether the rollout has ended.
func (g GuardStatus) Done() bool { return g.Phase != GuardRunning }

var guardPattern = regexp.MustCompile(`^\s*(error_rate|latency_p50|latency_p95|latency_p99)\s*(<=|<)\s*([0-9.]+)\s*(%|x|ms|s|µs|us)?\s*$`)

// ParseGuard reads a guard: "error_rate<0.5%", "latency_p99<2x" (times the
// flag-off p99) or "latency_p99<300ms".
func ParseGuard(s string) (analysis.Gate, error) {
	m := guardPattern.FindStringSubmatch(s)
	if m == nil {
		return analysis.Gate{}, fmt.Errorf("guard %q: want METRIC<LIMIT, such as error_rate<0.5%%, latency_p99<2x or latency_p99<300ms", s)
	}
	n, err := strconv.ParseFloat(m[3], 64)
	if err != nil || n <= 0 {
		return analysis.Gate{}, fmt.Errorf("guard %q: the limit must be a positive number", s)
	}
	g := analysis.Gate{Metric: m[1]}
	unit := m[4]
	switch {
	case g.Metric == "error_rate":
		switch unit {
		case "%":
			n /= 100
		case "":
		default:
			return analysis.Gate{}, fmt.Errorf("guard %q: an error rate is a fraction or a percentage", s)
		}
		if n >= 1 {
			return analysis.Gate{}, fmt.Errorf("guard %q: an error rate limit must be below 100%%", s)
		}
		g.Max, g.HasMax = n, true
	case unit == "x":
		g.MaxRatio = n
	case unit == "":
		return analysis.Gate{}, fmt.Errorf("guard %q: give a latency a unit (ms, s) or a ratio to flag-off (2x)", s)
	default:
		d, err := time.ParseDuration(m[3] + strings.Replace(unit, "µs", "us", 1))
		if err != nil {
			return analysis.Gate{}, fmt.Errorf("guard %q: %w", s, err)
		}
		g.Max, g.HasMax = d.Seconds(), true
	}
	return g, nil
}

// check validates a spec and returns its gates.
func (spec *GuardSpec) check() ([]analysis.Gate, error) {
	if len(spec.Steps) == 0 {
		return nil, invalidf("/steps", "give the percentages to go through, such as 1,5,25,100")
	}
	prev := 0
	for i, p := range spec.Steps {
		if p <= prev || p > 100 {
			return nil, invalidf(index("/steps", i), "steps must increase, from 1 to 100; got %d after %d", p, prev)
		}
		prev = p
	}
	if spec.Bake <= 0 {
		return nil, invalidf("/bake", "give each step a bake time, such as 10m")
	}
	if len(spec.Guards) == 0 {
		return nil, invalidf("/guards", "give at least one guard, such as error_rate<0.5%%")
	}
	gates := make([]analysis.Gate, 0, len(spec.Guards))
	for i, s := range spec.Guards {
		g, err := ParseGuard(s)
		if err != nil {
			return nil, invalidf(index("/guards", i), "%v", err)
		}
		gates = append(gates, g)
	}
	if spec.Interval <= 0 {
		spec.Interval = time.Second
	}
	if spec.MinRequests <= 0 {
		spec.MinRequests = 50
	}
	if spec.MaxWait <= 0 {
		spec.MaxWait = 3 * spec.Bake
	}
	return gates, nil
}

// GuardRecord is a guarded rollout as the store keeps it: enough for any
// server to resume it at its step, with the bake time it had left, after
// a restart or a failover. The store keeps the latest one of each flag.
type GuardRecord struct {
	Key  string    `json:"key"`
	Spec GuardSpec `json:"spec"`
	// Actor and Reason are who started the rollout and why.
	Actor  string `json:"actor"`
	Reason string `json:"reason,omitempty"`
	// Status is where the rollout was at its last persisted change: its
	// phase, step, percentage, and when the step began (StepStarted).
	Status GuardStatus `json:"status"`
	// LastOff is the flag-off window of the last step passed below 100%:
	// the baseline of a step that leaves nobody flag-off.
	LastOff *Window `json:"last_off,omitempty"`
}

// Window is an analysis.Sample as a guard record persists it.
type Window struct {
	Requests        uint64   `json:"requests"`
	Status5xx       uint64   `json:"status_5xx,omitempty"`
	TransportErrors uint64   `json:"transport_errors,omitempty"`
	Latency         []uint64 `json:"latency,omitempty"`
}

func windowOf(s analysis.Sample) *Window {
	w := &Window{Requests: s.Requests, Status5xx: s.Status5xx, TransportErrors: s.TransportErrors}
	if s.Latency.Count() > 0 {
		w.Latency = s.Latency[:]
	}
	return w
}

func (w *Window) sample() analysis.Sample {
	if w == nil {
		return analysis.Sample{}
	}
	s := analysis.Sample{Requests: w.Requests, Status5xx: w.Status5xx, TransportErrors: w.TransportErrors}
	copy(s.Latency[:], w.Latency)
	return s
}

type guardRun struct {
	status GuardStatus
	// live is set while this service drives the rollout.
	live bool
}

// StartGuarded starts a guarded rollout of key, persisted first, and
// drives it in the background under ctx: it stops (staying at its step in
// the store, to be resumed) when ctx is done. One guarded rollout per
// flag runs at a time; another is ErrConflict.
func (s *Service) StartGuarded(ctx context.Context, key string, spec GuardSpec, src FlagStatsSource, who Who) (GuardStatus, error) {
	rec, err := s.newGuard(ctx, key, spec, src, who)
	if err != nil {
		return GuardStatus{}, err
	}
	s.launch(ctx, rec, src)
	return rec.Status, nil
}

// newGuard checks a guarded rollout of key and persists it, running at
// its first step, not yet begun.
func (s *Service) newGuard(ctx context.Context, key string, spec GuardSpec, src FlagStatsSource, who Who) (GuardRecord, error) {
	if src == nil {
		return GuardRecord{}, fmt.Errorf("guarded rollouts need the builtin router's per-flag stats, which this server does not have: %w", ErrConflict)
	}
	if err := checkWho(who); err != nil {
		return GuardRecord{}, err
	}
	if _, err := spec.check(); err != nil {
		return GuardRecord{}, err
	}
	f, ok := s.snap.Load().Flag(key)
	if !ok {
		return GuardRecord{}, fmt.Errorf("flag %q: %w", key, ErrNotFound)
	}
	if _, ok := PlanOf(f); !ok {
		return GuardRecord{}, invalidf(pointer("/flags", key)+"/targeting", "a guarded rollout needs a boolean flag whose targeting Shipgate wrote; "+
			"hand it to Shipgate first, replacing the targeting by nobody: shipgate flags rollout %s 0%% --replace", key)
	}
	// s.mu orders this with the steps of the rollouts this service runs;
	// the stored record is what every server sees.
	s.mu.Lock()
	defer s.mu.Unlock()
	s.guardsMu.Lock()
	g := s.guards[key]
	s.guardsMu.Unlock()
	if g != nil && g.live {
		return GuardRecord{}, fmt.Errorf("a guarded rollout of %q is running (step %d/%d): %w", key, g.status.Step+1, len(g.status.Steps), ErrConflict)
	}
	// Any other (one another server drives, or one waiting to be
	// resumed) is in the store.
	stored, err := s.store.LoadGuards(ctx)
	if err != nil {
		return GuardRecord{}, fmt.Errorf("read guarded rollouts: %w", err)
	}
	for _, r := range stored {
		if r.Key == key && !r.Status.Done() {
			return GuardRecord{}, fmt.Errorf("a guarded rollout of %q is running (step %d/%d): %w", key, r.Status.Step+1, len(r.Status.Steps), ErrConflict)
		}
	}
	rec := GuardRecord{Key: key, Spec: spec, Actor: who.Actor, Reason: who.Reason,
		Status: GuardStatus{Key: key, Phase: GuardRunning, Steps: spec.Steps, Started: s.now().UTC()}}
	if err := s.store.CommitFlags(ctx, Change{Guards: []GuardRecord{rec}}); err != nil {
		return GuardRecord{}, fmt.Errorf("store guarded rollout: %w", err)
	}
	s.setGuard(rec.Status, false)
	return rec, nil
}

// launch drives rec in the background under ctx, unless this service
// drives it already.
func (s *Service) launch(ctx context.Context, rec GuardRecord, src FlagStatsSource) {
	s.guardsMu.Lock()
	if g := s.guards[rec.Key]; g != nil && g.live {
		s.guardsMu.Unlock()
		return
	}
	s.guards[rec.Key] = &guardRun{status: rec.Status, live: true}
	s.guardsMu.Unlock()
	s.runs.Add(1)
	go func() {
		defer s.runs.Done()
		s.runGuard(ctx, rec, src)
	}()
}

// Drive makes this service drive guarded rollouts until ctx is done: it
// resumes every unfinished one in the store at its step, with the time
// that step had left, and runs those started later, here or (found on
// Reload) by another server. A server drives them while it leads; a
// single server always.
func (s *Service) Drive(ctx context.Context) error {
	runCtx, cancel := context.WithCancel(ctx)
	stopLife := context.AfterFunc(s.life, cancel)
	context.AfterFunc(runCtx, func() { stopLife() })
	s.guardsMu.Lock()
	s.drive = runCtx
	s.guardsMu.Unlock()
	return s.resumeGuards(runCtx)
}

// driving returns the context guarded rollouts run under, or nil when
// this service drives none now.
func (s *Service) driving() context.Context {
	s.guardsMu.Lock()
	defer s.guardsMu.Unlock()
	if s.drive == nil || s.drive.Err() != nil {
		return nil
	}
	return s.drive
}

// resumeGuards drives every unfinished guarded rollout in the store that
// this service does not drive yet.
func (s *Service) resumeGuards(ctx context.Context) error {
	recs, err := s.store.LoadGuards(ctx)
	if err != nil {
		return fmt.Errorf("read guarded rollouts: %w", err)
	}
	for _, rec := range recs {
		if !rec.Status.Done() {
			s.launch(ctx, rec, s.stats)
		}
	}
	return nil
}

// storedGuard returns the stored guarded rollout of key.
func (s *Service) storedGuard(ctx context.Context, key string) (GuardRecord, error) {
	recs, err := s.store.LoadGuards(ctx)
	if err != nil {
		return GuardRecord{}, fmt.Errorf("read guarded rollouts: %w", err)
	}
	for _, r := range recs {
		if r.Key == key {
			return r, nil
		}
	}
	return GuardRecord{}, fmt.Errorf("guarded rollout of %q: %w", key, ErrNotFound)
}

// GuardedStatus returns the status of the latest guarded rollout of key:
// the one this service drives, or the one in the store.
func (s *Service) GuardedStatus(key string) (GuardStatus, bool) {
	s.guardsMu.Lock()
	g := s.guards[key]
	s.guardsMu.Unlock()
	if g != nil && g.live {
		return g.status, true
	}
	if r, err := s.storedGuard(s.life, key); err == nil {
		return r.Status, true
	}
	if g == nil {
		return GuardStatus{}, false
	}
	return g.status, true
}

func (s *Service) setGuard(st GuardStatus, live bool) {
	s.guardsMu.Lock()
	defer s.guardsMu.Unlock()
	s.guards[st.Key] = &guardRun{status: st, live: live}
}

// RunGuarded runs a guarded rollout of key to its end and returns how it
// ended: each step sets the percentage (audited), then the guards judge
// flag-on requests (the canary) against flag-off ones (the baseline)
// every interval. A failed guard switches the flag off at once, audited
// like a rollback, with the measured value and the threshold. Each step
// is persisted with the flag change that makes it, so that a rollout cut
// short by ctx resumes (Drive) where it was.
func (s *Service) RunGuarded(ctx context.Context, key string, spec GuardSpec, src FlagStatsSource, who Who) GuardStatus {
	rec, err := s.newGuard(ctx, key, spec, src, who)
	if err != nil {
		return GuardStatus{Key: key, Phase: GuardFailed, Steps: spec.Steps, Reason: err.Error()}
	}
	s.setGuard(rec.Status, true)
	return s.runGuard(ctx, rec, src)
}

// runGuard drives rec from its persisted step to its end, or until ctx is
// done. A step that had begun (StepStarted set) goes on with the bake time
// it had left; its guards judge the traffic since the resume.
func (s *Service) runGuard(ctx context.Context, rec GuardRecord, src FlagStatsSource) GuardStatus {
	// The record as stored now: a run of it here that just ended has
	// stored its end, which must not be driven again.
	if fresh, err := s.storedGuard(ctx, rec.Key); err == nil {
		if fresh.Status.Done() {
			s.setGuard(fresh.Status, false)
			return fresh.Status
		}
		rec = fresh
	}
	spec := rec.Spec
	st := rec.Status
	key := rec.Key
	who := Who{Actor: rec.Actor, Reason: rec.Reason}
	if who.Actor == "" {
		who.Actor = "shipgate"
	}
	// persist returns rec with the status as it is now, for a Change.
	persist := func() []GuardRecord {
		rec.Status = st
		return []GuardRecord{rec}
	}
	end := func(phase, reason string) GuardStatus {
		st.Phase, st.Reason, st.Finished = phase, reason, s.now().UTC()
		// Best effort: if this fails, the record stays running and the
		// next server to drive it ends it again.
		_ = s.store.CommitFlags(context.WithoutCancel(ctx), Change{Guards: persist()})
		s.setGuard(st, false)
		return st
	}
	stopped := func() GuardStatus {
		// Not an end: the store keeps the rollout at its step for the
		// next server to drive it.
		s.setGuard(st, false)
		out := st
		out.Phase, out.Reason = GuardFailed, "stopped: "+context.Cause(ctx).Error()
		return out
	}
	if src == nil {
		return end(GuardFailed, "this server has no per-flag stats (the builtin router) to judge the guards with")
	}
	gates, err := spec.check()
	if err != nil {
		return end(GuardFailed, err.Error())
	}
	opts := analysis.Options{MinRequests: spec.MinRequests, FailConfidence: 0.99, PassConfidence: 0.95}
	lastOff := rec.LastOff.sample()
	// The bake served is persisted at most every tenth of the bake (and
	// interval): a crash loses at most that much of it, baked again.
	saveEvery := max(spec.Bake/10, spec.Interval)
	first := st.Step
	for i := first; i < len(spec.Steps); i++ {
		p := spec.Steps[i]
		resumed := i == first && !st.StepStarted.IsZero()
		var f *Flag
		if resumed {
			cur, ok := s.snap.Load().Flag(key)
			if !ok {
				return end(GuardFailed, fmt.Sprintf("flag %q was deleted during the rollout", key))
			}
			plan, ok := PlanOf(cur)
			if !ok || plan.Percent != p || cur.State != Enabled {
				return end(GuardFailed, fmt.Sprintf("the flag was changed by hand while no server drove the rollout (it was at %d%%); the rollout ends there", p))
			}
			f = cur
		} else {
			st.Step, st.Percent, st.Verdict, st.Results = i, p, "", nil
			st.StepStarted, st.Baked = s.now().UTC(), 0
			step := Who{Actor: who.Actor, Reason: fmt.Sprintf("guarded rollout step %d/%d: %d%%", i+1, len(spec.Steps), p)}
			if who.Reason != "" {
				step.Reason += " (" + who.Reason + ")"
			}
			for {
				f, err = s.edit(ctx, key, ActionGuardStep, step, func(f *Flag) error {
					plan, ok := PlanOf(f)
					if !ok {
						return invalidf(pointer("/flags", key)+"/targeting", "was changed by hand during the rollout")
					}
					plan.Percent = p
					f.State = Enabled
					return ApplyPlan(f, plan, s.now())
				}, persist())
				if err == nil || errors.Is(err, ErrInvalid) || errors.Is(err, ErrNotFound) {
					break
				}
				// The store failed (a database restart): the step is not
				// taken; try it again.
				if ctx.Err() != nil || !clock.Sleep(ctx, s.clock, spec.Interval) {
					return stopped()
				}
				st.StepStarted = s.now().UTC()
			}
			if err != nil {
				return end(GuardFailed, err.Error())
			}
		}
		s.setGuard(st, true)
		on, off, _ := OnOff(f)
		base, err := flagSamples(ctx, src, key)
		for err != nil {
			if !clock.Sleep(ctx, s.clock, spec.Interval) {
				return stopped()
			}
			base, err = flagSamples(ctx, src, key)
		}
		start := s.now().Add(-st.Baked)
		lastSave := s.now()
		tick := s.clock.NewTicker(spec.Interval)
		passed := false
		for !passed {
			select {
			case <-ctx.Done():
				tick.Stop()
				return stopped()
			case <-tick.C():
			}
			cur, err := flagSamples(ctx, src, key)
			if err != nil {
				continue
			}
			onWin := cur[on].Sub(base[on])
			offWin := cur[off].Sub(base[off])
			if p == 100 || offWin.Requests < uint64(spec.MinRequests) && lastOff.Requests > offWin.Requests { //nolint:gosec // check made MinRequests at least 1
				// Nobody is flag-off any more: compare with the last
				// window that had flag-off users.
				offWin = lastOff
			}
			st.Verdict, st.Results = analysis.Judge(gates, onWin, offWin, opts)
			st.On, st.Off = trafficOf(onWin), trafficOf(offWin)
			s.setGuard(st, true)
			elapsed := s.now().Sub(start)
			st.Baked = elapsed
			switch {
			case st.Verdict == analysis.Fail:
				tick.Stop()
				return s.switchOff(ctx, &st, persist, end)
			case st.Verdict == analysis.Pass && elapsed >= spec.Bake:
				passed = true
				if p < 100 {
					lastOff = offWin
					rec.LastOff = windowOf(offWin)
				}
			case elapsed >= spec.MaxWait:
				tick.Stop()
				reason := fmt.Sprintf("the guards were still %s after %s at %d%%; the flag stays there", st.Verdict, elapsed.Round(time.Second), p)
				st.Phase, st.Reason, st.Finished = GuardStalled, reason, s.now().UTC()
				s.auditGuard(ctx, key, ActionGuardDone, "stalled", reason, st, persist())
				s.setGuard(st, false)
				return st
			default:
				if now := s.now(); now.Sub(lastSave) >= saveEvery {
					lastSave = now
					// A failed save loses bake time, baked again later.
					_ = s.store.CommitFlags(ctx, Change{Guards: persist()})
				}
			}
		}
		tick.Stop()
	}
	reason := fmt.Sprintf("reached %d%% with every guard passing", st.Percent)
	st.Phase, st.Reason, st.Finished = GuardSucceeded, reason, s.now().UTC()
	s.auditGuard(ctx, key, ActionGuardDone, "ok", reason, st, persist())
	s.setGuard(st, false)
	return st
}

// switchOff disables the flag because a guard failed; the rollout's end
// is stored with the switch.
func (s *Service) switchOff(ctx context.Context, st *GuardStatus, persist func() []GuardRecord, end func(string, string) GuardStatus) GuardStatus {
	var failed []string
	for _, r := range st.Results {
		if r.Verdict == analysis.Fail {
			failed = append(failed, r.Gate+": "+r.Detail)
		}
	}
	reason := fmt.Sprintf("guard failed at %d%%: %s", st.Percent, strings.Join(failed, "; "))
	st.Phase, st.Reason, st.Finished = GuardSwitchedOff, reason, s.now().UTC()
	// The switch must happen even if the request that started the
	// rollout is gone.
	_, err := s.edit(context.WithoutCancel(ctx), st.Key, ActionGuardOff, Who{Actor: "shipgate", Reason: reason}, func(f *Flag) error {
		f.State = Disabled
		return nil
	}, persist())
	if err != nil {
		st.Phase, st.Finished = GuardRunning, time.Time{}
		return end(GuardFailed, reason+"; switching the flag off failed: "+err.Error())
	}
	s.setGuard(*st, false)
	return *st
}

func (s *Service) auditGuard(ctx context.Context, key, action, outcome, reason string, st GuardStatus, guards []GuardRecord) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := audit.Event{Actor: "shipgate", Action: action, Subject: "flag/" + key, Reason: reason, Outcome: outcome,
		Data: map[string]string{"percent": strconv.Itoa(st.Percent), "verdict": string(st.Verdict)}, Time: s.now().UTC()}
	// An audit record of the end is worth having, not worth failing for.
	_ = s.store.CommitFlags(context.WithoutCancel(ctx), Change{Audit: []audit.Event{e}, Guards: guards})
}

// flagSamples returns the samples of key by variant. Header names are
// case-insensitive, so a router may report the key in another case.
func flagSamples(ctx context.Context, src FlagStatsSource, key string) (map[string]analysis.Sample, error) {
	all, err := src.FlagStats(ctx)
	if err != nil {
		return nil, fmt.Errorf("read flag stats: %w", err)
	}
	if m, ok := all[key]; ok {
		return m, nil
	}
	for k, m := range all {
		if strings.EqualFold(k, key) {
			return m, nil
		}
	}
	return map[string]analysis.Sample{}, nil
}
