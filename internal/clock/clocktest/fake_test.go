package clocktest

import (
	"testing"
	"time"
)

func TestFake_TimerFiresWhenStepped(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	f := New(start)
	tm := f.NewTimer(10 * time.Second)
	if !f.HasWaiters() {
		t.Fatal("no waiter after NewTimer")
	}
	f.Step(9 * time.Second)
	select {
	case <-tm.C():
		t.Fatal("timer fired 1s early")
	default:
	}
	f.Step(time.Second)
	select {
	case got := <-tm.C():
		if want := start.Add(10 * time.Second); !got.Equal(want) {
			t.Fatalf("timer fired with %v, want %v", got, want)
		}
	default:
		t.Fatal("timer did not fire when due")
	}
	if f.HasWaiters() {
		t.Fatal("a fired timer is still waiting")
	}
	if tm.Stop() {
		t.Fatal("Stop of a fired timer reported it pending")
	}
}

func TestFake_TickerFiresEveryPeriodAndStops(t *testing.T) {
	f := New(time.Unix(0, 0))
	tk := f.NewTicker(time.Second)
	for i := range 3 {
		f.Step(time.Second)
		select {
		case <-tk.C():
		default:
			t.Fatalf("tick %d missing", i)
		}
	}
	f.Step(5 * time.Second) // a slow reader gets one tick, not five
	<-tk.C()
	select {
	case <-tk.C():
		t.Fatal("missed ticks were queued")
	default:
	}
	tk.Stop()
	if f.HasWaiters() {
		t.Fatal("a stopped ticker still waits")
	}
	f.Step(time.Second)
	select {
	case <-tk.C():
		t.Fatal("a stopped ticker ticked")
	default:
	}
}

func TestFake_StoppedTimerNeverFires(t *testing.T) {
	f := New(time.Unix(0, 0))
	tm := f.NewTimer(time.Second)
	if !tm.Stop() {
		t.Fatal("Stop of a pending timer reported it fired")
	}
	f.Step(time.Hour)
	select {
	case <-tm.C():
		t.Fatal("a stopped timer fired")
	default:
	}
}
