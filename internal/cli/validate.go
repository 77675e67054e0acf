package cli

import (
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/shipgate/shipgate/internal/config"
	"github.com/shipgate/shipgate/internal/plan"
	"github.com/shipgate/shipgate/internal/rollout"
)

// validation is the JSON output of validate.
type validation struct {
	Valid        bool      `json:"valid"`
	App          string    `json:"app,omitempty"`
	Environments []string  `json:"environments,omitempty"`
	Problems     []problem `json:"problems"`
	// Warnings are bakes the expected traffic cannot bring to the
	// evidence their gates need (analysis.expected_rps).
	Warnings []string `json:"warnings,omitempty"`
	// Apps are each app's validation, when the file or directory holds
	// several apps (App and Environments are then empty).
	Apps []validation `json:"apps,omitempty"`
}

// problem is a config problem as validate prints it in JSON. It is its own
// type so that the output keeps its shape whatever config.Problem becomes.
type problem struct {
	File    string `json:"file"`
	Line    int    `json:"line,omitempty"`
	Column  int    `json:"column,omitempty"`
	Field   string `json:"field,omitempty"`
	Message string `json:"message"`
}

func (a *app) validateCommand() *cobra.Command {
	var file string
	cmd := &cobra.Command{
		Use:   "validate",
		Short: "Check shipgate.yaml and report every problem with file:line",
		Long: `Check a config file without starting anything. Every problem is printed
on stderr as file:line:column: field: message, and the command exits 2.
-f may be a file with several apps (YAML documents separated by "---") or
a directory of app files, as for shipgate server; the apps are then also
checked together (names and router addresses).`,
		Example: `  shipgate validate
  shipgate validate -f deploy/shipgate.yaml -o json`,
		Args: argRange(0, 0),
		RunE: func(*cobra.Command, []string) error {
			cfgs, err := config.LoadApps(file)
			var cerr *config.Error
			switch {
			case errors.As(err, &cerr):
				return a.printProblems(cerr.Problems)
			case err != nil:
				return configError(err)
			}
			var apps []validation
			for _, cfg := range cfgs {
				envs := make([]string, 0, len(cfg.Environments))
				for name := range cfg.Environments {
					envs = append(envs, name)
				}
				slices.Sort(envs)
				var warnings []string
				for _, name := range envs {
					if st, err := plan.New(cfg).Spec(name); err == nil {
						warnings = append(warnings, rollout.EvidenceWarnings(st)...)
					}
				}
				apps = append(apps, validation{Valid: true, App: cfg.App, Environments: envs, Problems: []problem{}, Warnings: warnings})
			}
			if a.jsonOutput() {
				if len(apps) == 1 {
					return a.printJSON(apps[0])
				}
				var warnings []string
				for _, v := range apps {
					warnings = append(warnings, v.Warnings...)
				}
				return a.printJSON(validation{Valid: true, Apps: apps, Problems: []problem{}, Warnings: warnings})
			}
			for _, v := range apps {
				for _, w := range v.Warnings {
					a.printf("warning: %s\n", w)
				}
				noun := "environments"
				if len(v.Environments) == 1 {
					noun = "environment"
				}
				a.printf("%s: ok (app %s, %d %s)\n", file, v.App, len(v.Environments), noun)
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&file, "file", "f", "shipgate.yaml", "the config file, or a directory of app files")
	return cmd
}

// printProblems prints config problems, as text on stderr or as a JSON
// document on stdout, and returns the quiet ExitError of invalid input.
func (a *app) printProblems(problems []config.Problem) error {
	if a.jsonOutput() {
		out := validation{Problems: make([]problem, len(problems))}
		for i, p := range problems {
			out.Problems[i] = problem{File: p.File, Line: p.Line, Column: p.Column, Field: p.Field, Message: p.Message}
		}
		if err := a.printJSON(out); err != nil {
			return err
		}
		return &ExitError{Code: ExitInvalid}
	}
	for _, p := range problems {
		// Problem.String is file:line:column: field: message, the way
		// compilers print, so that editors can jump to the place.
		fmt.Fprintln(a.stderr, p.String())
	}
	s := "s"
	if len(problems) == 1 {
		s = ""
	}
	fmt.Fprintf(a.stderr, "%d problem%s found\n", len(problems), s)
	return &ExitError{Code: ExitInvalid}
}

// configError gives a config that could not be read or is invalid the
// exit code of invalid input; any other error is left alone.
func configError(err error) error {
	var cerr *config.Error
	switch {
	case err == nil:
		return nil
	case errors.As(err, &cerr):
		return &ExitError{Code: ExitInvalid, Err: err}
	case errors.Is(err, fs.ErrNotExist):
		return &ExitError{Code: ExitInvalid, Err: fmt.Errorf("%w (pass the config file with -f)", err)}
	case errors.Is(err, rollout.ErrInvalid):
		// A server refusing what it was given (several apps on a
		// PostgreSQL store): invalid input, said as a sentence without
		// the error kind at its end.
		return &ExitError{Code: ExitInvalid, Err: errors.New(strings.TrimSuffix(err.Error(), ": "+rollout.ErrInvalid.Error()))}
	}
	return err
}
