// Package cli is the shipgate command line: a cobra command tree whose
// commands talk to a control plane through the API client, or run one
// (server, demo), and print text for people or JSON for programs.
//
// Exit codes are part of the interface, for CI: 0 ok, 1 error, 2 invalid
// input or config, 3 the deploy was rolled back or failed, 4 a gate
// refused the deploy (or, for plan and drift, would refuse it).
package cli

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/shipgate/shipgate/internal/api"
	"github.com/shipgate/shipgate/internal/rollout"
	"github.com/shipgate/shipgate/internal/server"
)

// Exit codes of the shipgate command.
const (
	// ExitOK means the command did what it was asked.
	ExitOK = 0
	// ExitFailure means the command failed: the server could not be
	// reached, a token was refused, the wait timed out...
	ExitFailure = 1
	// ExitInvalid means the input was wrong: a flag, an argument, a
	// config file, or a request the server rejected as invalid.
	ExitInvalid = 2
	// ExitRolledBack means the deploy (or rollback, or drill) ended rolled
	// back or failed.
	ExitRolledBack = 3
	// ExitGate means a deploy gate (pipeline, checks, approval, drill,
	// drift) refused the deploy, or for plan and drift would refuse it.
	ExitGate = 4
)

// ExitError is an error with the exit code it should end the command
// with. An ExitError without Err ends the command quietly: what went wrong
// was already printed.
type ExitError struct {
	Code int
	Err  error
}

// Error returns the message of Err.
func (e *ExitError) Error() string {
	if e.Err == nil {
		return fmt.Sprintf("exit status %d", e.Code)
	}
	return e.Err.Error()
}

// Unwrap returns Err.
func (e *ExitError) Unwrap() error { return e.Err }

// invalidf returns an ExitError for invalid input.
func invalidf(format string, args ...any) error {
	return &ExitError{Code: ExitInvalid, Err: fmt.Errorf(format, args...)}
}

// Defaults of the global flags.
const (
	defaultServer = "http://127.0.0.1:7070"
	defaultData   = ".shipgate"
	// tokenFile is the name of the token file in the data dir; the server
	// writes its admin token there.
	tokenFile = "token"
)

// Environment variables that stand in for global flags.
const (
	envServer = "SHIPGATE_SERVER"
	envToken  = "SHIPGATE_TOKEN"
	envData   = "SHIPGATE_DATA"
	// envCACert names a PEM file of the CA to trust for an HTTPS server
	// whose certificate the system does not trust (self-signed).
	envCACert = "SHIPGATE_CA_CERT"
)

// Output formats.
const (
	outputText = "text"
	outputJSON = "json"
)

// Main runs the shipgate command with args (without the program name) and
// returns its exit code. Errors are printed once, on stderr, as "error: ...".
func Main(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	return run(ctx, args, deps{
		stdin:         stdin,
		stdout:        stdout,
		stderr:        stderr,
		getenv:        os.Getenv,
		now:           time.Now,
		pollInterval:  500 * time.Millisecond,
		progressEvery: 5 * time.Second,
	})
}

// deps is what a run of the command gets from outside. Tests set their
// own getenv and a faster poll.
type deps struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	getenv         func(string) string
	now            func() time.Time
	// pollInterval is the time between two polls of a rollout by --wait.
	pollInterval time.Duration
	// progressEvery is the longest --wait stays silent in text mode.
	progressEvery time.Duration
}

func run(ctx context.Context, args []string, d deps) int {
	a := &app{deps: d}
	root := a.rootCommand()
	if args == nil {
		// cobra reads os.Args when given nil.
		args = []string{}
	}
	root.SetArgs(args)
	root.SetIn(d.stdin)
	root.SetOut(d.stdout)
	root.SetErr(d.stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return ExitOK
	}
	err = a.explain(ctx, err)
	code := exitCode(err)
	var ee *ExitError
	if !errors.As(err, &ee) || ee.Err != nil {
		fmt.Fprintf(d.stderr, "error: %s\n", err)
		if a.output == outputJSON && !a.printedJSON {
			a.printJSONError(err, code)
		}
	}
	return code
}

// jsonError is what -o json prints on stdout when a command fails, so
// that a program reading stdout gets JSON whatever happened; stderr has
// the same message for people.
type jsonError struct {
	Error struct {
		Message string `json:"message"`
		// ExitCode is the command's exit code.
		ExitCode int `json:"exit_code"`
		// Code and Field are the API's, when the server refused.
		Code  string `json:"code,omitempty"`
		Field string `json:"field,omitempty"`
	} `json:"error"`
}

func (a *app) printJSONError(err error, code int) {
	var je jsonError
	je.Error.Message, je.Error.ExitCode = err.Error(), code
	var ae *api.APIError
	if errors.As(err, &ae) {
		je.Error.Code, je.Error.Field = ae.Code, ae.Field
	}
	b, merr := json.Marshal(je)
	if merr != nil {
		return
	}
	fmt.Fprintf(a.stdout, "%s\n", b)
}

// exitCode returns the exit code err ends the command with.
func exitCode(err error) int {
	var ee *ExitError
	if errors.As(err, &ee) {
		return ee.Code
	}
	var ge *rollout.GateError
	if errors.As(err, &ge) {
		return ExitGate
	}
	var ae *api.APIError
	if errors.As(err, &ae) && (ae.Status == http.StatusBadRequest || ae.Status == http.StatusRequestEntityTooLarge) {
		return ExitInvalid
	}
	return ExitFailure
}

// explain adds to err what a person needs to fix it: where the token
// came from, which server was tried.
func (a *app) explain(ctx context.Context, err error) error {
	var ee *ExitError
	var ae *api.APIError
	var ue *url.Error
	switch {
	case errors.As(err, &ee):
		// Already says what to do.
		return err
	case errors.As(err, &ae) && ae.Status == http.StatusUnauthorized:
		return fmt.Errorf("the server at %s (from %s) refused the token: %w; the token comes from --token, $%s or %s: is it this server's? (set the server with --server or $%s)",
			a.server, a.serverFrom, err, envToken, a.tokenPath(), envServer)
	case ctx.Err() != nil && errors.Is(err, ctx.Err()):
		return fmt.Errorf("interrupted: %w", err)
	case errors.As(err, &ue):
		return fmt.Errorf("cannot reach the shipgate server at %s (from %s): %w; is `shipgate server` running? (set it with --server or $%s)", a.server, a.serverFrom, ue.Err, envServer)
	}
	return err
}

// app holds the global flags of one run.
type app struct {
	deps
	server string
	// serverFrom says where server came from, for errors.
	serverFrom string
	// printedJSON is set once a JSON document went to stdout: a failing
	// command that printed its result adds no error document.
	printedJSON bool
	token       string
	data        string
	output      string
	// retryFor bounds how long a request that changes something is sent
	// again, with the same Idempotency-Key, when its answer was lost.
	retryFor time.Duration
}

func (a *app) rootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:   "shipgate",
		Short: "Deploy apps through metric-gated canaries",
		Long: `Shipgate takes a release from "merged" to "live for everyone": it shows the
new version to a small share of users first, watches its error rate and
latency against the stable version, and rolls it back by itself when the
numbers go bad.

Exit codes: 0 ok, 1 error, 2 invalid input or config, 3 rolled back,
4 refused by a gate.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		// Without Args, cobra would print help and succeed on a mistyped
		// command; this makes it an error with exit code 2.
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return invalidf("unknown command %q; see 'shipgate --help'", args[0])
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			return a.resolveGlobals(cmd)
		},
	}
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error {
		return &ExitError{Code: ExitInvalid, Err: err}
	})

	pf := root.PersistentFlags()
	pf.StringVar(&a.server, "server", defaultServer, "URL of the shipgate server (env "+envServer+")")
	pf.StringVar(&a.token, "token", "", "API token (env "+envToken+"; default: the file <data>/token)")
	pf.StringVar(&a.data, "data", defaultData, "data directory of the server and of its token file (env "+envData+")")
	pf.StringVarP(&a.output, "output", "o", outputText, "output format: text or json")
	pf.DurationVar(&a.retryFor, "retry-for", time.Minute, "how long a command that changes something sends its request again, with the same Idempotency-Key, when the server cannot be reached or answers 502/503/504 (0: once)")

	root.AddCommand(
		a.serverCommand(),
		a.validateCommand(),
		a.deployCommand(),
		a.statusCommand(),
		a.rollbackCommand(),
		a.releaseCommand(),
		a.planCommand(),
		a.approveCommand(),
		a.promoteCommand(),
		a.pauseCommand(),
		a.resumeCommand(),
		a.retryCommand(),
		a.driftCommand(),
		a.drillCommand(),
		a.historyCommand(),
		a.auditCommand(),
		a.demoCommand(),
		a.exampleShopCommand(),
		a.routerCommand(),
		a.flagsCommand(),
		a.versionCommand(),
		a.migrateCommand(),
		a.tokenCommand(),
		a.downCommand(),
		a.doraCommand(),
		a.incidentCommand(),
		a.reportCommand(),
		a.notificationsCommand(),
		a.doctorCommand(),
		a.testsCommand(),
		a.retireCommand(),
		a.storeCommand(),
		a.applyCommand(),
		a.kubernetesCommand(),
	)
	return root
}

// resolveGlobals fills the global flags that were not given from the
// environment and checks them.
func (a *app) resolveGlobals(cmd *cobra.Command) error {
	flags := cmd.Flags()
	if !flags.Changed("data") {
		if v := a.getenv(envData); v != "" {
			a.data = v
		}
	}
	a.serverFrom = "--server"
	if !flags.Changed("server") {
		a.serverFrom = "the default"
		if v := a.getenv(envServer); v != "" {
			a.server, a.serverFrom = v, "$"+envServer
		} else if b, err := os.ReadFile(filepath.Join(a.data, server.APIURLFile)); err == nil && strings.TrimSpace(string(b)) != "" { //nolint:gosec // the data dir the user chose
			// The server running on this data dir wrote where it listens.
			a.server, a.serverFrom = strings.TrimSpace(string(b)), filepath.Join(a.data, server.APIURLFile)
		}
	}
	if !flags.Changed("token") {
		a.token = a.getenv(envToken)
	}
	switch a.output {
	case outputText, outputJSON:
	case outputMarkdown, outputHTML: // only where a command offers them (dora.go)
		if !slices.Contains(strings.Fields(cmd.Annotations[annotationFormats]), a.output) {
			return invalidf("invalid --output %q for %s: want text or json", a.output, cmd.CommandPath())
		}
	default:
		return invalidf("invalid --output %q: want text or json", a.output)
	}
	if a.retryFor < 0 {
		return invalidf("invalid --retry-for %s: want 0 (send once) or more", a.retryFor)
	}
	u, err := url.Parse(a.server)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return invalidf("invalid --server %q: want a URL such as %s", a.server, defaultServer)
	}
	return nil
}

func (a *app) tokenPath() string { return filepath.Join(a.data, tokenFile) }

// client returns an API client for the server, with the token from
// --token, $SHIPGATE_TOKEN or the data dir's token file, in that order.
func (a *app) client() (*api.Client, error) {
	token := a.token
	if token == "" {
		b, err := os.ReadFile(a.tokenPath()) //nolint:gosec // the token file of the data dir the user chose
		switch {
		case errors.Is(err, os.ErrNotExist):
			// Go on without a token: the server's 401 says what is missing.
		case err != nil:
			return nil, fmt.Errorf("read token: %w", err)
		default:
			token = strings.TrimSpace(string(b))
		}
	}
	hc := &http.Client{Timeout: 30 * time.Second}
	if ca := a.getenv(envCACert); ca != "" {
		// A server with its own certificate authority (a self-signed
		// certificate): trust that CA, besides the system's.
		pem, err := os.ReadFile(ca) //nolint:gosec // a file the user names
		if err != nil {
			return nil, invalidf("read $%s: %v", envCACert, err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, invalidf("$%s (%s) holds no PEM certificate", envCACert, ca)
		}
		hc.Transport = &http.Transport{Proxy: http.ProxyFromEnvironment, TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}
	}
	return api.NewClient(a.server, token, hc).WithRetry(api.RetryPolicy{For: a.retryFor,
		Notify: func(method, path string, attempt int, err error, wait time.Duration) {
			fmt.Fprintf(a.stderr, "%s %s: attempt %d failed (%v); sending it again with the same %s in %s, until --retry-for %s\n",
				method, path, attempt, err, api.IdempotencyKeyHeader, wait, a.retryFor)
		}}), nil
}

// appClient returns a client of the server and the APP argument, or the
// app the server manages when there is none.
func (a *app) appClient(ctx context.Context, args []string) (*api.Client, string, error) {
	c, err := a.client()
	if err != nil {
		return nil, "", err
	}
	if len(args) > 0 {
		return c, args[0], nil
	}
	st, err := c.Status(ctx, "")
	if err != nil {
		return nil, "", err
	}
	return c, st.App, nil
}

// envUsage is the help of --env for the commands that act on one
// environment.
const envUsage = `environment (default "production" when the app has it, else its only one)`

// subcommandArgs returns the cobra.PositionalArgs of a command that only
// groups subcommands: as for the root, a mistyped subcommand is an error
// with ExitInvalid, not help.
func subcommandArgs(parent string) cobra.PositionalArgs {
	return func(_ *cobra.Command, args []string) error {
		if len(args) > 0 {
			return invalidf("unknown command %q for 'shipgate %s'; see 'shipgate %s --help'", args[0], parent, parent)
		}
		return nil
	}
}

// argRange returns a cobra.PositionalArgs that accepts min to max arguments
// and otherwise fails with ExitInvalid and the command's usage line.
func argRange(minN, maxN int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) < minN || len(args) > maxN {
			return invalidf("wrong number of arguments (got %d); usage: %s", len(args), cmd.UseLine())
		}
		return nil
	}
}
