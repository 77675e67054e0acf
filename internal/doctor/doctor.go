// Package doctor judges how far a team is from the seven gates of a boring
// release: a written release day, infrastructure as code, a staging that
// matches production, real-browser tests that block the merge, a small
// canary that rolls back by itself, rollbacks measured and logged, and one
// number on Monday morning.
//
// It is pure: it reads a repository through an fs.FS and a server's history
// as records handed to it, and returns a Report that says, for each gate,
// installed, partly or missing, what it found, and the one step that would
// install it. The CLI gathers the inputs and prints the report.
package doctor

import (
	"io/fs"
	"slices"
	"time"

	"github.com/shipgate/shipgate/internal/audit"
)

// Status is how far a gate is installed.
type Status string

// The statuses of a gate.
const (
	Installed Status = "installed"
	Partly    Status = "partly"
	Missing   Status = "missing"
)

// The seven gates, by the names doctor.required uses.
const (
	GateReleaseDay   = "release_day"
	GateIaC          = "iac"
	GateStaging      = "staging"
	GateBrowserTests = "browser_tests"
	GateCanary       = "canary"
	GateRollback     = "rollback"
	GateMondayReport = "monday_report"
)

// Input is everything doctor looks at.
type Input struct {
	// Repo is the repository's work tree.
	Repo fs.FS
	// ConfigPath is the path of shipgate.yaml inside Repo. Default
	// shipgate.yaml.
	ConfigPath string
	// ConfigName is how the config file is named in messages (its path as
	// the user gave it). Default ConfigPath.
	ConfigName string
	// ConfigData is the config file's content when the caller read it
	// (a -f outside the repository); nil makes doctor read ConfigPath from
	// Repo. A missing file is no config, not an error.
	ConfigData []byte
	// History is what a shipgate server recorded, nil when none was
	// reachable; HistoryNote then says why.
	History     *History
	HistoryNote string
	// Now is the time the report is made at.
	Now time.Time
}

// History is what doctor reads from a server.
type History struct {
	// Server is the URL the history was read from.
	Server string `json:"server"`
	// Rollouts are the app's rollouts, newest first.
	Rollouts []Rollout `json:"rollouts"`
	// Audit holds the audit events of rollbacks, drills and reports.
	Audit []audit.Event `json:"audit"`
	// Drift holds the drift report of environments that have a drift gate.
	Drift []Drift `json:"drift,omitempty"`
}

// Rollout is what doctor needs of one rollout.
type Rollout struct {
	ID                int64     `json:"id"`
	Env               string    `json:"env"`
	Kind              string    `json:"kind"`
	Phase             string    `json:"phase"`
	RollbackStartedAt time.Time `json:"rollback_started_at,omitzero"`
	TrafficRestoredAt time.Time `json:"traffic_restored_at,omitzero"`
	FinishedAt        time.Time `json:"finished_at,omitzero"`
}

// Drift is an environment's drift from the one it is compared with.
type Drift struct {
	Env     string `json:"env"`
	Against string `json:"against"`
	OK      bool   `json:"ok"`
	// Detail lists the differences that are not allowed.
	Detail string `json:"detail,omitempty"`
}

// Report is doctor's answer.
type Report struct {
	App string `json:"app,omitempty"`
	// Config is the config file as named in Input.
	Config string    `json:"config"`
	At     time.Time `json:"at"`
	// Server says whether a server's history was read.
	Server ServerNote `json:"server"`
	Gates  []Gate     `json:"gates"`
	// Counts of gates per status.
	Installed int `json:"installed"`
	Partly    int `json:"partly"`
	Missing   int `json:"missing"`
	// RequiredMissing are the gates doctor.required names that are
	// missing; doctor fails when there is any.
	RequiredMissing []string `json:"required_missing"`
}

// ServerNote says where the history came from, or why there is none.
type ServerNote struct {
	Reachable bool   `json:"reachable"`
	URL       string `json:"url,omitempty"`
	Note      string `json:"note"`
}

// Gate is the verdict on one gate.
type Gate struct {
	ID    string `json:"id"`
	Title string `json:"title"`
	// Why says in one sentence what the gate protects, for a founder.
	Why    string `json:"why"`
	Status Status `json:"status"`
	// Required is true when doctor.required names the gate.
	Required bool `json:"required,omitempty"`
	// Evidence is what was found, good or bad.
	Evidence []string `json:"evidence"`
	// Step is the one concrete thing to do next; empty when installed.
	Step string `json:"step,omitempty"`
}

// OK reports whether no required gate is missing.
func (r Report) OK() bool { return len(r.RequiredMissing) == 0 }

// Diagnose looks at the repository, the config and the history and judges
// every gate.
func Diagnose(in Input) Report {
	if in.ConfigPath == "" {
		in.ConfigPath = "shipgate.yaml"
	}
	if in.ConfigName == "" {
		in.ConfigName = in.ConfigPath
	}
	f := gather(in)
	rep := Report{Config: in.ConfigName, At: in.Now.UTC(), RequiredMissing: []string{}}
	if f.cfg != nil {
		rep.App = f.cfg.App
	}
	switch {
	case in.History != nil:
		rep.Server = ServerNote{Reachable: true, URL: in.History.Server,
			Note: "history read from the server: " + plural(len(in.History.Rollouts), "rollout") + ", " + plural(len(in.History.Audit), "audit event")}
	default:
		note := in.HistoryNote
		if note == "" {
			note = "no server was asked"
		}
		rep.Server = ServerNote{Note: note + "; what only the history shows (rollback times, drills, reports sent, drift now) is marked not checked"}
	}
	judges := []func(*facts) Gate{releaseDay, iac, staging, browserTests, canary, rollback, mondayReport}
	for _, judge := range judges {
		g := judge(f)
		if f.cfg != nil && f.cfg.Doctor != nil && slices.Contains(f.cfg.Doctor.Required, g.ID) {
			g.Required = true
			if g.Status == Missing {
				rep.RequiredMissing = append(rep.RequiredMissing, g.ID)
			}
		}
		if g.Evidence == nil {
			g.Evidence = []string{}
		}
		switch g.Status {
		case Installed:
			rep.Installed++
		case Partly:
			rep.Partly++
		default:
			rep.Missing++
		}
		rep.Gates = append(rep.Gates, g)
	}
	return rep
}
