package report

import (
	"embed"
	"encoding/json"
	"fmt"
	htmltemplate "html/template"
	"io"
	"math"
	"strings"
	"text/template"
	"time"

	"github.com/shipgate/shipgate/internal/dora"
)

//go:embed templates
var templates embed.FS

// Formats a report renders to.
const (
	FormatMarkdown = "md"
	FormatHTML     = "html"
	FormatJSON     = "json"
)

// Render writes r in format: md, html or json.
func Render(w io.Writer, r Report, format string) error {
	switch format {
	case FormatJSON:
		b, err := json.MarshalIndent(r, "", "  ")
		if err != nil {
			return fmt.Errorf("render report: %w", err)
		}
		_, err = w.Write(append(b, '\n'))
		return err
	case FormatMarkdown:
		return mdTemplate.ExecuteTemplate(w, "report.md.tmpl", r)
	case FormatHTML:
		return htmlTemplate.ExecuteTemplate(w, "report.html.tmpl", r)
	default:
		return fmt.Errorf("render report: unknown format %q: want md, html or json", format)
	}
}

// Series is one key's value per week of a summary, oldest first; NaN where
// the week has no value (no deploys, no samples).
type Series struct {
	Key    string
	Unit   string
	Values []float64
	Weeks  []string
}

// seriesOf returns the sparkline series of an app's weeks.
func seriesOf(s dora.Summary) []Series {
	type pick func(dora.Keys) float64
	hours := func(d *dora.Duration) float64 {
		if d == nil {
			return math.NaN()
		}
		return time.Duration(*d).Hours()
	}
	pct := func(r dora.Ratio) float64 {
		if r.Rate == nil {
			return math.NaN()
		}
		return 100 * *r.Rate
	}
	defs := []struct {
		key, unit string
		f         pick
	}{
		{"deployment frequency", "deploys", func(k dora.Keys) float64 { return float64(k.Frequency.Deploys) }},
		{"change lead time", "h median", func(k dora.Keys) float64 { return hours(k.LeadTime.Median) }},
		{"change fail rate", "%", func(k dora.Keys) float64 { return pct(k.ChangeFailRate) }},
		{"failed deployment recovery time", "h median", func(k dora.Keys) float64 { return hours(k.Recovery.Median) }},
		{"deployment rework rate", "%", func(k dora.Keys) float64 { return pct(k.Rework) }},
	}
	out := make([]Series, len(defs))
	for i, d := range defs {
		out[i] = Series{Key: d.key, Unit: d.unit}
		for _, w := range s.Weeks {
			out[i].Values = append(out[i].Values, d.f(w.Keys))
			out[i].Weeks = append(out[i].Weeks, w.Name)
		}
	}
	return out
}

// textSpark draws a series with block characters, "·" for a week without
// a value.
func textSpark(s Series) string {
	const blocks = "▁▂▃▄▅▆▇█"
	bars := []rune(blocks)
	lo, hi := bounds(s.Values)
	var b strings.Builder
	for _, v := range s.Values {
		switch {
		case math.IsNaN(v):
			b.WriteRune('·')
		case hi == lo:
			b.WriteRune(bars[len(bars)/2])
		default:
			b.WriteRune(bars[int(math.Round((v-lo)/(hi-lo)*float64(len(bars)-1)))])
		}
	}
	return b.String()
}

func bounds(vs []float64) (lo, hi float64) {
	lo, hi = math.Inf(1), math.Inf(-1)
	for _, v := range vs {
		if !math.IsNaN(v) {
			lo, hi = math.Min(lo, v), math.Max(hi, v)
		}
	}
	if math.IsInf(lo, 1) {
		return 0, 0
	}
	return lo, hi
}

// Sparkline geometry, in SVG user units.
const (
	sparkW, sparkH, sparkPad = 140.0, 32.0, 3.0
)

// svgSpark draws a series as an inline SVG: a line through the weeks that
// have a value (broken where one has none) and a dot on each, the last one
// (this period) filled.
func svgSpark(s Series) htmltemplate.HTML {
	lo, hi := bounds(s.Values)
	n := len(s.Values)
	x := func(i int) float64 {
		if n <= 1 {
			return sparkW / 2
		}
		return sparkPad + float64(i)*(sparkW-2*sparkPad)/float64(n-1)
	}
	y := func(v float64) float64 {
		if hi == lo {
			return sparkH / 2
		}
		return sparkH - sparkPad - (v-lo)/(hi-lo)*(sparkH-2*sparkPad)
	}
	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="spark" xmlns="http://www.w3.org/2000/svg" width="%g" height="%g" viewBox="0 0 %g %g" role="img" aria-label="%s per week">`,
		sparkW, sparkH, sparkW, sparkH, htmltemplate.HTMLEscapeString(s.Key))
	fmt.Fprintf(&b, `<title>%s</title>`, htmltemplate.HTMLEscapeString(sparkTitle(s)))
	var seg []string
	flush := func() {
		if len(seg) > 1 {
			fmt.Fprintf(&b, `<polyline fill="none" stroke="#2f6fdf" stroke-width="1.5" points="%s"/>`, strings.Join(seg, " "))
		}
		seg = seg[:0]
	}
	for i, v := range s.Values {
		if math.IsNaN(v) {
			flush()
			fmt.Fprintf(&b, `<line class="gap" x1="%.1f" x2="%.1f" y1="%.1f" y2="%.1f" stroke="#bbb" stroke-dasharray="2 2"/>`, x(i), x(i), sparkPad, sparkH-sparkPad)
			continue
		}
		seg = append(seg, fmt.Sprintf("%.1f,%.1f", x(i), y(v)))
	}
	flush()
	for i, v := range s.Values {
		if math.IsNaN(v) {
			continue
		}
		fill := "#fff"
		if i == n-1 {
			fill = "#2f6fdf"
		}
		fmt.Fprintf(&b, `<circle cx="%.1f" cy="%.1f" r="2.5" fill="%s" stroke="#2f6fdf"/>`, x(i), y(v), fill)
	}
	b.WriteString(`</svg>`)
	return htmltemplate.HTML(b.String()) //nolint:gosec // built from numbers and escaped text above
}

func sparkTitle(s Series) string {
	parts := make([]string, len(s.Values))
	for i, v := range s.Values {
		if math.IsNaN(v) {
			parts[i] = s.Weeks[i] + ": none"
		} else {
			parts[i] = fmt.Sprintf("%s: %.1f %s", s.Weeks[i], v, s.Unit)
		}
	}
	return s.Key + " — " + strings.Join(parts, ", ")
}

var funcs = map[string]any{
	"rows":   Rows,
	"series": seriesOf,
	"spark":  textSpark,
	"svg":    svgSpark,
	"md":     mdEscape,
	"day":    func(t time.Time) string { return t.Format(time.DateOnly) },
	"at":     func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04 UTC") },
	"lastDay": func(t time.Time) string {
		return t.AddDate(0, 0, -1).Format(time.DateOnly)
	},
	// ci is a CI duration, "-" for a week without runs.
	"ci": func(d time.Duration) string {
		if d <= 0 {
			return "-"
		}
		return d.Round(time.Second).String()
	},
	// age is how long a test had been flaky at the end of the week.
	"age": func(since, end time.Time) string {
		d := end.Sub(since)
		if d >= 48*time.Hour {
			return fmt.Sprintf("%d days", int(d.Hours()/24))
		}
		return d.Round(time.Hour).String()
	},
	"dur": func(d *dora.Duration) string {
		if d == nil {
			return "not restored"
		}
		return d.String()
	},
	"join": strings.Join,
	"bandClass": func(r KeyRow) string {
		level, _, _ := strings.Cut(r.Band, ":")
		return level
	},
	"orDash": func(s string) string {
		if s == "" {
			return "-"
		}
		return s
	},
}

var (
	mdTemplate   = template.Must(template.New("").Funcs(funcs).ParseFS(templates, "templates/report.md.tmpl"))
	htmlTemplate = htmltemplate.Must(htmltemplate.New("").Funcs(funcs).ParseFS(templates, "templates/report.html.tmpl"))
)
