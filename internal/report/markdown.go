package report

import (
	"fmt"
	"io"
	"strings"

	"github.com/shipgate/shipgate/internal/dora"
)

// KeyRow is one key of a summary as words: what the tables of every
// format show.
type KeyRow struct {
	Key, Value, Band, Trend string
}

// Rows returns the five keys of s as words, in the order DORA lists them.
func Rows(s dora.Summary) []KeyRow {
	k, p := s.Keys, s.Previous
	return []KeyRow{
		{"deployment frequency", k.Frequency.String(), band(k.Frequency.Band), trend(k.Frequency.Trend, fmt.Sprintf("%.1f/week", p.Frequency.PerWeek))},
		{"change lead time", k.LeadTime.String() + excluded(k.LeadTime), band(k.LeadTime.Band), trend(k.LeadTime.Trend, medianOf(p.LeadTime))},
		{"change fail rate", k.ChangeFailRate.String(), band(k.ChangeFailRate.Band), trend(k.ChangeFailRate.Trend, p.ChangeFailRate.Percent())},
		{"failed deployment recovery time", k.Recovery.String(), band(k.Recovery.Band), trend(k.Recovery.Trend, medianOf(p.Recovery))},
		{"deployment rework rate", k.Rework.String(), band(k.Rework.Band), trend(k.Rework.Trend, p.Rework.Percent())},
	}
}

func excluded(d dora.Durations) string {
	if d.Excluded == 0 {
		return ""
	}
	return fmt.Sprintf("; %d excluded (lead time <= 0)", d.Excluded)
}

func medianOf(d dora.Durations) string {
	if d.Median == nil {
		return "no samples"
	}
	return "median " + d.Median.String()
}

func band(b dora.Band) string {
	switch {
	case b.Level != "":
		return b.Level + ": " + b.Label
	case b.Label != "":
		return b.Label
	default:
		return "-"
	}
}

func trend(t dora.Trend, prev string) string {
	if t == dora.NoTrend {
		return "-"
	}
	return string(t) + " (was " + prev + ")"
}

// mdEscape keeps a cell from breaking a Markdown table.
func mdEscape(s string) string {
	return strings.NewReplacer("|", `\|`, "\n", " ").Replace(s)
}

// WriteDORAMarkdown writes the view as Markdown: one table per app and
// environment.
func WriteDORAMarkdown(w io.Writer, v View) error {
	var b strings.Builder
	fmt.Fprintf(&b, "# DORA metrics, %s\n\n", periodName(v))
	fmt.Fprintf(&b, "Weeks start %s 00:00 %s. Bands: %s.\n", v.WeekStart, v.Timezone, dora.BandSource)
	if len(v.Summaries) == 0 {
		b.WriteString("\nNo rollouts in this period or the four weeks before.\n")
	}
	for _, s := range v.Summaries {
		fmt.Fprintf(&b, "\n## %s / %s\n\n", s.App, s.Env)
		b.WriteString("| key | value | band (2023) | trend vs previous 4 weeks |\n|---|---|---|---|\n")
		for _, r := range Rows(s) {
			fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", r.Key, mdEscape(r.Value), mdEscape(r.Band), mdEscape(r.Trend))
		}
		if n := s.Keys.NotReachedUsers; n > 0 {
			fmt.Fprintf(&b, "\n%d rollout(s) stopped by a gate before any user saw them (not counted as deployments).\n", n)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// periodName says which period a view covers.
func periodName(v View) string {
	const day = "2006-01-02"
	if v.Week != "" {
		return fmt.Sprintf("week %s (%s to %s)", v.Week, v.From.Format(day), v.To.AddDate(0, 0, -1).Format(day))
	}
	return fmt.Sprintf("%s to %s", v.From.Format(day+" 15:04"), v.To.Format(day+" 15:04"))
}
