package report

import (
	"fmt"

	"github.com/shipgate/shipgate/internal/notify"
)

// Notification turns a weekly report into the report.weekly notification:
// the headline as its title, each app's keys as its data, the whole report
// for the generic JSON payload. Its id names the week and environment, so
// it is queued once per week whatever restarts.
func Notification(r Report) notify.Event {
	ev := notify.Event{
		ID:     "report-" + r.Week + "-" + r.Env,
		Type:   notify.ReportWeekly,
		Time:   r.To,
		Title:  fmt.Sprintf("Week %s in %s: deploy success rate %s", r.Week, r.Env, r.Headline),
		Env:    r.Env,
		Data:   map[string]string{},
		Report: r,
	}
	for _, a := range r.Apps {
		for _, row := range Rows(a.Summary) {
			ev.Data[a.App+" "+row.Key] = row.Value
		}
	}
	return ev
}
