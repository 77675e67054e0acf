package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/shipgate/shipgate/internal/rollout"
)

// This file is the CLI's output layer: everything the commands print goes
// through these functions, so that -o json prints one JSON document and
// nothing else on stdout, and text looks the same everywhere.

func (a *app) jsonOutput() bool { return a.output == outputJSON }

// printJSON prints v as one indented JSON document on stdout.
func (a *app) printJSON(v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("encode output: %w", err)
	}
	b = append(b, '\n')
	a.printedJSON = true
	_, err = a.stdout.Write(b)
	return err
}

// printJSONLine prints v as one line of JSON (a stream of events).
func (a *app) printJSONLine(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode output: %w", err)
	}
	_, err = a.stdout.Write(append(b, '\n'))
	return err
}

// render prints v as JSON with -o json, and as text prints it otherwise.
func render[T any](a *app, v T, text func(T) error) error {
	if a.jsonOutput() {
		return a.printJSON(v)
	}
	return text(v)
}

// printf prints a line of text output on stdout.
func (a *app) printf(format string, args ...any) {
	fmt.Fprintf(a.stdout, format, args...)
}

// table writes aligned columns; rows are tab-separated cells.
type table struct {
	tw *tabwriter.Writer
}

// newTable returns a table that starts with the header row, if any.
func newTable(w io.Writer, header ...string) *table {
	t := &table{tw: tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)}
	if len(header) > 0 {
		t.row(header...)
	}
	return t
}

func (t *table) row(cells ...string) {
	for i, c := range cells {
		if c == "" {
			cells[i] = "-"
		}
		// A tab or newline in a cell (a reason, say) would break the columns.
		cells[i] = strings.Map(func(r rune) rune {
			if r == '\t' || r == '\n' || r == '\r' {
				return ' '
			}
			return r
		}, cells[i])
	}
	fmt.Fprintln(t.tw, strings.Join(cells, "\t"))
}

func (t *table) flush() error { return t.tw.Flush() }

// humanDuration formats d for people: "350ms", "45s", "1m12s", "2h5m".
func humanDuration(d time.Duration) string {
	switch {
	case d <= 0:
		return "0s"
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	case d < time.Hour:
		// "1m0s" reads better as "1m".
		s := d.Round(time.Second).String()
		if strings.HasSuffix(s, "m0s") {
			s = strings.TrimSuffix(s, "0s")
		}
		return s
	}
	return strings.TrimSuffix(d.Round(time.Minute).String(), "0s")
}

// latency formats a measured latency with three significant digits at most:
// "850µs", "12.3ms", "1.23s"; "-" when nothing was measured.
func latency(d time.Duration) string {
	switch {
	case d <= 0:
		return "-"
	case d < time.Millisecond:
		return d.Round(time.Microsecond).String()
	case d < 10*time.Millisecond:
		return d.Round(10 * time.Microsecond).String()
	case d < 100*time.Millisecond:
		return d.Round(100 * time.Microsecond).String()
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	}
	return d.Round(10 * time.Millisecond).String()
}

// percent formats a fraction as a percentage: 0.0042 is "0.42%".
func percent(f float64) string { return fmt.Sprintf("%.2f%%", f*100) }

// clock formats a time in the local zone: "15:04:05" today, with the date
// before it on other days, since a bare time of another day misleads.
func clock(t, now time.Time) string {
	if t.IsZero() {
		return ""
	}
	t, now = t.Local(), now.Local()
	if y, m, d := t.Date(); y == now.Year() && m == now.Month() && d == now.Day() {
		return t.Format("15:04:05")
	}
	return t.Format("2006-01-02 15:04:05")
}

// elapsed returns how long a rollout ran: until it finished, or until
// now while it runs.
func elapsed(ro rollout.Rollout, now time.Time) time.Duration {
	if ro.CreatedAt.IsZero() {
		return 0
	}
	end := ro.FinishedAt
	if end.IsZero() {
		end = now
	}
	return end.Sub(ro.CreatedAt)
}

// stepText describes where a rollout is in its plan: "step 3/6 weight 25%",
// "step 1/6 start, weight 0%".
func stepText(ro rollout.Rollout) string {
	n := len(ro.Steps)
	if n == 0 {
		return fmt.Sprintf("weight %d%%", ro.Weight)
	}
	if ro.StepIndex >= n {
		return fmt.Sprintf("all %d steps done, weight %d%%", n, ro.Weight)
	}
	kind := ro.Steps[ro.StepIndex].Kind
	if kind == rollout.StepWeight {
		return fmt.Sprintf("step %d/%d weight %d%%", ro.StepIndex+1, n, ro.Weight)
	}
	return fmt.Sprintf("step %d/%d %s, weight %d%%", ro.StepIndex+1, n, kind, ro.Weight)
}

// analysisText describes the latest judgement of a canary:
// "canary err 0.20% p99 41ms | stable err 0.10% p99 38ms | verdict pass".
func analysisText(j *rollout.Judgement) string {
	if j == nil {
		return ""
	}
	return fmt.Sprintf("canary err %s p99 %s (%d req) | stable err %s p99 %s | verdict %s",
		percent(j.Canary.ErrorRate), latency(j.Canary.P99), j.Canary.Requests,
		percent(j.Stable.ErrorRate), latency(j.Stable.P99), j.Verdict)
}

// plural returns "1 way" or "2 ways": n and the word that fits it.
func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

// orDash returns s, or "-" when it is empty.
func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
