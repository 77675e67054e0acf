package server

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"time"

	"github.com/shipgate/shipgate/internal/api"
	"github.com/shipgate/shipgate/internal/flags"
	"github.com/shipgate/shipgate/internal/ha"
	"github.com/shipgate/shipgate/internal/postgres"
	"github.com/shipgate/shipgate/internal/rollout"
)

// haPlane is what a server sharing a PostgreSQL store with others runs:
// the election, every app's engine while it leads, the commands it
// carries out then, and the change feed that keeps its flags (and so
// OFREP) and its config current.
//
// Every app's engine runs under the one lease: the store's fence is the
// term, not the app, so each engine's commits are refused alike once
// another server leads. What leads is decided under the control plane's
// reloadMu, so that a reload swapping an app's engine starts the new one
// exactly when this server leads (leading), and a step-down closes the
// engines a reload just started.
type haPlane struct {
	store    *postgres.Store
	cp       *ControlPlane
	elector  *ha.Elector
	commands *ha.Commands
	log      *slog.Logger
	// notifier starts the webhook notifier; it runs while leading.
	notifier func(ctx context.Context) (stop func(), err error)
	// retire watches the retirements and counts routes while leading.
	retire *Retirements
	// flags drives the guarded flag rollouts while leading.
	flags *flags.Service

	// leading is set, under cp.reloadMu, while the engines run.
	leading bool

	cancel context.CancelFunc
	done   chan struct{}
}

// serverID is opts.ServerID, or hostname:API-port.
func serverID(opts Options, apiAddr string) string {
	if opts.ServerID != "" {
		return opts.ServerID
	}
	host, _ := os.Hostname()
	_, port, _ := net.SplitHostPort(apiAddr)
	return host + ":" + port
}

func newHAPlane(opts Options, apiAddr string, pg *postgres.Store, cp *ControlPlane, log *slog.Logger) *haPlane {
	id := serverID(opts, apiAddr)
	h := &haPlane{store: pg, cp: cp, log: log, done: make(chan struct{})}
	h.commands = &ha.Commands{Store: pg, Server: id, Logger: log.With("part", "commands")}
	h.elector = &ha.Elector{Store: pg, ID: id, TTL: opts.LeaseTTL, Logger: log, Lead: h.lead}
	return h
}

// lead runs while this server leads: every app's engine resumes its
// active rollouts from their last committed step, and the commands any
// server took are carried out, each by its app's engine, until
// leadership ends.
func (h *haPlane) lead(ctx context.Context, term int64) {
	for {
		err := h.startEngines(ctx)
		if err == nil {
			break
		}
		h.log.Error("start the engines as leader", "term", term, "error", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Second):
		}
	}
	h.log.Info("driving rollouts", "term", term)
	if h.flags != nil {
		// Unfinished guarded flag rollouts go on at their step; a failed
		// read is tried again at the next change the feed reports.
		if err := h.flags.Drive(ctx); err != nil {
			h.log.Error("resume guarded flag rollouts as leader", "term", term, "error", err)
		}
	}
	if h.notifier != nil {
		// Kept as the control plane's notifier while leading, so that a
		// reload that changes the webhooks restarts it (restartNotifier).
		stop, err := h.notifier(ctx)
		if err != nil {
			h.log.Error("start notifications as leader", "term", term, "error", err)
			stop = func() {}
		}
		h.cp.notifyMu.Lock()
		h.cp.stopNotifier = stop
		h.cp.notifyMu.Unlock()
	}
	if h.retire != nil {
		if err := h.retire.start(ctx); err != nil {
			h.log.Error("start retirements as leader", "term", term, "error", err)
		}
	}
	h.commands.Execute(ctx, h.cp.Apps)
	if h.retire != nil {
		h.retire.close()
	}
	h.cp.notifyMu.Lock()
	stopNotifier := h.cp.stopNotifier
	h.cp.stopNotifier = nil
	h.cp.notifyMu.Unlock()
	if stopNotifier != nil {
		stopNotifier()
	}
	h.stopEngines()
	h.log.Info("stopped driving rollouts", "term", term)
}

// startEngines starts every app's engine, or none: on an error those
// started are closed again.
func (h *haPlane) startEngines(ctx context.Context) error {
	h.cp.reloadMu.Lock()
	defer h.cp.reloadMu.Unlock()
	planes := h.cp.Apps.planes()
	for i, p := range planes {
		if err := p.engine.Start(ctx); err != nil {
			for _, started := range planes[:i+1] {
				started.engine.Close()
			}
			return fmt.Errorf("start engine of %s: %w", p.cfg.App, err)
		}
	}
	h.leading = true
	return nil
}

// stopEngines closes every app's engine: their rollouts stay where the
// store has them, for the next leader.
func (h *haPlane) stopEngines() {
	h.cp.reloadMu.Lock()
	defer h.cp.reloadMu.Unlock()
	h.leading = false
	for _, p := range h.cp.Apps.planes() {
		p.engine.Close()
	}
}

// configPoll is how often a server looks for a config revision the
// change feed did not tell it of.
const configPoll = 5 * time.Second

// start runs the election and the change feed until stop.
func (h *haPlane) start(ctx context.Context, fl *flags.Service) {
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	h.cancel = cancel
	h.flags = fl
	reload := make(chan struct{}, 1)
	follow := make(chan struct{}, 1)
	go func() {
		defer close(h.done)
		feedDone := make(chan struct{})
		go func() {
			defer close(feedDone)
			_ = h.store.Listen(runCtx, func(ch, _ string) {
				switch ch {
				case postgres.CommandsChannel:
					h.commands.Notify()
				case postgres.ChangesChannel:
					select {
					case reload <- struct{}{}:
					default:
					}
				case postgres.ConfigChannel:
					select {
					case follow <- struct{}{}:
					default:
					}
				}
			}, postgres.CommandsChannel, postgres.ChangesChannel, postgres.ConfigChannel)
		}()
		followDone := make(chan struct{})
		go func() {
			defer close(followDone)
			// The config revisions: at each one the feed tells of, and
			// every few seconds (a notification missed while the feed
			// reconnected, a revision that failed here to try again).
			tick := time.NewTicker(configPoll)
			defer tick.Stop()
			for {
				select {
				case <-runCtx.Done():
					return
				case <-follow:
				case <-tick.C:
				}
				_ = h.cp.followConfig(runCtx)
			}
		}()
		go func() {
			for {
				select {
				case <-runCtx.Done():
					return
				case <-reload:
					if err := fl.Reload(runCtx); err != nil && runCtx.Err() == nil {
						h.log.Warn("reload flags after a change", "error", err)
					}
					if h.retire != nil {
						// A retirement another server started: watched
						// here if this server leads (launch knows).
						if err := h.retire.resume(runCtx); err != nil && runCtx.Err() == nil {
							h.log.Warn("resume retirements after a change", "error", err)
						}
					}
				}
			}
		}()
		h.elector.Run(runCtx)
		<-feedDone
		<-followDone // no reload runs once stopped
	}()
}

// stop stops leading (the engine with it), resigns the lease, and ends
// the change feed.
func (h *haPlane) stop() {
	if h.cancel == nil {
		return
	}
	h.cancel()
	<-h.done
}

// haService is the API's Service on a PostgreSQL store: the command
// forwarder, with the apps' names, which its embedding would hide. The API
// asks a Service for them (AppNames) to refuse a status without an app
// when there are several; without them it answered the first app's.
type haService struct {
	api.Service
	apps *Apps
}

// AppNames returns the names of the apps managed.
func (s haService) AppNames() []string { return s.apps.AppNames() }

// haStatus adds the leadership to the status the API answers.
type haStatus struct {
	api.Service
	e   *ha.Elector
	rev *configRev
}

func (s haStatus) Status(ctx context.Context, app string) (rollout.AppStatus, error) {
	st, err := s.Service.Status(ctx, app)
	if err != nil {
		return st, err
	}
	es := s.e.Status()
	st.ControlPlane = &rollout.ControlPlaneStatus{Server: es.Server, Leading: es.Leading, Leader: es.Leader, Term: es.LeaderTerm}
	st.ControlPlane.ConfigRevision, st.ControlPlane.ConfigPending, st.ControlPlane.ConfigError = s.rev.get()
	if es.Expires.Before(time.Now()) && !es.Leading {
		st.ControlPlane.Leader = ""
	}
	return st, nil
}
