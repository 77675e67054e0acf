package server

import (
	"context"
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
// the election, the engine while it leads, the commands it carries out
// then, and the change feed that keeps its flags (and so OFREP) current.
type haPlane struct {
	store    *postgres.Store
	engine   *rollout.Engine
	elector  *ha.Elector
	commands *ha.Commands
	log      *slog.Logger
	// notifier starts the webhook notifier; it runs while leading.
	notifier func(ctx context.Context) (stop func(), err error)
	// retire watches the retirements and counts routes while leading.
	retire *Retirements
	// flags drives the guarded flag rollouts while leading.
	flags *flags.Service

	cancel context.CancelFunc
	done   chan struct{}
}

func newHAPlane(opts Options, apiAddr string, pg *postgres.Store, engine *rollout.Engine, log *slog.Logger) *haPlane {
	id := opts.ServerID
	if id == "" {
		host, _ := os.Hostname()
		_, port, _ := net.SplitHostPort(apiAddr)
		id = host + ":" + port
	}
	h := &haPlane{store: pg, engine: engine, log: log, done: make(chan struct{})}
	h.commands = &ha.Commands{Store: pg, Server: id, Logger: log.With("part", "commands")}
	h.elector = &ha.Elector{Store: pg, ID: id, TTL: opts.LeaseTTL, Logger: log, Lead: h.lead}
	return h
}

// lead runs while this server leads: the engine resumes every active
// rollout from its last committed step, and the commands any server took
// are carried out, until leadership ends.
func (h *haPlane) lead(ctx context.Context, term int64) {
	for {
		err := h.engine.Start(ctx)
		if err == nil {
			break
		}
		h.log.Error("start the engine as leader", "term", term, "error", err)
		h.engine.Close()
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
	stopNotifier := func() {}
	if h.notifier != nil {
		stop, err := h.notifier(ctx)
		if err != nil {
			h.log.Error("start notifications as leader", "term", term, "error", err)
		} else {
			stopNotifier = stop
		}
	}
	if h.retire != nil {
		if err := h.retire.start(ctx); err != nil {
			h.log.Error("start retirements as leader", "term", term, "error", err)
		}
	}
	h.commands.Execute(ctx, h.engine)
	if h.retire != nil {
		h.retire.close()
	}
	stopNotifier()
	h.engine.Close()
	h.log.Info("stopped driving rollouts", "term", term)
}

// start runs the election and the change feed until stop.
func (h *haPlane) start(ctx context.Context, fl *flags.Service) {
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	h.cancel = cancel
	h.flags = fl
	reload := make(chan struct{}, 1)
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
				}
			}, postgres.CommandsChannel, postgres.ChangesChannel)
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

// haStatus adds the leadership to the status the API answers.
type haStatus struct {
	api.Service
	e *ha.Elector
}

func (s haStatus) Status(ctx context.Context, app string) (rollout.AppStatus, error) {
	st, err := s.Service.Status(ctx, app)
	if err != nil {
		return st, err
	}
	es := s.e.Status()
	st.ControlPlane = &rollout.ControlPlaneStatus{Server: es.Server, Leading: es.Leading, Leader: es.Leader, Term: es.LeaderTerm}
	if es.Expires.Before(time.Now()) && !es.Leading {
		st.ControlPlane.Leader = ""
	}
	return st, nil
}
