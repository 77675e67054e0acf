package cli

import (
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"
)

// Version is the version of shipgate, set at build time with
// -ldflags "-X github.com/shipgate/shipgate/internal/cli.Version=1.2.3".
var Version = "dev"

// versionInfo is the output of the version command.
type versionInfo struct {
	Version  string `json:"version"`
	Go       string `json:"go"`
	Platform string `json:"platform"`
}

func (a *app) versionCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version of shipgate",
		Args:  argRange(0, 0),
		RunE: func(*cobra.Command, []string) error {
			v := versionInfo{Version: Version, Go: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
			// `go install module@version` records the module version.
			if bi, ok := debug.ReadBuildInfo(); ok && v.Version == "dev" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
				v.Version = bi.Main.Version
			}
			if a.jsonOutput() {
				return a.printJSON(v)
			}
			a.printf("shipgate %s (%s %s)\n", v.Version, v.Go, v.Platform)
			return nil
		},
	}
}
