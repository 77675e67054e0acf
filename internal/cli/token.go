package cli

import (
	"github.com/spf13/cobra"

	"github.com/shipgate/shipgate/internal/api"
	"github.com/shipgate/shipgate/internal/auth"
)

func (a *app) tokenCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "token",
		Short: "Manage API tokens: who may read, deploy or administer (needs an admin token)",
		Long: `Make, list and revoke the API tokens of people and programs. A token has a
name and a role:

  viewer    reads: status, history, audit, metrics, plans, drift
  deployer  also deploys, rolls back, records releases, approves, drills
  admin     also manages tokens and flag client keys

What a token does is recorded in the audit log as "user:<name>", and so is
each token made or revoked. The server keeps only the SHA-256 of a secret:
it is shown once, when the token is made. Flag client keys, which only
evaluate flags, are made with 'shipgate flags keys create' and listed and
revoked here. See docs/security.md.`,
		Args: subcommandArgs("token"),
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(a.tokenCreateCommand(), a.tokenListCommand(), a.tokenRevokeCommand())
	return cmd
}

func (a *app) tokenCreateCommand() *cobra.Command {
	var role string
	cmd := &cobra.Command{
		Use:   "create NAME --role viewer|deployer|admin",
		Short: "Make a token and print its secret, once",
		Long: `Make a token named NAME with a role, and print its secret. The secret is
shown this once: store it where its holder keeps secrets (a CI secret, a
password manager). Use it with --token or $SHIPGATE_TOKEN. With -o json,
prints {"name", "role", "secret"}.`,
		Example: `  shipgate token create ci --role deployer
  shipgate token create grafana --role viewer -o json`,
		Args: argRange(1, 1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if role == "" {
				return invalidf("--role is required: viewer, deployer or admin")
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			nt, err := c.CreateToken(cmd.Context(), api.TokenRequest{Name: args[0], Role: auth.Role(role)})
			if err != nil {
				return err
			}
			return render(a, nt, a.printNewToken)
		},
	}
	cmd.Flags().StringVar(&role, "role", "", "viewer, deployer or admin (required)")
	return cmd
}

func (a *app) printNewToken(nt api.NewToken) error {
	a.printf("token %s made with the role %s. Its secret, shown this once:\n\n", nt.Name, nt.Role)
	a.printf("%s\n\n", nt.Secret)
	a.printf("Store it now, for example as a CI secret; Shipgate keeps only its hash.\n")
	a.printf("Use it with --token or $%s; revoke it with: shipgate token revoke %s\n", envToken, nt.Name)
	return nil
}

func (a *app) tokenListCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List the tokens and flag client keys: name, role, when made (never secrets)",
		Args:  argRange(0, 0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			tokens, err := c.ListTokens(cmd.Context())
			if err != nil {
				return err
			}
			return render(a, tokens, a.printTokens)
		},
	}
}

func (a *app) printTokens(tokens []auth.Token) error {
	now := a.now()
	t := newTable(a.stdout, "NAME", "ROLE", "CREATED")
	for _, tok := range tokens {
		t.row(tok.Name, string(tok.Role), clock(tok.CreatedAt, now))
	}
	return t.flush()
}

func (a *app) tokenRevokeCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "revoke NAME",
		Short: "Revoke a token or a flag client key: its secret stops working at once",
		Long: `Revoke the token or flag client key named NAME: its secret stops working
at once. A token cannot revoke itself; to replace the admin token, stop the
server, delete <data>/token and start the server again.`,
		Example: `  shipgate token revoke ci`,
		Args:    argRange(1, 1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			if err := c.RevokeToken(cmd.Context(), args[0]); err != nil {
				return err
			}
			if a.jsonOutput() {
				return a.printJSON(map[string]string{"revoked": args[0]})
			}
			a.printf("token %s revoked\n", args[0])
			return nil
		},
	}
}
