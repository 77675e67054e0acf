package dashboard

import (
	"context"
	"net/http"
	"slices"
	"strings"

	"github.com/shipgate/shipgate/internal/flags"
	"github.com/shipgate/shipgate/internal/rollout"
)

// Flags is what the flags page needs from the flags service.
type Flags interface {
	Snapshot() *flags.Snapshot
	Stale(ctx context.Context) ([]flags.Debt, error)
	Disable(ctx context.Context, key string, who flags.Who) (*flags.Flag, error)
}

// flagRow is one flag as the page shows it.
type flagRow struct {
	Key, State, Default, Targeting, Owner, Stage, Expires string
	Stale                                                 []string
	Enabled                                               bool
}

func (h *Handler) flagsPage(w http.ResponseWriter, r *http.Request) {
	if h.opts.Flags == nil {
		http.Error(w, "feature flags are not served here", http.StatusNotFound)
		return
	}
	debt, err := h.opts.Flags.Stale(r.Context())
	if err != nil {
		http.Error(w, "stale flags: "+err.Error(), http.StatusInternalServerError)
		return
	}
	reasons := map[string][]string{}
	for _, d := range debt {
		reasons[d.Key] = d.Reasons
	}
	var rows []flagRow
	for _, f := range h.opts.Flags.Snapshot().Flags() {
		t := strings.TrimSpace(string(f.Targeting))
		if t == "" || t == "{}" {
			t = "none: everyone gets the default"
		} else if len(t) > 140 {
			t = t[:140] + "…"
		}
		row := flagRow{Key: f.Key, State: string(f.State), Default: f.Default(), Targeting: t, Owner: f.MetaString(flags.MetaOwner),
			Stage: string(f.Stage()), Expires: f.MetaString(flags.MetaExpires), Stale: reasons[f.Key], Enabled: f.State == flags.Enabled}
		rows = append(rows, row)
	}
	slices.SortFunc(rows, func(a, b flagRow) int { return strings.Compare(a.Key, b.Key) })
	h.render(w, r, "flags", h.data(r, map[string]any{"Flags": rows}), http.StatusOK)
}

// killFlag is the kill switch: it disables a flag, so every evaluation
// gets the code default.
func (h *Handler) killFlag(w http.ResponseWriter, r *http.Request) {
	if h.opts.Flags == nil {
		http.Error(w, "feature flags are not served here", http.StatusNotFound)
		return
	}
	s := sessionOf(r)
	key := r.PostFormValue("key")
	reason := strings.TrimSpace(r.PostFormValue("reason"))
	if reason == "" {
		reason = "kill switch from the dashboard"
	}
	_, err := h.opts.Flags.Disable(r.Context(), key, flags.Who{Actor: "user:" + s.name, Reason: reason})
	msg := "Flag " + key + " is off."
	if err != nil {
		msg = "Kill switch refused: " + err.Error()
	}
	http.Redirect(w, r, "/ui/flags?flash="+urlQueryEscape(msg), http.StatusSeeOther)
}

// timelineRow is one release across the pipeline's environments.
type timelineRow struct {
	Version string
	Cells   []timelineCell
}

type timelineCell struct {
	Phase, At string
	ID        int64
}

// timeline groups rollouts by release, one cell per environment (its
// latest rollout of that release), newest release first.
func timeline(envs []string, hist []rollout.Rollout) []timelineRow {
	var rows []timelineRow
	index := map[string]int{}
	for _, ro := range hist { // newest first
		if ro.Kind != rollout.KindDeploy {
			continue
		}
		i, ok := index[ro.Version]
		if !ok {
			i = len(rows)
			index[ro.Version] = i
			rows = append(rows, timelineRow{Version: ro.Version, Cells: make([]timelineCell, len(envs))})
		}
		j := slices.Index(envs, ro.Env)
		if j < 0 || rows[i].Cells[j].ID != 0 {
			continue
		}
		rows[i].Cells[j] = timelineCell{Phase: string(ro.Phase), At: ro.CreatedAt.UTC().Format("2006-01-02 15:04"), ID: ro.ID}
	}
	return rows
}
