package api

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/shipgate/shipgate/internal/auth"
	"github.com/shipgate/shipgate/internal/rollout"
)

// This file is the rollout event stream: GET /v1/events, server-sent
// events of what is live and the rollout in progress, which the dashboard
// and any other client can follow.

// Snapshot is one event of the rollout stream: what is live in each
// environment and the rollout in progress.
type Snapshot struct {
	App  string        `json:"app"`
	Envs []EnvSnapshot `json:"environments"`
}

// EnvSnapshot is one environment in a Snapshot.
type EnvSnapshot struct {
	Env    string `json:"env"`
	Stable string `json:"stable"`
	// StableImage is the stable release's image, when it has one.
	StableImage string           `json:"stable_image,omitempty"`
	Previous    string           `json:"previous,omitempty"`
	Rollout     *RolloutSnapshot `json:"rollout,omitempty"`
	// Canary and StableW are the last analysis windows; Verdict and
	// Results its judgement.
	Canary  *rollout.Summary `json:"canary,omitempty"`
	StableW *rollout.Summary `json:"stable_window,omitempty"`
	Verdict string           `json:"verdict,omitempty"`
	Results []map[string]any `json:"results,omitempty"`
	At      time.Time        `json:"at"`
}

// RolloutSnapshot is the rollout in progress.
type RolloutSnapshot struct {
	ID      int64  `json:"id"`
	Version string `json:"version"`
	// Image is the release's image, when it has one (Kubernetes).
	Image    string `json:"image,omitempty"`
	Phase    string `json:"phase"`
	Step     string `json:"step"`
	Weight   int    `json:"weight"`
	Waiting  bool   `json:"waiting_for_approval"`
	Strategy string `json:"strategy,omitempty"`
	// Paused says why the bake holds for a person (pause, or inconclusive
	// evidence under on_inconclusive: pause); empty while it runs.
	Paused string `json:"paused,omitempty"`
}

// SnapshotOf turns an app's status into a stream event.
func SnapshotOf(st rollout.AppStatus, now time.Time) Snapshot {
	s := Snapshot{App: st.App}
	for _, e := range st.Envs {
		es := EnvSnapshot{Env: e.Env, At: now}
		if e.State != nil {
			es.Stable, es.Previous, es.StableImage = e.State.Stable, e.State.Previous, e.Image
		}
		if a := e.Active; a != nil {
			es.Rollout = &RolloutSnapshot{ID: a.ID, Version: a.Version, Image: a.Image, Phase: string(a.Phase), Weight: a.Weight,
				Waiting: waitingApproval(a), Strategy: a.Strategy, Paused: a.Paused}
			if a.StepIndex < len(a.Steps) {
				es.Rollout.Step = stepName(a.Steps[a.StepIndex])
			}
			if j := a.Analysis; j != nil {
				c, s := j.Canary, j.Stable
				es.Canary, es.StableW, es.Verdict, es.At = &c, &s, string(j.Verdict), j.At
				for _, res := range j.Results {
					b, _ := json.Marshal(res)
					var m map[string]any
					_ = json.Unmarshal(b, &m)
					es.Results = append(es.Results, m)
				}
			}
		}
		s.Envs = append(s.Envs, es)
	}
	return s
}

// StreamStatus serves the rollout event stream of app: the API offers it
// to other clients at GET /v1/events.
func StreamStatus(w http.ResponseWriter, r *http.Request, svc interface {
	Status(ctx context.Context, app string) (rollout.AppStatus, error)
}, app string, poll time.Duration, done <-chan struct{}) {
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	_ = rc.Flush()
	t := time.NewTicker(poll)
	defer t.Stop()
	var last []byte
	lastWrite := time.Now()
	seq := 0
	for {
		st, err := svc.Status(r.Context(), app)
		if err == nil {
			snap := SnapshotOf(st, time.Now())
			for i := range snap.Envs {
				snap.Envs[i].At = time.Time{} // only a change of state is news
			}
			key, _ := json.Marshal(snap)
			if !bytes.Equal(key, last) {
				last = key
				full, _ := json.Marshal(SnapshotOf(st, time.Now()))
				seq++
				if _, err := fmt.Fprintf(w, "id: %d\nevent: status\ndata: %s\n\n", seq, full); err != nil {
					return
				}
				_ = rc.Flush()
				lastWrite = time.Now()
			}
		}
		if time.Since(lastWrite) > 15*time.Second {
			if _, err := fmt.Fprint(w, ": keep-alive\n\n"); err != nil {
				return
			}
			_ = rc.Flush()
			lastWrite = time.Now()
		}
		select {
		case <-r.Context().Done():
			return
		case <-done:
			return
		case <-t.C:
		}
	}
}

func waitingApproval(r *rollout.Rollout) bool {
	return r != nil && r.StepIndex < len(r.Steps) && r.Steps[r.StepIndex].Kind == rollout.StepApproval && r.Approval == nil
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

// eventsPoll is how often GET /v1/events looks for changes.
const eventsPoll = 250 * time.Millisecond

func mountEvents(mux *http.ServeMux, h *handler) {
	mux.Handle("GET /v1/events", h.require(auth.RoleViewer, func(w http.ResponseWriter, r *http.Request) {
		app := r.URL.Query().Get("app")
		if app == "" {
			app = h.app
		}
		StreamStatus(w, r, h.svc, app, eventsPoll, h.done)
	}))
}

// Events follows the rollout event stream of app ("" for the server's) and
// calls fn with each Snapshot until fn returns an error (returned, but
// ErrStopEvents is returned as nil), the stream ends, or ctx ends.
func (c *Client) Events(ctx context.Context, app string, fn func(Snapshot) error) error {
	path := "/v1/events"
	if app != "" {
		path += "?app=" + url.QueryEscape(app)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.baseURL+path, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "text/event-stream")
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	hc := *c.hc
	hc.Timeout = 0 // a stream lasts as long as it is followed
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		data, _ := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
		return responseError(resp.StatusCode, data)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), maxResponseBytes)
	event := ""
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "event: "):
			event = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: ") && event == "status":
			var s Snapshot
			if err := json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &s); err != nil {
				return fmt.Errorf("GET %s: decode event: %w", path, err)
			}
			if err := fn(s); err != nil {
				if errors.Is(err, ErrStopEvents) {
					return nil
				}
				return err
			}
		case line == "":
			event = ""
		}
	}
	if ctx.Err() != nil {
		return nil
	}
	return sc.Err()
}

// ErrStopEvents ends the stream without an error when the func given to
// Client.Events returns it.
var ErrStopEvents = errors.New("stop following events")
