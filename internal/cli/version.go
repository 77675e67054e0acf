package cli

import (
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"
)

// Version is the version of shipgate, set at build time with
// -ldflags "-X github.com/shipgate/shipgate/internal/cli.Version=1.2.3".
var Version = "dev"

// Commit is the commit shipgate was built from, set at build time with
// -ldflags "-X github.com/shipgate/shipgate/internal/cli.Commit=$(git rev-parse HEAD)"
// (make build does); without it, the VCS revision Go stamped, if any.
var Commit = ""

// versionInfo is the output of the version command.
type versionInfo struct {
	Version string `json:"version"`
	// Module is the main module's path and version as Go recorded them
	// ("(devel)" for a build from a checkout).
	Module string `json:"module,omitempty"`
	// Commit is the VCS revision the binary was built from, and Dirty
	// whether the tree had uncommitted changes; CommitTime is its time.
	Commit     string `json:"commit,omitempty"`
	CommitTime string `json:"commit_time,omitempty"`
	Dirty      bool   `json:"dirty,omitempty"`
	Go         string `json:"go"`
	Platform   string `json:"platform"`
}

// buildVersion returns what the binary knows of its build.
func buildVersion() versionInfo {
	v := versionInfo{Version: Version, Commit: Commit, Go: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return v
	}
	v.Module = bi.Main.Path + " " + bi.Main.Version
	// `go install module@version` records the module version.
	if v.Version == "dev" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		v.Version = bi.Main.Version
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			if v.Commit == "" {
				v.Commit = s.Value
			}
		case "vcs.time":
			v.CommitTime = s.Value
		case "vcs.modified":
			v.Dirty = s.Value == "true"
		}
	}
	return v
}

func (a *app) versionCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version of shipgate, the commit it was built from, and its module",
		Args:  argRange(0, 0),
		RunE: func(*cobra.Command, []string) error {
			v := buildVersion()
			if a.jsonOutput() {
				return a.printJSON(v)
			}
			commit := "commit unknown"
			if v.Commit != "" {
				commit = "commit " + v.Commit
				if v.Dirty {
					commit += " with uncommitted changes"
				}
				if v.CommitTime != "" {
					commit += " of " + v.CommitTime
				}
			}
			a.printf("shipgate %s, %s (module %s; %s %s)\n", v.Version, commit, orDash(v.Module), v.Go, v.Platform)
			return nil
		},
	}
}
