package cli

import (
	"github.com/spf13/cobra"

	"github.com/shipgate/shipgate/examples/shop/shopapp"
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

// exampleShopCommand runs the example shop app, so that the demo needs
// nothing but this binary. It is hidden: it is not part of Shipgate's
// interface, only the demo's app.
func (a *app) exampleShopCommand() *cobra.Command {
	return &cobra.Command{
		Use:                "example-shop [flags]",
		Short:              "Run the example shop app (used by the demo)",
		Hidden:             true,
		DisableFlagParsing: true,
		RunE: func(_ *cobra.Command, args []string) error {
			if code := shopapp.Main(args); code != 0 {
				return &ExitError{Code: code}
			}
			return nil
		},
	}
}
