package analysis

import (
	"errors"
	"strings"
	"testing"
	"time"
)

var errorGate = []Gate{{Metric: "error_rate", Max: 0.005, HasMax: true}}

func TestBake_LooksEverySecondReportsEveryInterval(t *testing.T) {
	b := NewBake(BakePlan{Duration: time.Minute, Interval: 10 * time.Second, NeedPass: true}, errorGate, defaultOpts, 0)
	if b.Due(999*time.Millisecond) || !b.Due(time.Second) {
		t.Fatalf("next look at %s, want 1s", b.NextLook())
	}
	for s := 1; s <= 20; s++ {
		elapsed := time.Duration(s) * time.Second
		if !b.Due(elapsed) {
			t.Fatalf("no look due at %s", elapsed)
		}
		d := b.Look(elapsed, sample(uint64(5*s), 0, time.Millisecond), Sample{})
		if want := s%10 == 0; d.Report != want || d.Outcome != BakeGoOn {
			t.Fatalf("look at %s: report %v, outcome %d; want report %v, go on", elapsed, d.Report, d.Outcome, want)
		}
	}
}

func TestBake_ConvictsBetweenReports(t *testing.T) {
	// A canary failing 40% at 5 requests/s: the evidence is there after a
	// few requests, long before the first interval.
	b := NewBake(BakePlan{Duration: 10 * time.Minute, Interval: 10 * time.Second, NeedPass: true}, errorGate, Options{MinRequests: 50, FailConfidence: 0.99, PassConfidence: 0.95, Steps: 3}, 0)
	d := b.Look(time.Second, sample(5, 1, time.Millisecond), Sample{})
	if d.Outcome != BakeGoOn {
		t.Fatalf("1 failed of 5 = %d (%s), want go on", d.Outcome, d.Results[0].Detail)
	}
	d = b.Look(2*time.Second, sample(10, 4, time.Millisecond), Sample{})
	if d.Outcome != BakeFailed || d.Verdict != Fail || d.Report {
		t.Fatalf("4 failed of 10 at 2s = outcome %d, %s, report %v; want failed before the first report", d.Outcome, d.Verdict, d.Report)
	}
}

func TestBake_CountsInIntervals(t *testing.T) {
	plan := BakePlan{Duration: time.Hour, Interval: 10 * time.Second, NeedPass: true}
	t.Run("consecutive failures", func(t *testing.T) {
		gates := []Gate{{Metric: "error_rate", Max: 0.01, HasMax: true, ConsecutiveFailures: 2}}
		b := NewBake(plan, gates, defaultOpts, 0)
		bad := sample(500, 100, time.Millisecond)
		for s := 1; s < 20; s++ {
			// Nineteen failed looks, one of them reported: one interval.
			if d := b.Look(time.Duration(s)*time.Second, bad, Sample{}); d.Outcome != BakeGoOn {
				t.Fatalf("failed look at %ds = %d (%s), want go on: two intervals in a row are needed", s, d.Outcome, d.Results[0].Detail)
			}
		}
		if d := b.Look(20*time.Second, bad, Sample{}); d.Outcome != BakeFailed {
			t.Fatalf("second reported failed look = %d (%s), want failed", d.Outcome, d.Results[0].Detail)
		}
	})
	t.Run("metric source errors", func(t *testing.T) {
		opts := defaultOpts
		opts.MaxSourceErrors = 2
		b := NewBake(plan, errorGate, opts, 0)
		down := errors.New("connection refused")
		for s := 1; s < 20; s++ {
			d := b.SourceError(time.Duration(s)*time.Second, down)
			if d.Outcome != BakeGoOn || d.Verdict != Inconclusive || !strings.Contains(d.Results[0].Detail, "connection refused") {
				t.Fatalf("source error at %ds = %d, %s (%s), want an inconclusive look", s, d.Outcome, d.Verdict, d.Results[0].Detail)
			}
		}
		if d := b.SourceError(20*time.Second, down); d.Outcome != BakeFailed {
			t.Fatalf("source down at two reported looks in a row = %d, want failed", d.Outcome)
		}
	})
}

func TestBake_EndsAndExpires(t *testing.T) {
	plan := BakePlan{Duration: 30 * time.Second, Interval: 10 * time.Second, NeedPass: true}
	if got := plan.Extra(); got != 50*time.Second {
		t.Fatalf("extra = %s, want five intervals", got)
	}
	b := NewBake(plan, errorGate, defaultOpts, 0)
	good := sample(5000, 0, time.Millisecond)
	if d := b.Look(29*time.Second, good, Sample{}); d.Verdict != Pass || d.Outcome != BakeGoOn {
		t.Fatalf("passing look before the bake time = %s, %d; want go on", d.Verdict, d.Outcome)
	}
	if d := b.Look(30*time.Second, good, Sample{}); d.Outcome != BakeDone {
		t.Fatalf("passing look at the bake time = %d, want done", d.Outcome)
	}
	b = NewBake(plan, errorGate, defaultOpts, 0)
	thin := sample(10, 0, time.Millisecond)
	if d := b.Look(79*time.Second, thin, Sample{}); d.Outcome != BakeGoOn {
		t.Fatalf("inconclusive look within the extension = %d, want go on", d.Outcome)
	}
	if d := b.Look(80*time.Second, thin, Sample{}); d.Outcome != BakeExpired {
		t.Fatalf("inconclusive look after the extension = %d, want expired", d.Outcome)
	}
	plan.NeedPass = false
	b = NewBake(plan, errorGate, defaultOpts, 0)
	if d := b.Look(30*time.Second, thin, Sample{}); d.Outcome != BakeDone {
		t.Fatalf("inconclusive look at the bake time without need_pass = %d, want done", d.Outcome)
	}
}

func TestBake_Resumed(t *testing.T) {
	// A bake resumed after 25s served looks a second later and reports
	// an interval later.
	b := NewBake(BakePlan{Duration: time.Minute, Interval: 10 * time.Second}, errorGate, defaultOpts, 25*time.Second)
	if got := b.NextLook(); got != 26*time.Second {
		t.Fatalf("next look at %s, want 26s", got)
	}
	for s := 26; s <= 35; s++ {
		if d := b.Look(time.Duration(s)*time.Second, sample(100, 0, time.Millisecond), Sample{}); d.Report != (s == 35) {
			t.Fatalf("look at %ds reported %v", s, d.Report)
		}
	}
}

func TestBake_ShortIntervalLooksEachInterval(t *testing.T) {
	b := NewBake(BakePlan{Duration: time.Minute, Interval: 500 * time.Millisecond}, errorGate, defaultOpts, 0)
	if got := b.NextLook(); got != 500*time.Millisecond {
		t.Fatalf("next look at %s, want the 500ms interval", got)
	}
	if d := b.Look(500*time.Millisecond, sample(10, 0, time.Millisecond), Sample{}); !d.Report {
		t.Fatal("a look at each 500ms interval is reported")
	}
}
