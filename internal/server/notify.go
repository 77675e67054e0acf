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
	"reflect"
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

// appHook is a webhook of an app's config; App is "" for the first app's,
// which are the server's (every app's events, the weekly report).
type appHook struct {
	App string
	config.Webhook
}

// webhooksOf returns the webhooks of every app, the first app's first.
func webhooksOf(cfgs []*config.Config) []appHook {
	var out []appHook
	for i, c := range cfgs {
		if c.Notifications == nil {
			continue
		}
		for _, w := range c.Notifications.Webhooks {
			h := appHook{Webhook: w}
			if i > 0 {
				h.App = c.App
			}
			out = append(out, h)
		}
	}
	return out
}

// startNotifier starts the webhook notifier of the apps' configs, if they
// have webhooks, and returns the function that stops it. The first app's
// webhooks get every app's events and its weekly report covers every app;
// another app's webhooks get that app's events. It reads the audit log on
// its own goroutine: the engine never waits for it.
func startNotifier(ctx context.Context, cfgs []*config.Config, store Store, reports *report.Service, log *slog.Logger) (stop func(), err error) {
	n := cfgs[0].Notifications
	all := webhooksOf(cfgs)
	if err := auditNotifyConfig(ctx, all, n, store); err != nil {
		return nil, err
	}
	if len(all) == 0 {
		return func() {}, nil
	}
	hooks := make([]notify.Webhook, 0, len(all))
	for _, w := range all {
		h := notify.Webhook{Name: w.Name, URL: w.URL, Format: w.Format, Events: w.Events, Timeout: time.Duration(w.Timeout)}
		if w.App != "" {
			h.Apps = []string{w.App}
		}
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
	var r *config.ReportSchedule
	if n != nil {
		r = n.Report
	}
	if r != nil {
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

// checkNotifySecrets reports a webhook whose signing secret is not set
// in the server's environment, as starting the notifier would.
func checkNotifySecrets(cfgs []*config.Config) error {
	for _, w := range webhooksOf(cfgs) {
		if w.SecretEnv != "" && os.Getenv(w.SecretEnv) == "" {
			return fmt.Errorf("notifications.webhooks %s: secret_env %s is not set in the server's environment: %w", w.Name, w.SecretEnv, rollout.ErrInvalid)
		}
	}
	return nil
}

// restartNotifier starts the notifier again on cfgs when their webhooks
// or weekly report differ from prev's (a reload). Its cursor is in the
// store: nothing is sent twice, and nothing that happened meanwhile is
// lost.
func (cp *ControlPlane) restartNotifier(ctx context.Context, prev, cfgs []*config.Config) error {
	report := func(cs []*config.Config) *config.ReportSchedule {
		if n := cs[0].Notifications; n != nil {
			return n.Report
		}
		return nil
	}
	if len(prev) > 0 && reflect.DeepEqual(webhooksOf(prev), webhooksOf(cfgs)) && reflect.DeepEqual(report(prev), report(cfgs)) {
		return nil
	}
	cp.notifyMu.Lock()
	defer cp.notifyMu.Unlock()
	if cp.stopNotifier == nil {
		return nil // closing
	}
	cp.stopNotifier()
	cp.stopNotifier = func() {}
	stop, err := startNotifier(ctx, cfgs, cp.Store, cp.reports, cp.log.With("component", "notify"))
	if err != nil {
		return fmt.Errorf("restart notifications: %w", err)
	}
	cp.stopNotifier = stop
	return nil
}

// auditNotifyConfig appends a notify.config event when the webhooks or the
// report schedule (n's, the first app's) differ from those of the last
// recorded start: who gets told what is part of the record. URLs are
// reduced to their host, since chat webhook URLs are secrets.
func auditNotifyConfig(ctx context.Context, all []appHook, n *config.Notifications, store Store) error {
	type hook struct {
		Name, Host, Format string
		Events             []string
		Signed             bool
		App                string `json:",omitempty"` // another app's
	}
	var (
		hooks []hook
		names []string
		sched string
	)
	for _, w := range all {
		host := w.URL
		if u, err := url.Parse(w.URL); err == nil {
			host = u.Scheme + "://" + u.Host
		}
		hooks = append(hooks, hook{w.Name, host, w.Format, w.Events, w.SecretEnv != "", w.App})
		name := w.Name + " (" + cmp.Or(w.Format, "json") + ", " + host + ")"
		if w.App != "" {
			name = w.Name + " (" + cmp.Or(w.Format, "json") + ", " + host + ", " + w.App + "'s events)"
		}
		names = append(names, name)
	}
	if n != nil && n.Report != nil {
		sched = n.Report.Every + " to " + strings.Join(n.Report.To, ", ")
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
