package flags

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/shipgate/shipgate/internal/analysis"
	"github.com/shipgate/shipgate/internal/audit"
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
	Verdict  analysis.Verdict  `json:"verdict,omitempty"`
	Results  []analysis.Result `json:"results,omitempty"`
	On       Traffic           `json:"on"`
	Off      Traffic           `json:"off"`
	Started  time.Time         `json:"started"`
	Finished time.Time         `json:"finished,omitzero"`
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

type guardRun struct {
	status GuardStatus
	cancel context.CancelFunc
}

// StartGuarded starts a guarded rollout of key in the background, owned
// by ctx: it stops when ctx is done. One guarded rollout per flag runs at
// a time; another is ErrConflict.
func (s *Service) StartGuarded(ctx context.Context, key string, spec GuardSpec, src FlagStatsSource, who Who) (GuardStatus, error) {
	if src == nil {
		return GuardStatus{}, fmt.Errorf("guarded rollouts need the builtin router's per-flag stats, which this server does not have: %w", ErrConflict)
	}
	if _, err := spec.check(); err != nil {
		return GuardStatus{}, err
	}
	f, ok := s.snap.Load().Flag(key)
	if !ok {
		return GuardStatus{}, fmt.Errorf("flag %q: %w", key, ErrNotFound)
	}
	if _, ok := PlanOf(f); !ok {
		return GuardStatus{}, invalidf(pointer("/flags", key)+"/targeting", "a guarded rollout needs a boolean flag whose targeting Shipgate wrote")
	}
	s.guardsMu.Lock()
	if g := s.guards[key]; g != nil && !g.status.Done() {
		s.guardsMu.Unlock()
		return GuardStatus{}, fmt.Errorf("a guarded rollout of %q is running (step %d/%d): %w", key, g.status.Step+1, len(g.status.Steps), ErrConflict)
	}
	runCtx, cancel := context.WithCancel(ctx)
	st := GuardStatus{Key: key, Phase: GuardRunning, Steps: spec.Steps, Started: s.now()}
	s.guards[key] = &guardRun{status: st, cancel: cancel}
	s.guardsMu.Unlock()
	go func() {
		defer cancel()
		s.RunGuarded(runCtx, key, spec, src, who)
	}()
	return st, nil
}

// GuardedStatus returns the status of the latest guarded rollout of key.
func (s *Service) GuardedStatus(key string) (GuardStatus, bool) {
	s.guardsMu.Lock()
	defer s.guardsMu.Unlock()
	g := s.guards[key]
	if g == nil {
		return GuardStatus{}, false
	}
	return g.status, true
}

func (s *Service) setGuard(st GuardStatus) {
	s.guardsMu.Lock()
	defer s.guardsMu.Unlock()
	if g := s.guards[st.Key]; g != nil {
		g.status = st
		return
	}
	s.guards[st.Key] = &guardRun{status: st}
}

// RunGuarded runs a guarded rollout of key to its end and returns how it
// ended: each step sets the percentage (audited), then the guards judge
// flag-on requests (the canary) against flag-off ones (the baseline)
// every interval. A failed guard switches the flag off at once, audited
// like a rollback, with the measured value and the threshold.
func (s *Service) RunGuarded(ctx context.Context, key string, spec GuardSpec, src FlagStatsSource, who Who) GuardStatus {
	st := GuardStatus{Key: key, Phase: GuardRunning, Steps: spec.Steps, Started: s.now()}
	end := func(phase, reason string) GuardStatus {
		st.Phase, st.Reason, st.Finished = phase, reason, s.now()
		s.setGuard(st)
		return st
	}
	gates, err := spec.check()
	if err != nil {
		return end(GuardFailed, err.Error())
	}
	opts := analysis.Options{MinRequests: spec.MinRequests, FailConfidence: 0.99, PassConfidence: 0.95}
	var lastOff analysis.Sample
	for i, p := range spec.Steps {
		st.Step, st.Percent, st.Verdict, st.Results = i, p, "", nil
		s.setGuard(st)
		step := Who{Actor: who.Actor, Reason: fmt.Sprintf("guarded rollout step %d/%d: %d%%", i+1, len(spec.Steps), p)}
		if who.Reason != "" {
			step.Reason += " (" + who.Reason + ")"
		}
		f, err := s.Edit(ctx, key, ActionGuardStep, step, func(f *Flag) error {
			plan, ok := PlanOf(f)
			if !ok {
				return invalidf(pointer("/flags", key)+"/targeting", "was changed by hand during the rollout")
			}
			plan.Percent = p
			f.State = Enabled
			return ApplyPlan(f, plan, s.now())
		})
		if err != nil {
			return end(GuardFailed, err.Error())
		}
		on, off, _ := OnOff(f)
		base, err := flagSamples(ctx, src, key)
		if err != nil {
			return end(GuardFailed, err.Error())
		}
		start := s.now()
		tick := time.NewTicker(spec.Interval)
		passed := false
		for !passed {
			select {
			case <-ctx.Done():
				tick.Stop()
				return end(GuardFailed, "stopped: "+context.Cause(ctx).Error())
			case <-tick.C:
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
			s.setGuard(st)
			elapsed := s.now().Sub(start)
			switch {
			case st.Verdict == analysis.Fail:
				tick.Stop()
				return s.switchOff(ctx, &st, end)
			case st.Verdict == analysis.Pass && elapsed >= spec.Bake:
				passed = true
				if p < 100 {
					lastOff = offWin
				}
			case elapsed >= spec.MaxWait:
				tick.Stop()
				reason := fmt.Sprintf("the guards were still %s after %s at %d%%; the flag stays there", st.Verdict, elapsed.Round(time.Second), p)
				s.auditGuard(ctx, key, ActionGuardDone, "stalled", reason, st)
				return end(GuardStalled, reason)
			}
		}
		tick.Stop()
	}
	reason := fmt.Sprintf("reached %d%% with every guard passing", st.Percent)
	s.auditGuard(ctx, key, ActionGuardDone, "ok", reason, st)
	return end(GuardSucceeded, reason)
}

// switchOff disables the flag because a guard failed.
func (s *Service) switchOff(ctx context.Context, st *GuardStatus, end func(string, string) GuardStatus) GuardStatus {
	var failed []string
	for _, r := range st.Results {
		if r.Verdict == analysis.Fail {
			failed = append(failed, r.Gate+": "+r.Detail)
		}
	}
	reason := fmt.Sprintf("guard failed at %d%%: %s", st.Percent, strings.Join(failed, "; "))
	// The switch must happen even if the request that started the
	// rollout is gone.
	_, err := s.Edit(context.WithoutCancel(ctx), st.Key, ActionGuardOff, Who{Actor: "shipgate", Reason: reason}, func(f *Flag) error {
		f.State = Disabled
		return nil
	})
	if err != nil {
		return end(GuardFailed, reason+"; switching the flag off failed: "+err.Error())
	}
	return end(GuardSwitchedOff, reason)
}

func (s *Service) auditGuard(ctx context.Context, key, action, outcome, reason string, st GuardStatus) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := audit.Event{Actor: "shipgate", Action: action, Subject: "flag/" + key, Reason: reason, Outcome: outcome,
		Data: map[string]string{"percent": strconv.Itoa(st.Percent), "verdict": string(st.Verdict)}}
	// An audit record of the end is worth having, not worth failing for.
	_ = s.store.CommitFlags(context.WithoutCancel(ctx), Change{Audit: []audit.Event{e}})
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
