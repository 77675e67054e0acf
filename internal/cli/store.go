package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/shipgate/shipgate/internal/postgres"
	"github.com/shipgate/shipgate/internal/server"
	"github.com/shipgate/shipgate/internal/store"
)

// envStore names the store when --store is not given; unlike the flag,
// it may hold a password (a process's environment is not shown by ps).
const envStore = "SHIPGATE_STORE"

// storeSpec checks a store URL given on the command line and returns its
// spec. flag names the flag, for the error.
func storeSpec(flag, url, passwordFile, dataDir string, fromEnv bool) (server.StoreSpec, error) {
	spec := server.StoreSpec{URL: url, PasswordFile: passwordFile, DataDir: dataDir}
	kind, err := spec.Kind()
	if err != nil {
		return spec, invalidf("invalid --%s: %v", flag, err)
	}
	if kind == "postgres" && !fromEnv && postgres.HasPassword(url) {
		return spec, invalidf("--%s holds a password, which ps shows to every user of the machine: put it in a file given with --%s-password-file, in $PGPASSWORD or ~/.pgpass, or give the whole URL in $%s",
			flag, flag, envStore)
	}
	if kind == "sqlite" && passwordFile != "" {
		return spec, invalidf("--%s-password-file is for a postgres:// store, not %s", flag, spec)
	}
	return spec, nil
}

// storeMigration is the JSON output of store migrate.
type storeMigration struct {
	From string `json:"from"`
	To   string `json:"to"`
	store.Counts
	ChainVerified bool `json:"chain_verified"`
}

func (a *app) storeCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "store",
		Short: "Work with the control plane's store (SQLite or PostgreSQL)",
		Long: `Work with the store that holds releases, rollouts, environment states,
tokens, flags, DORA changes and incidents, notifications, test runs, route
usage, retirements and the audit log. See docs/ha.md.`,
		Args: subcommandArgs("store"),
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(a.storeMigrateCommand())
	return cmd
}

func (a *app) storeMigrateCommand() *cobra.Command {
	var from, to, fromPassword, toPassword string
	cmd := &cobra.Command{
		Use:   "migrate --from sqlite:PATH --to postgres://USER@HOST/DB",
		Short: "Copy a whole store into a new, empty one: history, tokens, flags and the audit chain",
		Long: `Copy everything a store holds into another, empty, store of any kind:
releases, rollouts (with their IDs), environment states, API tokens (their
hashes), flags, shared rules, flag usage, DORA release changes and
incidents, the notification outbox and the notifier's place in the audit
log, test runs, route usage, retirements, the server secrets (the key
of the release digests: an approved release stays approved, and a release
recorded again with the same variables has the same digest), and the
audit log with its sequence numbers and hashes. A target holding another
server secret of the same name (a server ran on it) is refused. The source's audit chain must verify; the
target's is verified again after the copy, which is one transaction: it
is all there or not at all. Stop the server first, so that nothing is
written to the source meanwhile.

A URL given on the command line must not hold a password (ps shows it):
give it with --to-password-file, $PGPASSWORD or ~/.pgpass. With -o json,
prints the counts copied.`,
		Example: `  shipgate store migrate --from sqlite:/var/lib/shipgate/shipgate.db --to postgres://shipgate@db/shipgate --to-password-file /etc/shipgate/pgpass`,
		Args:    argRange(0, 0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if from == "" || to == "" {
				return invalidf("--from and --to are required, e.g. --from sqlite:%s/shipgate.db --to postgres://shipgate@db/shipgate", a.data)
			}
			src, err := storeSpec("from", from, fromPassword, a.data, false)
			if err != nil {
				return err
			}
			dst, err := storeSpec("to", to, toPassword, a.data, false)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			s, err := server.OpenStore(ctx, src)
			if err != nil {
				return fmt.Errorf("open --from: %w", err)
			}
			defer func() { _ = s.Close() }()
			d, err := server.OpenStore(ctx, dst)
			if err != nil {
				return fmt.Errorf("open --to: %w", err)
			}
			defer func() { _ = d.Close() }()
			// No server may write to either end during the copy.
			for i, st := range []store.Store{s, d} {
				unlock, err := server.LockForCopy(ctx, st, []server.StoreSpec{src, dst}[i], "shipgate store migrate")
				if err != nil {
					return err
				}
				defer func() { _ = unlock() }()
			}
			counts, err := store.Copy(ctx, s, d)
			if err != nil {
				return fmt.Errorf("copy %s to %s: %w", src, dst, err)
			}
			out := storeMigration{From: src.String(), To: dst.String(), Counts: counts, ChainVerified: true}
			return render(a, out, func(m storeMigration) error {
				a.printf("copied %s to %s:\n", m.From, m.To)
				a.printf("  %d releases, %d rollouts, %d environments, %d tokens, %d flags, %d shared rules\n",
					m.Releases, m.Rollouts, m.Envs, m.Tokens, m.Flags, m.Segments)
				a.printf("  %d release changes, %d incidents, %d notifications, %d test runs, %d days of route usage, %d retirements\n",
					m.Changes, m.Incidents, m.Outbox, m.TestRuns, m.RouteDays, m.Retirements)
				a.printf("  %d server secrets (the key of the release digests, so that they stay the same)\n", m.Secrets)
				a.printf("  %d audit events; the chain verifies in the target\n", m.AuditEvents)
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&from, "from", "", "the store to copy: sqlite:PATH or postgres://...")
	cmd.Flags().StringVar(&to, "to", "", "the empty store to copy into: postgres://... or sqlite:PATH")
	cmd.Flags().StringVar(&fromPassword, "from-password-file", "", "file holding the --from PostgreSQL password")
	cmd.Flags().StringVar(&toPassword, "to-password-file", "", "file holding the --to PostgreSQL password")
	return cmd
}
