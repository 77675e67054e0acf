package cli

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/shipgate/shipgate/internal/api"
	"github.com/shipgate/shipgate/internal/audit"
	"github.com/shipgate/shipgate/internal/config"
	"github.com/shipgate/shipgate/internal/doctor"
)

// doctorHistoryTimeout bounds how long doctor waits for the server: the
// history is optional, and a doctor run in CI must not hang on it.
const doctorHistoryTimeout = 10 * time.Second

func (a *app) doctorCommand() *cobra.Command {
	var (
		repo    string
		file    string
		offline bool
	)
	cmd := &cobra.Command{
		Use:   "doctor",
		Short: "Say which of the seven release gates are installed, and the next step for each",
		Long: `Look at a repository, its shipgate.yaml and, when one answers, the shipgate
server's history, and say for each of the seven gates of a boring release
whether it is installed, partly installed or missing, what was found, and
the one step that would install it:

  1. a written release day          5. a small canary that rolls back by itself
  2. infrastructure as code         6. every deploy reversible in under 90s, logged
  3. a staging that matches prod    7. one number on Monday morning
  4. real-browser tests that block the merge

The report is Markdown by default (-o md), or a web page (-o html), or JSON
(-o json). The command exits 4 when a gate that doctor.required in
shipgate.yaml names is missing, 0 otherwise. Without a reachable server (or
with --offline) the report says so and marks what only the history shows
as not checked.`,
		Example: `  shipgate doctor
  shipgate doctor --repo ../shop -o html > doctor.html
  shipgate doctor --offline -o json`,
		Args: argRange(0, 0),
		// The root's hook accepts only text and json; doctor also prints md
		// and html.
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			format := a.output
			switch format {
			case outputText, outputMarkdown, outputHTML, outputJSON:
			default:
				return invalidf("invalid --output %q: want md, html or json", format)
			}
			a.output = outputText
			err := a.resolveGlobals(cmd)
			a.output = format
			return err
		},
		RunE: func(cmd *cobra.Command, _ []string) error {
			in := doctor.Input{Repo: os.DirFS(repo), Now: a.now()}
			if err := doctorConfig(&in, repo, file); err != nil {
				return err
			}
			if info, err := os.Stat(repo); err != nil || !info.IsDir() {
				return invalidf("invalid --repo %q: not a directory", repo)
			}
			if offline {
				in.HistoryNote = "not asked (--offline)"
			} else {
				in.History, in.HistoryNote = a.doctorHistory(cmd.Context(), in)
			}
			rep := doctor.Diagnose(in)
			var err error
			switch a.output {
			case outputJSON:
				err = rep.WriteJSON(a.stdout)
			case outputHTML:
				err = rep.WriteHTML(a.stdout)
			default:
				err = rep.WriteMarkdown(a.stdout)
			}
			if err != nil {
				return err
			}
			if !rep.OK() {
				return &ExitError{Code: ExitGate, Err: fmt.Errorf("required gates missing: %s", strings.Join(rep.RequiredMissing, ", "))}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&repo, "repo", ".", "the repository to look at")
	cmd.Flags().StringVarP(&file, "file", "f", "", "the config file (default: shipgate.yaml in --repo)")
	cmd.Flags().BoolVar(&offline, "offline", false, "do not ask the server for its history")
	return cmd
}

// doctorConfig points in at the config file: inside the repository doctor
// reads it there; outside, its content is read here.
func doctorConfig(in *doctor.Input, repo, file string) error {
	if file == "" {
		in.ConfigPath = "shipgate.yaml"
		return nil
	}
	in.ConfigName = file
	absRepo, err1 := filepath.Abs(repo)
	absFile, err2 := filepath.Abs(file)
	if err1 == nil && err2 == nil {
		if rel, err := filepath.Rel(absRepo, absFile); err == nil && filepath.IsLocal(rel) {
			in.ConfigPath = filepath.ToSlash(rel)
			return nil
		}
	}
	data, err := os.ReadFile(file) //nolint:gosec // the config file the user named
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return invalidf("config file %s does not exist", file)
	case err != nil:
		return fmt.Errorf("read config: %w", err)
	}
	in.ConfigData = data
	return nil
}

// doctorHistory reads what doctor needs from the server, or says why it
// could not.
func (a *app) doctorHistory(ctx context.Context, in doctor.Input) (*doctor.History, string) {
	appName := doctorApp(in)
	if appName == "" {
		return nil, "not asked: no app in the config"
	}
	ctx, cancel := context.WithTimeout(ctx, doctorHistoryTimeout)
	defer cancel()
	c, err := a.client()
	if err != nil {
		return nil, err.Error()
	}
	if err := c.Health(ctx); err != nil {
		return nil, fmt.Sprintf("no server reachable at %s (%s)", a.server, shortErr(err))
	}
	rollouts, err := c.History(ctx, appName, "", 1000)
	if err != nil {
		return nil, fmt.Sprintf("the server at %s did not give the history of %s (%s)", a.server, appName, shortErr(err))
	}
	h := &doctor.History{Server: a.server}
	for _, r := range rollouts {
		h.Rollouts = append(h.Rollouts, doctor.Rollout{ID: r.ID, Env: r.Env, Kind: string(r.Kind), Phase: string(r.Phase),
			RollbackStartedAt: r.RollbackStartedAt, TrafficRestoredAt: r.TrafficRestoredAt, FinishedAt: r.FinishedAt})
	}
	for _, action := range []string{audit.ActionRollbackAuto, audit.ActionRollbackManual, ""} {
		events, err := c.Audit(ctx, audit.Filter{Subject: appName, Action: action, Limit: 1000})
		if err != nil {
			return nil, fmt.Sprintf("the server at %s did not give its audit log (%s)", a.server, shortErr(err))
		}
		for _, ev := range events {
			// The unfiltered pass is for the reports sent (report.*).
			if action != "" || strings.HasPrefix(ev.Action, "report.") {
				h.Audit = append(h.Audit, ev)
			}
		}
	}
	if cfg := doctorParsed(in); cfg != nil {
		for _, name := range sortedEnvNames(cfg) {
			if cfg.Environments[name].Gates.Drift == nil {
				continue
			}
			rep, err := c.Drift(ctx, appName, name, "")
			if err != nil {
				continue // the gate then shows no drift measured
			}
			d := doctor.Drift{Env: name, Against: rep.Against, OK: rep.OK}
			var bad []string
			for _, diff := range rep.Diffs {
				if !diff.Allowed {
					bad = append(bad, diff.Kind+": "+diff.Detail)
				}
			}
			d.Detail = strings.Join(bad, "; ")
			h.Drift = append(h.Drift, d)
		}
	}
	return h, ""
}

// doctorParsed returns the config doctor will read, nil when it does not
// load (doctor then reports why).
func doctorParsed(in doctor.Input) *config.Config {
	data := in.ConfigData
	if data == nil {
		var err error
		if data, err = fs.ReadFile(in.Repo, in.ConfigPath); err != nil {
			return nil
		}
	}
	cfg, err := config.Parse(in.ConfigPath, data)
	if err != nil {
		return nil
	}
	return cfg
}

func doctorApp(in doctor.Input) string {
	if cfg := doctorParsed(in); cfg != nil {
		return cfg.App
	}
	return ""
}

func sortedEnvNames(cfg *config.Config) []string {
	names := make([]string, 0, len(cfg.Environments))
	for name := range cfg.Environments {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

// shortErr is an error's message without the URL the client wraps it in.
func shortErr(err error) string {
	var ae *api.APIError
	if errors.As(err, &ae) {
		return ae.Error()
	}
	msg := err.Error()
	if i := strings.LastIndex(msg, ": "); i >= 0 {
		return msg[i+2:]
	}
	return msg
}
