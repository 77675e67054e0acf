package cli

import (
	"context"
	"errors"
	"log/slog"

	"github.com/spf13/cobra"

	"github.com/shipgate/shipgate/internal/proxy"
)

// routerCommand runs one environment's builtin router as its own process.
// The server starts it (see proxy.EnsureProcess), so that users keep being
// served while the server is down; it is hidden because people do not run
// it by hand.
func (a *app) routerCommand() *cobra.Command {
	var (
		cfg      proxy.ProcessConfig
		logLevel string
	)
	cmd := &cobra.Command{
		Use:   "router --env ENV --listen ADDR --state FILE --control SOCKET",
		Short: "Run an environment's builtin router as its own process (started by the server)",
		Long: `Run the builtin router of one environment until SIGTERM or SIGINT. It serves
users on --listen with the routing table saved in --state from the moment it
starts, and takes new tables from the control plane over the unix socket
--control. The server starts and supervises it; it keeps serving when the
server stops or dies. Logs go to stderr.`,
		Hidden: true,
		Args:   argRange(0, 0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			for _, f := range []struct{ name, value string }{
				{"env", cfg.Env}, {"listen", cfg.Listen}, {"state", cfg.StateFile}, {"control", cfg.ControlSocket},
			} {
				if f.value == "" {
					return invalidf("--%s is required; usage: %s", f.name, cmd.UseLine())
				}
			}
			if cfg.StickyHeader != "" && cfg.StickyCookie != "" {
				return invalidf("set --sticky-header or --sticky-cookie, not both")
			}
			var level slog.Level
			if err := level.UnmarshalText([]byte(logLevel)); err != nil {
				return invalidf("invalid --log-level %q: want debug, info, warn or error", logLevel)
			}
			cfg.Logger = slog.New(slog.NewTextHandler(a.stderr, &slog.HandlerOptions{Level: level}))
			err := proxy.RunProcess(cmd.Context(), cfg)
			// Being stopped is how a router is meant to end.
			if errors.Is(err, context.Canceled) && cmd.Context().Err() != nil {
				return nil
			}
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.Env, "env", "", "environment whose traffic the router routes")
	f.StringVar(&cfg.Listen, "listen", "", "address users reach the router on, host:port")
	f.StringVar(&cfg.PreviewListen, "preview-listen", "", "address of the preview listener, host:port (optional)")
	f.StringVar(&cfg.StickyHeader, "sticky-header", "", "request header holding the user key")
	f.StringVar(&cfg.StickyCookie, "sticky-cookie", "", "cookie holding the user key")
	f.StringVar(&cfg.StateFile, "state", "", "file that keeps the last routing table")
	f.StringVar(&cfg.ControlSocket, "control", "", "unix socket of the control API")
	f.StringVar(&logLevel, "log-level", "info", "log level: debug, info, warn or error")
	return cmd
}
