package notify

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/shipgate/shipgate/internal/audit"
)

// Store is the outbox and the audit log the notifier reads.
type Store interface {
	// NotifyCursor returns the last audit seq read; ok is false at first.
	NotifyCursor(ctx context.Context) (seq int64, ok bool, err error)
	LastAuditSeq(ctx context.Context) (int64, error)
	// AuditAfter returns up to limit audit events after seq, oldest first.
	AuditAfter(ctx context.Context, seq int64, limit int) ([]audit.Event, error)
	// ListAudit returns audit events matching f, newest first.
	ListAudit(ctx context.Context, f audit.Filter) ([]audit.Event, error)
	// EnqueueNotifications queues ds (once per event id and webhook) and,
	// when cursor >= 0, moves the cursor, in one transaction.
	EnqueueNotifications(ctx context.Context, cursor int64, ds []Delivery) (int, error)
	DueNotifications(ctx context.Context, webhook string, now time.Time, limit int) ([]Delivery, error)
	UpdateNotification(ctx context.Context, d Delivery) error
}

// Webhook is one receiver.
type Webhook struct {
	Name   string
	URL    string
	Format string
	// Secret signs every payload; nil sends them unsigned.
	Secret []byte
	// Events are the triggers it gets; nil means all but rollout.step.
	Events []string
	// Apps, when set, are the apps whose events it gets (a webhook
	// declared by one app of several); nil means every app's events and
	// the server's own (flags, retirements).
	Apps []string
	// Timeout bounds one attempt; 0 means 10s.
	Timeout time.Duration
}

func (w Webhook) wants(ev Event) bool {
	if w.Apps != nil && !slices.Contains(w.Apps, ev.App) {
		return false
	}
	if w.Events == nil {
		return ev.Type != defaultExcludedTriggers
	}
	return slices.Contains(w.Events, ev.Type)
}

// Schedule sends the weekly report every week at Day, At after midnight,
// in Location.
type Schedule struct {
	Day      time.Weekday
	At       time.Duration
	Location *time.Location
	// To are the names of the webhooks that receive it.
	To []string
	// Report builds the notification of the last full week.
	Report func(ctx context.Context) (Event, error)
}

// Options configure a Notifier. Zero durations take the defaults.
type Options struct {
	Store    Store
	Webhooks []Webhook
	Schedule *Schedule
	// Client sends the requests; nil means a client without redirects.
	Client *http.Client
	Logger *slog.Logger
	Now    func() time.Time
	// Poll is how often the audit log and the outbox are read (250ms).
	Poll time.Duration
	// MinBackoff and MaxBackoff bound the wait between attempts, which
	// doubles after each failure (1s and 1m).
	MinBackoff, MaxBackoff time.Duration
	// MaxAge is how long a delivery is retried before it is marked
	// failed (24h).
	MaxAge time.Duration
}

// Notifier queues notifications from the audit log and delivers them.
type Notifier struct {
	opts      Options
	log       *slog.Logger
	byName    map[string]Webhook
	lastSched time.Time
}

// New returns a notifier; Run starts it.
func New(opts Options) (*Notifier, error) {
	if opts.Store == nil {
		return nil, errors.New("notify: no store")
	}
	if opts.Client == nil {
		opts.Client = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	opts.Poll = cmpOr(opts.Poll, 250*time.Millisecond)
	opts.MinBackoff = cmpOr(opts.MinBackoff, time.Second)
	opts.MaxBackoff = cmpOr(opts.MaxBackoff, time.Minute)
	opts.MaxAge = cmpOr(opts.MaxAge, 24*time.Hour)
	n := &Notifier{opts: opts, log: opts.Logger, byName: map[string]Webhook{}}
	for _, w := range opts.Webhooks {
		w.Timeout = cmpOr(w.Timeout, 10*time.Second)
		n.byName[w.Name] = w
	}
	if s := opts.Schedule; s != nil {
		for _, name := range s.To {
			if _, ok := n.byName[name]; !ok {
				return nil, fmt.Errorf("notify: report schedule: no webhook is named %q", name)
			}
		}
	}
	return n, nil
}

func cmpOr(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

// Run collects and delivers until ctx ends: one goroutine reads the audit
// log (and the report schedule), one per webhook delivers, so a receiver
// that hangs holds up only its own deliveries.
func (n *Notifier) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	for _, w := range n.byName {
		wg.Go(func() { n.loop(ctx, func() error { return n.deliver(ctx, w) }) })
	}
	n.loop(ctx, func() error {
		if err := n.Collect(ctx); err != nil {
			return err
		}
		return n.ScheduleReport(ctx)
	})
	wg.Wait()
	return nil
}

func (n *Notifier) loop(ctx context.Context, step func() error) {
	t := time.NewTicker(n.opts.Poll)
	defer t.Stop()
	for {
		if err := step(); err != nil && ctx.Err() == nil {
			n.log.Error("notifications", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// collectBatch is how many audit events one Collect reads.
const collectBatch = 500

// Collect queues the notifications of the audit events written since the
// last call. At its very first run it starts at the end of the log: what
// happened before notifications were set up is not sent.
func (n *Notifier) Collect(ctx context.Context) error {
	cursor, ok, err := n.opts.Store.NotifyCursor(ctx)
	if err != nil {
		return err
	}
	if !ok {
		last, err := n.opts.Store.LastAuditSeq(ctx)
		if err != nil {
			return err
		}
		_, err = n.opts.Store.EnqueueNotifications(ctx, last, nil)
		return err
	}
	for {
		events, err := n.opts.Store.AuditAfter(ctx, cursor, collectBatch)
		if err != nil || len(events) == 0 {
			return err
		}
		var ds []Delivery
		for _, e := range events {
			ev, ok := FromAudit(e)
			if !ok {
				continue
			}
			if ev.Type == RolloutRolledBack {
				n.addEvidence(ctx, &ev)
			}
			more, err := n.deliveries(ev, nil)
			if err != nil {
				return err
			}
			ds = append(ds, more...)
		}
		cursor = events[len(events)-1].Seq
		if _, err := n.opts.Store.EnqueueNotifications(ctx, cursor, ds); err != nil {
			return err
		}
		if len(events) < collectBatch {
			return nil
		}
	}
}

// addEvidence adds to a rolled-back notification why it was rolled back:
// the decision's reason, actor, gate, value and threshold.
func (n *Notifier) addEvidence(ctx context.Context, ev *Event) {
	events, err := n.opts.Store.ListAudit(ctx, audit.Filter{Subject: ev.App + "/" + ev.Env + "/" + ev.Version, Limit: 50})
	if err != nil {
		n.log.Warn("notification evidence", "event", ev.ID, "err", err)
		return
	}
	for _, e := range events {
		if (e.Action == audit.ActionRollbackAuto || e.Action == audit.ActionRollbackManual) && e.Data["rollout"] == strconv.FormatInt(ev.Rollout, 10) {
			data := maps.Clone(ev.Data)
			if data == nil {
				data = map[string]string{}
			}
			maps.Copy(data, e.Data)
			data["restored"] = ev.Reason
			ev.Data, ev.Reason, ev.Actor = data, e.Reason, e.Actor
			return
		}
	}
}

// deliveries formats ev for every webhook that wants it (only those in
// to, when to is set).
func (n *Notifier) deliveries(ev Event, to []string) ([]Delivery, error) {
	var ds []Delivery
	names := make([]string, 0, len(n.byName))
	for name := range n.byName {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		w := n.byName[name]
		if to != nil && !slices.Contains(to, name) || to == nil && !w.wants(ev) {
			continue
		}
		body, err := Payload(w.Format, ev)
		if err != nil {
			return nil, err
		}
		ds = append(ds, Delivery{EventID: ev.ID, EventType: ev.Type, Webhook: name, Payload: body})
	}
	return ds, nil
}

// ScheduleReport queues the weekly report when its time came in the last
// day (so a server that was down at that time sends it when it is back).
// Its event id names the week, so it is queued once whatever restarts.
func (n *Notifier) ScheduleReport(ctx context.Context) error {
	s := n.opts.Schedule
	if s == nil || s.Report == nil {
		return nil
	}
	loc := s.Location
	if loc == nil {
		loc = time.Local
	}
	now := n.opts.Now().In(loc)
	day := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, loc)
	day = day.AddDate(0, 0, -((int(day.Weekday()) - int(s.Day) + 7) % 7))
	at := day.Add(s.At)
	if at.After(now) {
		at = at.AddDate(0, 0, -7)
	}
	if now.Sub(at) > 24*time.Hour || at.Equal(n.lastSched) {
		return nil
	}
	ev, err := s.Report(ctx)
	if err != nil {
		return fmt.Errorf("weekly report: %w", err)
	}
	ds, err := n.deliveries(ev, s.To)
	if err != nil {
		return err
	}
	if _, err := n.opts.Store.EnqueueNotifications(ctx, -1, ds); err != nil {
		return err
	}
	n.lastSched = at
	return nil
}

// deliverBatch is how many due deliveries of one webhook one pass sends.
const deliverBatch = 50

func (n *Notifier) deliver(ctx context.Context, w Webhook) error {
	due, err := n.opts.Store.DueNotifications(ctx, w.Name, n.opts.Now(), deliverBatch)
	if err != nil {
		return err
	}
	for _, d := range due {
		if ctx.Err() != nil {
			return nil
		}
		status, err := n.send(ctx, w, d)
		now := n.opts.Now()
		d.Attempts++
		d.LastStatus = status
		switch {
		case err == nil:
			d.State, d.SentAt, d.LastError = StateSent, now, ""
		case now.Sub(d.CreatedAt) >= n.opts.MaxAge:
			d.State, d.LastError = StateFailed, err.Error()
		default:
			d.LastError = err.Error()
			d.NextAt = now.Add(n.backoff(d.Attempts))
		}
		if err != nil {
			n.log.Warn("notification not delivered", "webhook", w.Name, "event", d.EventID, "attempt", d.Attempts, "err", err)
		}
		// The outcome is recorded even when ctx ended during the attempt.
		if err := n.opts.Store.UpdateNotification(context.WithoutCancel(ctx), d); err != nil {
			return err
		}
	}
	return nil
}

func (n *Notifier) backoff(attempts int) time.Duration {
	d := n.opts.MinBackoff
	for i := 1; i < attempts && d < n.opts.MaxBackoff; i++ {
		d *= 2
	}
	return min(d, n.opts.MaxBackoff)
}

// send POSTs one delivery and returns the status, if one came.
func (n *Notifier) send(ctx context.Context, w Webhook, d Delivery) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, w.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.URL, bytes.NewReader(d.Payload))
	if err != nil {
		return 0, err
	}
	now := n.opts.Now()
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "shipgate-notifier")
	req.Header.Set(HeaderEventID, d.EventID)
	req.Header.Set(HeaderEventType, d.EventType)
	req.Header.Set(HeaderTimestamp, strconv.FormatInt(now.Unix(), 10))
	if w.Secret != nil {
		req.Header.Set(HeaderSignature, Sign(w.Secret, now, d.Payload))
	}
	resp, err := n.opts.Client.Do(req)
	if err != nil {
		return 0, err
	}
	defer func() { _ = resp.Body.Close() }()
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode/100 != 2 {
		return resp.StatusCode, fmt.Errorf("%s answered %d %s", w.Name, resp.StatusCode, bytes.TrimSpace(snippet))
	}
	return resp.StatusCode, nil
}
