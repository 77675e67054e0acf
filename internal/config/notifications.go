package config

import (
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Notifications says where Shipgate tells people what happened: webhooks
// and the weekly report's delivery.
type Notifications struct {
	// Webhooks are the receivers of notifications, each with its own format
	// and triggers.
	Webhooks []Webhook `yaml:"webhooks,omitempty" json:"webhooks,omitempty"`
	// Report, when set, sends the Monday report to some webhooks on a
	// schedule.
	Report *ReportSchedule `yaml:"report,omitempty" json:"report,omitempty"`
}

// Webhook is one receiver of notifications.
type Webhook struct {
	// Name identifies the webhook in report.to and in shipgate
	// notifications: lowercase letters, digits and dashes. Required.
	Name string `yaml:"name" json:"name"`
	// URL is where notifications are POSTed: http or https. Required.
	URL string `yaml:"url" json:"url"`
	// Format is the payload: json (Shipgate's documented schema, the
	// default), cdevents (CDEvents 0.4 events), slack (an incoming
	// webhook message with attachments) or teams (a Microsoft Teams
	// Workflows message with an Adaptive Card).
	Format string `yaml:"format,omitempty" json:"format,omitempty"`
	// SecretEnv is the name of an environment variable of the server that
	// holds the secret signing each payload (HMAC-SHA256 in the
	// X-Shipgate-Signature header). Without it payloads are not signed.
	SecretEnv string `yaml:"secret_env,omitempty" json:"secret_env,omitempty"`
	// Events are the triggers sent to this webhook: rollout.started,
	// rollout.step, rollout.waiting_for_approval, rollout.succeeded,
	// rollout.rolled_back, gate.bypassed, flag.guard_disabled,
	// incident.opened, incident.resolved, report.weekly, rollout.paused,
	// retire.reenabled. Default: all but rollout.step.
	Events []string `yaml:"events,omitempty" json:"events,omitempty"`
	// Timeout bounds one delivery attempt. Default 10s.
	Timeout Duration `yaml:"timeout,omitempty" json:"timeout,omitempty"`
}

// ReportSchedule sends the weekly report on a schedule.
type ReportSchedule struct {
	// Every is the day and time of delivery in the DORA time zone, like
	// "Mon 09:00". Required.
	Every string `yaml:"every" json:"every"`
	// To are the names of the webhooks that receive it. Required.
	To []string `yaml:"to" json:"to"`
	// Env is the environment the report covers. Default production.
	Env string `yaml:"env,omitempty" json:"env,omitempty"`
}

// DORA sets the calendar of the DORA numbers and the weekly report.
type DORA struct {
	// Timezone is the IANA time zone of week and day boundaries, like
	// "Europe/Paris". Default: the server's local zone.
	Timezone string `yaml:"timezone,omitempty" json:"timezone,omitempty"`
	// WeekStart is the first day of the week, like "monday". Default monday.
	WeekStart string `yaml:"week_start,omitempty" json:"week_start,omitempty"`
}

// NotificationEvents are the triggers a webhook may ask for.
var NotificationEvents = []string{
	"rollout.started", "rollout.step", "rollout.waiting_for_approval", "rollout.succeeded", "rollout.rolled_back",
	"gate.bypassed", "flag.guard_disabled", "incident.opened", "incident.resolved", "report.weekly",
	"rollout.paused", "retire.reenabled",
}

// webhookFormats are the payload formats.
var webhookFormats = []string{"json", "cdevents", "slack", "teams"}

var (
	webhookName   = regexp.MustCompile(`^[a-z][a-z0-9-]{0,62}$`)
	scheduleEvery = regexp.MustCompile(`^(Mon|Tue|Wed|Thu|Fri|Sat|Sun) ([01][0-9]|2[0-3]):([0-5][0-9])$`)
)

// ParseEvery reads a schedule like "Mon 09:00" into a weekday and the
// time of day.
func ParseEvery(s string) (time.Weekday, time.Duration, error) {
	m := scheduleEvery.FindStringSubmatch(s)
	if m == nil {
		return 0, 0, fmt.Errorf(`want a day and a time like "Mon 09:00", got %q`, s)
	}
	day := time.Weekday(slices.Index([]string{"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"}, m[1]))
	var h, mi int
	_, _ = fmt.Sscanf(m[2]+" "+m[3], "%d %d", &h, &mi)
	return day, time.Duration(h)*time.Hour + time.Duration(mi)*time.Minute, nil
}

func (d *decoder) validateNotifications(n *Notifications) {
	names := map[string]int{}
	for i, w := range n.Webhooks {
		path := fmt.Sprintf("notifications.webhooks[%d]", i)
		switch j, dup := names[w.Name]; {
		case w.Name == "":
			d.problemf(path+".name", `required: a name for the webhook, like "team-slack"`)
		case !webhookName.MatchString(w.Name):
			d.problemf(path+".name", "must be lowercase letters, digits and dashes, starting with a letter, got %q", w.Name)
		case dup:
			d.problemf(path+".name", "%q is already the name of webhooks[%d]", w.Name, j)
		default:
			names[w.Name] = i
		}
		if u, err := url.Parse(w.URL); w.URL == "" || err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			d.problemf(path+".url", "must be an http or https URL, got %q", w.URL)
		}
		if w.Format != "" && !slices.Contains(webhookFormats, w.Format) {
			d.problemf(path+".format", "%s", unknownName("format", w.Format, webhookFormats))
		}
		if w.SecretEnv != "" && !varName.MatchString(w.SecretEnv) {
			d.problemf(path+".secret_env", "must be the name of an environment variable (%s), got %q", varNameRule, w.SecretEnv)
		}
		for k, ev := range w.Events {
			if !slices.Contains(NotificationEvents, ev) {
				d.problemf(fmt.Sprintf("%s.events[%d]", path, k), "%s", unknownName("event", ev, NotificationEvents))
			}
		}
		if w.Timeout < 0 {
			d.problemf(path+".timeout", "must be positive")
		}
	}
	if r := n.Report; r != nil {
		if _, _, err := ParseEvery(r.Every); err != nil {
			d.problemf("notifications.report.every", "%s", err.Error())
		}
		if len(r.To) == 0 {
			d.problemf("notifications.report.to", "required: the names of the webhooks that receive the report")
		}
		for i, name := range r.To {
			if _, ok := names[name]; !ok {
				d.problemf(fmt.Sprintf("notifications.report.to[%d]", i), "no webhook is named %q", name)
			}
		}
	}
}

var weekdays = []string{"sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday"}

func (d *decoder) validateDORA(c *DORA) {
	if c.Timezone != "" {
		if _, err := time.LoadLocation(c.Timezone); err != nil {
			d.problemf("dora.timezone", "%q is not a known time zone; use an IANA name like Europe/Paris", c.Timezone)
		}
	}
	if c.WeekStart != "" && !slices.Contains(weekdays, strings.ToLower(c.WeekStart)) {
		d.problemf("dora.week_start", "%s", unknownName("day", c.WeekStart, weekdays))
	}
}
