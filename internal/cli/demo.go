package cli

import (
	"github.com/spf13/cobra"

	"github.com/shipgate/shipgate/internal/demo"
)

func (a *app) demoCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "demo",
		Short: "Watch a healthy canary promoted and a bad one rolled back, in a sandbox",
		Long: `Run a self-contained story in a temporary directory: a control plane, the
example shop behind the builtin router under steady traffic, a healthy
release promoted step by step, then a bad release (failing payments) that
Shipgate rolls back by itself. Nothing outside the temporary directory is
touched. With -o json the final summary is printed as JSON.`,
		Args: argRange(0, 0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return demo.Run(cmd.Context(), a.stdout, demo.Options{JSON: a.jsonOutput()})
		},
	}
}
