package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/shipgate/shipgate/internal/server"
)

func (a *app) serverCommand() *cobra.Command {
	var (
		file             string
		listen           string
		logLevel         string
		inProcessRouters bool
		tlsCert, tlsKey  string
		storeURL         string
		storePassword    string
		serverID         string
		planeDir         string
		leaseTTL         time.Duration
	)
	cmd := &cobra.Command{
		Use:   "server",
		Short: "Run the control plane: the API, the rollout engine and the routers",
		Long: `Run the control plane for the apps declared in shipgate.yaml (or in -f
DIR, a directory of app files; or in a file with several apps as YAML
documents separated by "---"), until interrupted. SIGHUP (or shipgate
apply) reloads the config without a restart. The API listens on --listen; the database, the admin token and
the instances' logs live in --data. The admin token is written to
<data>/token, where the other commands find it.

Each environment's router runs as a process of its own, started by the
server and left running when the server stops or dies, so users keep
being served; a restarted server reuses it.

The store is the SQLite file <data>/shipgate.db unless --store (or
$SHIPGATE_STORE) names another: sqlite:PATH, or postgres://USER@HOST/DB
(see docs/ha.md). A password does not go in --store, which ps shows: use
--store-password-file, $PGPASSWORD, ~/.pgpass, or the whole URL in
$SHIPGATE_STORE.

With -o json the logs on stderr are JSON lines.`,
		Example: `  shipgate server -f shipgate.yaml
  shipgate server -c apps/    # every *.yaml in apps/, one app each
  shipgate server --listen 0.0.0.0:7070 --tls-cert api.pem --tls-key api-key.pem --data /var/lib/shipgate
  shipgate server --store postgres://shipgate@db/shipgate --store-password-file /etc/shipgate/pgpass`,
		Args: argRange(0, 0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			var level slog.Level
			if err := level.UnmarshalText([]byte(logLevel)); err != nil {
				return invalidf("invalid --log-level %q: want debug, info, warn or error", logLevel)
			}
			hopts := &slog.HandlerOptions{Level: level}
			var h slog.Handler = slog.NewTextHandler(a.stderr, hopts)
			if a.jsonOutput() {
				h = slog.NewJSONHandler(a.stderr, hopts)
			}
			if (tlsCert == "") != (tlsKey == "") {
				return invalidf("--tls-cert and --tls-key go together: give both, or neither")
			}
			if !server.IsLoopback(listen) && tlsCert == "" {
				// Said on stderr before anything else: tokens would cross
				// the network in clear text.
				fmt.Fprintf(a.stderr, "warning: the API listens on %s, beyond this machine, in plain HTTP: tokens cross the network readable by anyone on the way. Give --tls-cert and --tls-key, or put a TLS-terminating proxy in front (docs/security.md)\n", listen)
			}
			fromEnv := false
			if !cmd.Flags().Changed("store") {
				storeURL, fromEnv = a.getenv(envStore), true
			}
			spec, err := storeSpec("store", storeURL, storePassword, a.data, fromEnv)
			if err != nil {
				return err
			}
			opts := server.Options{
				ConfigPath: file,
				DataDir:    a.data,
				Listen:     listen,
				Logger:     slog.New(h),
				Out:        a.stdout,
				TLSCert:    tlsCert,
				TLSKey:     tlsKey,

				ServerID: serverID, PlaneDir: planeDir, LeaseTTL: leaseTTL,
			}
			if leaseTTL < 0 || (leaseTTL > 0 && leaseTTL < 300*time.Millisecond) {
				return invalidf("--lease-ttl %s: want at least 300ms (default 5s)", leaseTTL)
			}
			opts.Store, opts.StorePasswordFile = spec.URL, spec.PasswordFile
			if !inProcessRouters {
				// Each environment's router runs as a process of its own,
				// so that users keep being served when the server dies.
				exe, err := os.Executable()
				if err != nil {
					return fmt.Errorf("find own executable for the routers: %w", err)
				}
				opts.RouterCommand = []string{exe, "router"}
			}
			err = server.Run(cmd.Context(), opts)
			// Being interrupted is how a server is meant to stop.
			if errors.Is(err, context.Canceled) && cmd.Context().Err() != nil {
				return nil
			}
			return configError(err)
		},
	}
	cmd.Flags().StringVarP(&file, "file", "f", "shipgate.yaml", "the config file (one app, or several as YAML documents) or a directory of app files")
	cmd.Flags().StringVarP(&file, "config", "c", "shipgate.yaml", "the same as --file")
	cmd.Flags().StringVar(&listen, "listen", "127.0.0.1:7070", "address the API listens on")
	cmd.Flags().StringVar(&logLevel, "log-level", "info", "log level: debug, info, warn or error")
	cmd.Flags().StringVar(&tlsCert, "tls-cert", "", "PEM file of the API's TLS certificate (with its chain); with --tls-key the API speaks HTTPS only")
	cmd.Flags().StringVar(&tlsKey, "tls-key", "", "PEM file of the private key of --tls-cert")
	cmd.Flags().StringVar(&serverID, "server-id", "", "this server's name among those sharing a PostgreSQL store (default hostname:API-port)")
	cmd.Flags().StringVar(&planeDir, "plane-dir", "", "where the routers' sockets and state and the instances' logs live (default --data); servers on one machine sharing a store share it")
	cmd.Flags().DurationVar(&leaseTTL, "lease-ttl", 0, "on PostgreSQL, how long the leader's lease lasts unrenewed: the longest a dead leader's rollouts wait (default 5s)")
	cmd.Flags().BoolVar(&inProcessRouters, "in-process-routers", false, "run the routers inside the server (they stop with it) instead of as their own processes")
	cmd.Flags().StringVar(&storeURL, "store", "", "the store: sqlite:PATH or postgres://USER@HOST/DB (env "+envStore+"; default <data>/shipgate.db)")
	cmd.Flags().StringVar(&storePassword, "store-password-file", "", "file holding the PostgreSQL password of --store")
	return cmd
}
