// Package clocktest has a Clock for tests: time stands still until the
// test steps it, and the timers and tickers due by then fire.
package clocktest

import (
	"sync"
	"time"

	"github.com/shipgate/shipgate/internal/clock"
)

// Fake is a clock.Clock whose time moves only when Step or SetTime is
// called. It is safe for concurrent use.
type Fake struct {
	mu      sync.Mutex
	now     time.Time
	waiters []*waiter
}

var _ clock.Clock = (*Fake)(nil)

// waiter is a timer (period 0) or a ticker.
type waiter struct {
	at     time.Time
	period time.Duration
	c      chan time.Time
	f      *Fake
}

// New returns a Fake clock showing t.
func New(t time.Time) *Fake { return &Fake{now: t} }

// Now returns the fake time.
func (f *Fake) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

// NewTimer returns a timer that fires once the clock reaches now+d.
func (f *Fake) NewTimer(d time.Duration) clock.Timer {
	f.mu.Lock()
	defer f.mu.Unlock()
	w := &waiter{at: f.now.Add(d), c: make(chan time.Time, 1), f: f}
	if d <= 0 {
		w.c <- f.now
		return w
	}
	f.waiters = append(f.waiters, w)
	return w
}

// NewTicker returns a ticker that fires every d of fake time.
func (f *Fake) NewTicker(d time.Duration) clock.Ticker {
	if d <= 0 {
		panic("clocktest: non-positive ticker period")
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	w := &waiter{at: f.now.Add(d), period: d, c: make(chan time.Time, 1), f: f}
	f.waiters = append(f.waiters, w)
	return ticker{w}
}

// ticker is a waiter with a period, stopped without a result.
type ticker struct{ w *waiter }

func (t ticker) C() <-chan time.Time { return t.w.c }
func (t ticker) Stop()               { t.w.Stop() }

// Step moves the clock d forward and fires what is due.
func (f *Fake) Step(d time.Duration) {
	f.mu.Lock()
	t := f.now.Add(d)
	f.mu.Unlock()
	f.SetTime(t)
}

// SetTime moves the clock to t and fires what is due, in time order.
func (f *Fake) SetTime(t time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.now = t
	kept := f.waiters[:0]
	for _, w := range f.waiters {
		if !w.at.After(t) {
			select {
			case w.c <- w.at:
			default: // a slow reader misses ticks, as with time.Ticker
			}
			if w.period == 0 {
				continue
			}
			for !w.at.After(t) {
				w.at = w.at.Add(w.period)
			}
		}
		kept = append(kept, w)
	}
	clear(f.waiters[len(kept):])
	f.waiters = kept
}

// HasWaiters reports whether a timer or ticker is pending: someone waits
// for time to move.
func (f *Fake) HasWaiters() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.waiters) > 0
}

// Waiters returns the number of pending timers and tickers.
func (f *Fake) Waiters() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.waiters)
}

func (w *waiter) C() <-chan time.Time { return w.c }

// Stop removes the timer or ticker; for a timer it reports whether it was
// still pending.
func (w *waiter) Stop() bool {
	w.f.mu.Lock()
	defer w.f.mu.Unlock()
	for i, x := range w.f.waiters {
		if x == w {
			w.f.waiters = append(w.f.waiters[:i], w.f.waiters[i+1:]...)
			return true
		}
	}
	return false
}
