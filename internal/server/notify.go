package server

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/shipgate/shipgate/internal/audit"
	"github.com/shipgate/shipgate/internal/config"
	"github.com/shipgate/shipgate/internal/dora"
	"github.com/shipgate/shipgate/internal/notify"
	"github.com/shipgate/shipgate/internal/report"
	"github.com/shipgate/shipgate/internal/rollout"
)

// calendarOf returns the DORA calendar of the config: its time zone and
// week start, by default the server's zone and Monday. The config was
// validated, so the names are known.
func calendarOf(cfg *config.Config) dora.Calendar {
	cal := dora.DefaultCalendar(time.Local)
	if cfg.DORA == nil {
		return cal
	}
	if loc, err := time.LoadLocation(cfg.DORA.Timezone); cfg.DORA.Timezone != "" && err == nil {
		cal.Location = loc
	}
	if d, err := report.ParseWeekday(cfg.DORA.WeekStart); cfg.DORA.WeekStart != "" && err == nil {
		cal.WeekStart = d
	}
	return cal
}

// startNotifier starts the webhook notifier of the config, if it has
// webhooks, and returns the function that stops it. It reads the audit log
// on its own goroutine: the engine never waits for it.
func startNotifier(ctx context.Context, cfg *config.Config, store Store, reports *report.Service, log *slog.Logger) (stop func(), err error) {
	n := cfg.Notifications
	if err := auditNotifyConfig(ctx, n, store); err != nil {
		return nil, err
	}
	if n == nil || len(n.Webhooks) == 0 {
		return func() {}, nil
	}
	hooks := make([]notify.Webhook, 0, len(n.Webhooks))
	for _, w := range n.Webhooks {
		h := notify.Webhook{Name: w.Name, URL: w.URL, Format: w.Format, Events: w.Events, Timeout: time.Duration(w.Timeout)}
		if w.SecretEnv != "" {
			secret := os.Getenv(w.SecretEnv)
			if secret == "" {
				return nil, fmt.Errorf("notifications.webhooks %s: secret_env %s is not set in the server's environment", w.Name, w.SecretEnv)
			}
			h.Secret = []byte(secret)
		}
		hooks = append(hooks, h)
	}
	opts := notify.Options{Store: store, Webhooks: hooks, Logger: log}
	if r := n.Report; r != nil {
		day, at, err := config.ParseEvery(r.Every)
		if err != nil {
			return nil, fmt.Errorf("notifications.report.every: %w", err)
		}
		env := r.Env
		opts.Schedule = &notify.Schedule{Day: day, At: at, Location: reports.Calendar.Location, To: r.To,
			Report: func(ctx context.Context) (notify.Event, error) {
				rep, err := reports.Report(ctx, report.WeekQuery{Week: "last", Env: env})
				if err != nil {
					return notify.Event{}, err
				}
				return report.Notification(rep), nil
			}}
	}
	nt, err := notify.New(opts)
	if err != nil {
		return nil, err
	}
	// The first read happens now, before the API takes requests, so that
	// when notifications are first set up the cursor is placed before
	// anything new can happen.
	if err := nt.Collect(ctx); err != nil {
		return nil, fmt.Errorf("notifications: %w", err)
	}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	go func() { defer close(done); _ = nt.Run(runCtx) }()
	names := make([]string, len(hooks))
	for i, h := range hooks {
		names[i] = h.Name
	}
	log.Info("notifications on", "webhooks", strings.Join(names, ","))
	return func() { cancel(); <-done }, nil
}

// auditNotifyConfig appends a notify.config event when the webhooks or the
// report schedule differ from those of the last recorded start: who gets
// told what is part of the record. URLs are reduced to their host, since
// chat webhook URLs are secrets.
func auditNotifyConfig(ctx context.Context, n *config.Notifications, store Store) error {
	type hook struct {
		Name, Host, Format string
		Events             []string
		Signed             bool
	}
	var (
		hooks []hook
		names []string
		sched string
	)
	if n != nil {
		for _, w := range n.Webhooks {
			host := w.URL
			if u, err := url.Parse(w.URL); err == nil {
				host = u.Scheme + "://" + u.Host
			}
			hooks = append(hooks, hook{w.Name, host, w.Format, w.Events, w.SecretEnv != ""})
			names = append(names, w.Name+" ("+cmp.Or(w.Format, "json")+", "+host+")")
		}
		if r := n.Report; r != nil {
			sched = r.Every + " to " + strings.Join(r.To, ", ")
		}
	}
	b, _ := json.Marshal(struct {
		Hooks []hook
		Sched string
	}{hooks, sched})
	sum := sha256.Sum256(b)
	digest := hex.EncodeToString(sum[:])
	last, err := store.ListAudit(ctx, audit.Filter{Action: audit.ActionNotifyConfig, Limit: 1})
	if err != nil {
		return fmt.Errorf("read last notification config: %w", err)
	}
	if len(last) == 0 && len(hooks) == 0 || len(last) > 0 && last[0].Data["digest"] == digest {
		return nil
	}
	reason := "notifications off"
	if len(hooks) > 0 {
		reason = "webhooks: " + strings.Join(names, "; ")
		if sched != "" {
			reason += "; weekly report " + sched
		}
	}
	return store.Commit(ctx, rollout.Change{Audit: []audit.Event{{Actor: "shipgate", Action: audit.ActionNotifyConfig,
		Subject: "notifications", Reason: reason, Outcome: "ok", Data: map[string]string{"digest": digest}}}})
}
