// Package ha lets several Shipgate servers share one PostgreSQL store:
// one leads (it holds the store's leader lease, with a term) and drives
// rollouts; the others serve the API, pass commands that change a rollout
// to the leader through the store, and take over when the lease expires.
//
// The Elector campaigns for the lease and renews it; while it leads it
// runs the server's leader work (the rollout engine, the command
// executor) under a context that ends the moment leadership is lost: a
// failed renewal, a lease about to expire unrenewed, or a write the
// store's fence refused (a newer term leads).
package ha

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/shipgate/shipgate/internal/postgres"
)

// LeaseStore is the store's leader lease (internal/postgres).
type LeaseStore interface {
	Campaign(ctx context.Context, holder string, ttl time.Duration) (postgres.Lease, error)
	Renew(ctx context.Context, ttl time.Duration) (postgres.Lease, error)
	Resign(ctx context.Context) error
	Leader(ctx context.Context) (postgres.Lease, error)
	OnStaleTerm(fn func(error))
	EndTerm()
}

// Defaults of an Elector.
const (
	// DefaultTTL is how long a lease lasts unrenewed: how long a dead
	// leader's rollouts wait, at most, before a follower takes them.
	DefaultTTL = 5 * time.Second
)

// Elector campaigns for the leader lease on behalf of one server.
type Elector struct {
	// Store holds the lease.
	Store LeaseStore
	// ID names this server in the lease (shipgate_leader{server=ID}).
	ID string
	// TTL is the lease's length; default DefaultTTL. The leader renews it
	// every TTL/3 and a follower campaigns every TTL/5.
	TTL time.Duration
	// Lead runs while this server leads, under a context that ends when
	// it stops leading; it must return soon after. The Elector steps down
	// only once Lead returned, so that two terms never act at once from
	// one server.
	Lead func(ctx context.Context, term int64)
	// Logger receives elections and step-downs.
	Logger *slog.Logger

	mu     sync.Mutex
	status Status
	stale  chan error
	gauge  prometheus.Gauge
}

// Status is what an Elector knows of the lease.
type Status struct {
	// Server is this server's ID; Leading whether it leads, in Term.
	Server  string `json:"server"`
	Leading bool   `json:"leading"`
	Term    int64  `json:"term,omitempty"`
	// Leader is the server holding the lease as last read ("" when none),
	// LeaderTerm its term, Expires when its lease ends unrenewed.
	Leader     string    `json:"leader"`
	LeaderTerm int64     `json:"leader_term"`
	Expires    time.Time `json:"expires"`
	// Since is when this server last became leader or follower.
	Since time.Time `json:"since"`
}

// Status returns the Elector's view of the lease.
func (e *Elector) Status() Status {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.status
}

// Collector returns the gauge shipgate_leader{server=ID}: 1 while this
// server leads, 0 otherwise. Call it before Run.
func (e *Elector) Collector() prometheus.Collector {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.gauge == nil {
		e.gauge = prometheus.NewGauge(prometheus.GaugeOpts{
			Name:        "shipgate_leader",
			Help:        "1 while this server leads (holds the store's leader lease and drives rollouts), 0 while it follows.",
			ConstLabels: prometheus.Labels{"server": e.ID},
		})
	}
	return e.gauge
}

func (e *Elector) ttl() time.Duration {
	if e.TTL <= 0 {
		return DefaultTTL
	}
	return e.TTL
}

func (e *Elector) log() *slog.Logger {
	if e.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return e.Logger
}

// Run campaigns, leads and follows until ctx ends; then, if it leads, it
// stops leading and resigns the lease so that another server takes over
// at once.
func (e *Elector) Run(ctx context.Context) {
	e.Collector()
	e.mu.Lock()
	e.stale = make(chan error, 1)
	e.status = Status{Server: e.ID, Since: time.Now()}
	e.mu.Unlock()
	e.Store.OnStaleTerm(func(err error) {
		select {
		case e.stale <- err:
		default:
		}
	})
	ttl := e.ttl()
	for ctx.Err() == nil {
		l, err := e.Store.Campaign(ctx, e.ID, ttl)
		if err != nil {
			e.observe(ctx, l, err)
			sleep(ctx, ttl/5)
			continue
		}
		e.lead(ctx, l)
	}
}

// observe records the lease a lost campaign saw.
func (e *Elector) observe(ctx context.Context, l postgres.Lease, err error) {
	if !errors.Is(err, postgres.ErrNotLeader) {
		if ctx.Err() == nil {
			e.log().Warn("campaign for the leader lease failed", "error", err)
		}
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if l.Holder != e.status.Leader || l.Term != e.status.LeaderTerm {
		e.log().Info("following", "leader", l.Holder, "term", l.Term)
	}
	e.status.Leader, e.status.LeaderTerm, e.status.Expires = l.Holder, l.Term, l.Expires
}

// lead runs Lead for the term of l until leadership is lost or ctx ends.
func (e *Elector) lead(ctx context.Context, l postgres.Lease) {
	ttl := e.ttl()
	// The lease is counted from before the campaign: by our clock it
	// cannot end before renewedAt+ttl.
	renewedAt := time.Now().Add(-ttl / 10)
	select { // a refusal of an earlier term is not this one's
	case <-e.stale:
	default:
	}
	e.setLeading(true, l)
	e.log().Info("leading", "term", l.Term, "expires", l.Expires)
	leadCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if e.Lead != nil {
			e.Lead(leadCtx, l.Term)
		}
	}()
	renew := time.NewTicker(ttl / 3)
	defer renew.Stop()
	why := ""
loop:
	for {
		// Step down with a margin before the lease can end by another
		// server's reckoning, if it could not be renewed by then.
		margin := time.Until(renewedAt.Add(ttl * 4 / 5))
		select {
		case <-ctx.Done():
			why = "server stopping"
			break loop
		case err := <-e.stale:
			why = "a write was refused: " + err.Error()
			break loop
		case <-time.After(margin):
			why = "the lease could not be renewed in time"
			break loop
		case <-renew.C:
			start := time.Now()
			rctx, cancel := context.WithTimeout(ctx, ttl/3)
			nl, err := e.Store.Renew(rctx, ttl)
			cancel()
			switch {
			case errors.Is(err, postgres.ErrNotLeader):
				why = "another server leads: " + err.Error()
				break loop
			case err != nil:
				e.log().Warn("renew the leader lease", "term", l.Term, "error", err)
			default:
				renewedAt = start
				e.mu.Lock()
				e.status.Expires = nl.Expires
				e.mu.Unlock()
			}
		}
	}
	stop()
	<-done
	e.log().Warn("stepped down", "term", l.Term, "why", why)
	// Hand over at once if the lease is still ours (the SQL checks the
	// term), then write unfenced: the leader work has stopped.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	if err := e.Store.Resign(rctx); err != nil && ctx.Err() != nil {
		e.log().Warn("resign the leader lease", "error", err)
	}
	cancel()
	e.Store.EndTerm()
	e.setLeading(false, l)
}

func (e *Elector) setLeading(leading bool, l postgres.Lease) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.status.Leading = leading
	e.status.Term = 0
	if leading {
		e.status.Term = l.Term
		e.status.Leader, e.status.LeaderTerm, e.status.Expires = l.Holder, l.Term, l.Expires
	}
	e.status.Since = time.Now()
	if leading {
		e.gauge.Set(1)
	} else {
		e.gauge.Set(0)
	}
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
