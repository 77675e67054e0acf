package doctor

import (
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"strings"
)

// statusMark is how a status reads at a glance.
var statusMark = map[Status]string{Installed: "✅ installed", Partly: "🟡 partly", Missing: "❌ missing"}

// Summary is the report in one sentence.
func (r Report) Summary() string {
	s := fmt.Sprintf("%d of %d gates installed, %d partly, %d missing.", r.Installed, len(r.Gates), r.Partly, r.Missing)
	if len(r.RequiredMissing) > 0 {
		s += " Required but missing: " + strings.Join(r.RequiredMissing, ", ") + "."
	}
	return s
}

// WriteJSON writes the report as one indented JSON document.
func (r Report) WriteJSON(w io.Writer) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("encode report: %w", err)
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

// WriteMarkdown writes the report as Markdown, for a terminal, a pull
// request comment or a wiki page.
func (r Report) WriteMarkdown(w io.Writer) error {
	var b strings.Builder
	title := "Shipgate doctor"
	if r.App != "" {
		title += ": " + r.App
	}
	fmt.Fprintf(&b, "# %s\n\n%s\n\n", title, r.Summary())
	b.WriteString("| # | Gate | Status |\n|---|---|---|\n")
	for i, g := range r.Gates {
		req := ""
		if g.Required {
			req = " (required)"
		}
		fmt.Fprintf(&b, "| %d | %s%s | %s |\n", i+1, g.Title, req, statusMark[g.Status])
	}
	fmt.Fprintf(&b, "\nConfig: %s. Server: %s.\n", r.Config, r.Server.Note)
	for i, g := range r.Gates {
		fmt.Fprintf(&b, "\n## %d. %s: %s\n\n%s\n\n", i+1, g.Title, g.Status, g.Why)
		for _, e := range g.Evidence {
			fmt.Fprintf(&b, "- %s\n", e)
		}
		if g.Step != "" {
			fmt.Fprintf(&b, "\n**Next step:** %s\n", g.Step)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

var htmlReport = template.Must(template.New("doctor").Funcs(template.FuncMap{
	"mark": func(s Status) string { return statusMark[s] },
	"inc":  func(i int) int { return i + 1 },
}).Parse(`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Shipgate doctor{{if .App}}: {{.App}}{{end}}</title>
<style>
body{font:16px/1.5 system-ui,sans-serif;max-width:52rem;margin:2rem auto;padding:0 1rem;color:#1b1f24}
table{border-collapse:collapse;width:100%}td,th{border-bottom:1px solid #d0d7de;padding:.4rem;text-align:left}
.installed{color:#1a7f37}.partly{color:#9a6700}.missing{color:#cf222e}.why{color:#57606a}.step{background:#f6f8fa;padding:.5rem;border-left:3px solid #0969da}
</style>
</head>
<body>
<h1>Shipgate doctor{{if .App}}: {{.App}}{{end}}</h1>
<p>{{.Summary}}</p>
<table>
<tr><th>#</th><th>Gate</th><th>Status</th></tr>
{{- range $i, $g := .Gates}}
<tr><td>{{inc $i}}</td><td><a href="#{{$g.ID}}">{{$g.Title}}</a>{{if $g.Required}} (required){{end}}</td><td class="{{$g.Status}}">{{mark $g.Status}}</td></tr>
{{- end}}
</table>
<p>Config: {{.Config}}. Server: {{.Server.Note}}.</p>
{{- range $i, $g := .Gates}}
<h2 id="{{$g.ID}}">{{inc $i}}. {{$g.Title}}: <span class="{{$g.Status}}">{{$g.Status}}</span></h2>
<p class="why">{{$g.Why}}</p>
<ul>
{{- range $g.Evidence}}
<li>{{.}}</li>
{{- end}}
</ul>
{{- if $g.Step}}
<p class="step"><strong>Next step:</strong> {{$g.Step}}</p>
{{- end}}
{{- end}}
</body>
</html>
`))

// WriteHTML writes the report as one self-contained HTML page.
func (r Report) WriteHTML(w io.Writer) error {
	return htmlReport.Execute(w, r)
}
