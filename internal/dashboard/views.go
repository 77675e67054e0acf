package dashboard

import (
	"bytes"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/shipgate/shipgate/internal/api"
	"github.com/shipgate/shipgate/internal/audit"
	"github.com/shipgate/shipgate/internal/report"
	"github.com/shipgate/shipgate/internal/rollout"
)

var funcs = template.FuncMap{
	"at": func(t time.Time) string {
		if t.IsZero() {
			return "-"
		}
		return t.UTC().Format("2006-01-02 15:04:05 UTC")
	},
	"pct": func(f float64) string { return fmt.Sprintf("%.2f%%", 100*f) },
	"step": func(r *rollout.Rollout) string {
		if r == nil || r.StepIndex >= len(r.Steps) {
			return "-"
		}
		return stepName(r.Steps[r.StepIndex])
	},
	"waiting": waitingApproval,
}

func stepName(s rollout.Step) string {
	switch s.Kind {
	case rollout.StepWeight:
		return fmt.Sprintf("%d%% for %s", s.Weight, s.Duration)
	case rollout.StepApproval:
		return "wait for approval"
	default:
		return string(s.Kind)
	}
}

func waitingApproval(r *rollout.Rollout) bool {
	return r != nil && r.StepIndex < len(r.Steps) && r.Steps[r.StepIndex].Kind == rollout.StepApproval && r.Approval == nil
}

func (h *Handler) home(w http.ResponseWriter, r *http.Request) {
	app, ok := h.needApp(w, r)
	if !ok {
		return
	}
	st, err := h.opts.Service.Status(r.Context(), app)
	if err != nil {
		http.Error(w, "status: "+err.Error(), http.StatusInternalServerError)
		return
	}
	hist, err := h.opts.Service.History(r.Context(), app, "", 50)
	if err != nil {
		http.Error(w, "history: "+err.Error(), http.StatusInternalServerError)
		return
	}
	envs := make([]string, len(st.Envs))
	for i, e := range st.Envs {
		envs[i] = e.Env
	}
	// The image is a column of the history only when a rollout has one
	// (releases on Kubernetes).
	images := slices.ContainsFunc(hist, func(ro rollout.Rollout) bool { return ro.Image != "" })
	h.render(w, r, "home", h.data(r, map[string]any{"Status": st, "History": hist, "HistoryImages": images, "Envs": envs, "Timeline": timeline(envs, hist)}), http.StatusOK)
}

func (h *Handler) audit(w http.ResponseWriter, r *http.Request) {
	events, err := h.opts.Service.Audit(r.Context(), audit.Filter{Limit: 200, Subject: r.URL.Query().Get("subject")})
	if err != nil {
		http.Error(w, "audit: "+err.Error(), http.StatusInternalServerError)
		return
	}
	verdict, ok := "chain verification is not available", false
	if h.opts.Chain != nil {
		chain, err := h.opts.Chain.AuditChain(r.Context(), 1)
		switch {
		case err != nil:
			verdict = "could not read the chain: " + err.Error()
		case audit.Verify(chain) != nil:
			verdict = "BROKEN: " + audit.Verify(chain).Error()
		default:
			verdict, ok = fmt.Sprintf("intact: %d events, each linked to the one before by its SHA-256", len(chain)), true
		}
	}
	h.render(w, r, "audit", h.data(r, map[string]any{"Events": events, "Verdict": verdict, "OK": ok}), http.StatusOK)
}

func (h *Handler) dora(w http.ResponseWriter, r *http.Request) {
	if h.opts.Reports == nil {
		http.Error(w, "DORA numbers are not available", http.StatusNotFound)
		return
	}
	week := r.URL.Query().Get("week")
	if week == "" {
		week = "last"
	}
	env := r.URL.Query().Get("env")
	// Every app's numbers, or the one app named.
	if _, ok := h.needApp(w, r); !ok {
		return
	}
	rep, err := h.opts.Reports.Report(r.Context(), report.WeekQuery{Week: week, Env: env, App: r.URL.Query().Get("app")})
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var buf bytes.Buffer
	if err := report.Render(&buf, rep, report.FormatHTML); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	// The report is a whole page; the dashboard shows its body, whose
	// charts are inline SVG.
	body := buf.String()
	if i := strings.Index(body, "<body>"); i >= 0 {
		body = body[i+len("<body>"):]
	}
	body = strings.TrimSuffix(strings.TrimSpace(body), "</html>")
	body = strings.TrimSuffix(strings.TrimSpace(body), "</body>")
	h.render(w, r, "dora", h.data(r, map[string]any{"Report": template.HTML(body), "Week": rep.Week}), http.StatusOK) //nolint:gosec // the report's own html/template output
}

// back sends the browser to the page of the app acted on, with flash.
func (h *Handler) back(w http.ResponseWriter, r *http.Request, flash string) {
	app, _ := h.appOf(r)
	http.Redirect(w, r, "/ui/?app="+url.QueryEscape(app)+"&flash="+url.QueryEscape(flash), http.StatusSeeOther)
}

// actApp returns the app a button acts on; a form naming an app the
// server does not manage is sent back with the error, and false.
func (h *Handler) actApp(w http.ResponseWriter, r *http.Request) (string, bool) {
	app, err := h.appOf(r)
	if err != nil {
		h.back(w, r, "Refused: "+err.Error())
		return "", false
	}
	return app, true
}

func (h *Handler) rollback(w http.ResponseWriter, r *http.Request) {
	s := sessionOf(r)
	reason := strings.TrimSpace(r.PostFormValue("reason"))
	if reason == "" {
		h.back(w, r, "A rollback needs a reason: say why.")
		return
	}
	app, ok := h.actApp(w, r)
	if !ok {
		return
	}
	ro, err := h.opts.Service.Rollback(r.Context(), rollout.RollbackRequest{App: app, Env: r.PostFormValue("env"), Reason: reason, Actor: "user:" + s.name})
	if err != nil {
		h.back(w, r, "Rollback refused: "+err.Error())
		return
	}
	h.back(w, r, fmt.Sprintf("Rolling back %s in %s (rollout %d).", ro.Version, ro.Env, ro.ID))
}

func (h *Handler) approve(w http.ResponseWriter, r *http.Request) {
	s := sessionOf(r)
	app, ok := h.actApp(w, r)
	if !ok {
		return
	}
	ro, err := h.opts.Service.Approve(r.Context(), rollout.ApproveRequest{App: app, Env: r.PostFormValue("env"),
		Version: r.PostFormValue("version"), Comment: r.PostFormValue("comment"), Actor: "user:" + s.name})
	if err != nil {
		h.back(w, r, "Approval refused: "+err.Error())
		return
	}
	h.back(w, r, fmt.Sprintf("Approved %s in %s.", ro.Version, ro.Env))
}

// promote ends the running step's bake now, as passed (shipgate promote).
func (h *Handler) promote(w http.ResponseWriter, r *http.Request) {
	s := sessionOf(r)
	reason := strings.TrimSpace(r.PostFormValue("reason"))
	if reason == "" {
		h.back(w, r, "Promoting skips the rest of the bake: say why.")
		return
	}
	app, ok := h.actApp(w, r)
	if !ok {
		return
	}
	ro, err := h.opts.Service.Promote(r.Context(), rollout.PromoteRequest{App: app, Env: r.PostFormValue("env"), Reason: reason, Actor: "user:" + s.name})
	if err != nil {
		h.back(w, r, "Promotion refused: "+err.Error())
		return
	}
	h.back(w, r, fmt.Sprintf("Promoted %s in %s past its bake (rollout %d).", ro.Version, ro.Env, ro.ID))
}

// pause holds the running bake for a person; resume lets it go on.
func (h *Handler) pause(w http.ResponseWriter, r *http.Request) { h.hold(w, r, true) }

func (h *Handler) resume(w http.ResponseWriter, r *http.Request) { h.hold(w, r, false) }

func (h *Handler) hold(w http.ResponseWriter, r *http.Request, pause bool) {
	s := sessionOf(r)
	app, ok := h.actApp(w, r)
	if !ok {
		return
	}
	req := rollout.PauseRequest{App: app, Env: r.PostFormValue("env"), Reason: strings.TrimSpace(r.PostFormValue("reason")), Actor: "user:" + s.name}
	call, verb := h.opts.Service.Resume, "Resumed"
	if pause {
		call, verb = h.opts.Service.Pause, "Paused"
	}
	ro, err := call(r.Context(), req)
	if err != nil {
		h.back(w, r, strings.TrimSuffix(verb, "d")+" refused: "+err.Error())
		return
	}
	h.back(w, r, fmt.Sprintf("%s %s in %s (rollout %d).", verb, ro.Version, ro.Env, ro.ID))
}

// events streams the rollout events (api.StreamStatus) to the page.
func (h *Handler) events(w http.ResponseWriter, r *http.Request) {
	app, ok := h.needApp(w, r)
	if !ok {
		return
	}
	api.StreamStatus(w, r, h.opts.Service, app, h.opts.Poll, h.opts.Done)
}
