package cli

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/shipgate/shipgate/internal/migrate"
	"github.com/shipgate/shipgate/internal/migrate/sqldb"
)

// migrationReport is the JSON output of migrate check and migrate verify.
type migrationReport struct {
	Dir        string             `json:"dir"`
	OK         bool               `json:"ok"`
	Migrations int                `json:"migrations"`
	Errors     int                `json:"errors"`
	Warnings   int                `json:"warnings"`
	SeedAfter  int64              `json:"seed_after,omitempty"`
	Findings   []migrationFinding `json:"findings"`
	// Verified, NotVerified, Irreversible, DataChecked and DataNotChecked
	// are verify's: see migrate.Report.
	Verified       *int                 `json:"verified,omitempty"`
	NotVerified    []migrate.Unverified `json:"not_verified,omitempty"`
	Irreversible   []migrate.Unverified `json:"irreversible,omitempty"`
	DataChecked    int                  `json:"data_checked,omitempty"`
	DataNotChecked []migrate.Unverified `json:"data_not_checked,omitempty"`
}

// migrationFinding is a finding as migrate check and verify print it in
// JSON, its own type so that the output keeps its shape whatever
// migrate.Finding becomes.
type migrationFinding struct {
	Severity  string `json:"severity"`
	File      string `json:"file,omitempty"`
	Line      int    `json:"line,omitempty"`
	Version   int64  `json:"version,omitempty"`
	Migration string `json:"migration,omitempty"`
	Message   string `json:"message"`
}

// migrationStatus is the JSON output of migrate status.
type migrationStatus struct {
	Dir string `json:"dir"`
	migrate.Status
}

// migrationChange is the JSON output of migrate up and down.
type migrationChange struct {
	Applied []int64 `json:"applied,omitempty"`
	Undone  []int64 `json:"undone,omitempty"`
	Version int64   `json:"version"`
}

func (a *app) migrateCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "migrate",
		Short: "Check, verify and apply schema migrations that can always be undone",
		Long: `Work with a directory of SQL migrations as golang-migrate (NNN_name.up.sql
and NNN_name.down.sql), goose (NNN_name.sql with -- +goose Up and Down),
dbmate (-- migrate:up and -- migrate:down), sql-migrate (-- +migrate Up and
Down) or Flyway (V1__name.sql undone by U1__name.sql) write them, or as
NNN.up.sql and NNN.down.sql; on PostgreSQL (--database postgres://...) or
SQLite (--database sqlite:PATH). Every .sql file in the directory must be a
migration, or be named in --ignore.

check and verify exit 2 when a migration cannot be undone or a file cannot
be read; up, down and resolve exit 1 when the database refuses. See
docs/migrations.md.`,
		Args: argRange(0, 0),
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.PersistentFlags().String("format", "auto", "read every file in this format: auto, golang-migrate, stem, goose, dbmate, sql-migrate, flyway")
	cmd.PersistentFlags().StringSlice("ignore", nil, ".sql files of the directory that are not migrations (names or patterns; repeatable)")
	cmd.AddCommand(
		a.migrateCheckCommand(),
		a.migrateVerifyCommand(),
		a.migrateUpCommand(),
		a.migrateDownCommand(),
		a.migrateStatusCommand(),
		a.migrateResolveCommand(),
	)
	return cmd
}

// loadMigrations reads a migration directory, in the format of --format,
// leaving out the files of --ignore and the extra ones (the seed and
// setup files, when they live in it); a directory that cannot be read as
// migrations is invalid input, printed like check's findings.
func (a *app) loadMigrations(cmd *cobra.Command, dir string, extra ...string) ([]migrate.Migration, error) {
	name, _ := cmd.Flags().GetString("format")
	format, err := migrate.ParseFormat(name)
	if err != nil {
		return nil, invalidf("--format: %w", err)
	}
	ignore, _ := cmd.Flags().GetStringSlice("ignore")
	for _, f := range extra {
		if f != "" && filepath.Clean(filepath.Dir(f)) == filepath.Clean(dir) {
			ignore = append(ignore, filepath.Base(f))
		}
	}
	migs, err := migrate.Load(dir, migrate.LoadOptions{Format: format, Ignore: ignore})
	var merr *migrate.Error
	switch {
	case errors.As(err, &merr):
		if perr := a.printReport(dir, migrate.Report{Findings: merr.Findings}, false); perr != nil {
			return nil, perr
		}
		return nil, &ExitError{Code: ExitInvalid}
	case errors.Is(err, fs.ErrNotExist):
		return nil, invalidf("%w (give the directory of the migrations)", err)
	case err != nil:
		return nil, err
	}
	return migs, nil
}

// printReport prints a check or (verified) verify report, as text or
// JSON, and returns the quiet ExitError of invalid input if it has errors
// or, for verify, migrations it could not verify.
func (a *app) printReport(dir string, rep migrate.Report, verified bool) error {
	findings := rep.Findings
	out := migrationReport{Dir: dir, Migrations: rep.Migrations, SeedAfter: rep.SeedAfter, Findings: make([]migrationFinding, len(findings)),
		NotVerified: rep.NotVerified, Irreversible: rep.Irreversible, DataChecked: rep.DataChecked, DataNotChecked: rep.DataNotChecked}
	if verified {
		out.Verified = &rep.Verified
	}
	for i, f := range findings {
		out.Findings[i] = migrationFinding{Severity: string(f.Severity), File: f.File, Line: f.Line, Version: f.Version, Migration: f.Migration, Message: f.Message}
		if f.Severity == migrate.SeverityError {
			out.Errors++
		} else {
			out.Warnings++
		}
	}
	out.OK = out.Errors == 0 && len(rep.NotVerified) == 0
	if a.jsonOutput() {
		if err := a.printJSON(out); err != nil {
			return err
		}
	} else {
		for _, f := range findings {
			// file:line: severity: migration: message, the way compilers
			// print, so that editors can jump to the place.
			a.printf("%s\n", f)
		}
		a.printf("%s: %d migrations, %s, %s\n", dir, rep.Migrations, plural(out.Errors, "error", "errors"), plural(out.Warnings, "warning", "warnings"))
		if verified {
			a.printf("verified %d of %d", rep.Verified, rep.Migrations)
			if len(rep.NotVerified) > 0 {
				a.printf("; not verified: %s", unverifiedList(rep.NotVerified))
			}
			a.printf("\n")
			if rep.SeedAfter != 0 {
				a.printf("seeded data: checked %d migrations, from version %d (where the seed went in) up", rep.DataChecked, rep.SeedAfter)
				if len(rep.DataNotChecked) > 0 {
					a.printf("; not checked: %s", unverifiedList(rep.DataNotChecked))
				}
				a.printf("\n")
			}
			if len(rep.Irreversible) > 0 {
				a.printf("irreversible on purpose, a deploy needs an approval: %s\n", unverifiedList(rep.Irreversible))
			}
		}
	}
	if !out.OK {
		return &ExitError{Code: ExitInvalid}
	}
	return nil
}

// unverifiedList reads "005_x (up fails), 007_y (no down migration)".
func unverifiedList(us []migrate.Unverified) string {
	parts := make([]string, len(us))
	for i, u := range us {
		parts[i] = u.Migration + " (" + u.Reason + ")"
	}
	return strings.Join(parts, ", ")
}

func (a *app) migrateCheckCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "check DIR",
		Short: "Check migrations without a database: every up has a down, destructive statements",
		Long: `Read the migrations in DIR and report, at file:line, every up without a
down or with an empty one (errors: exit 2), and statements that destroy
data or can fail on existing rows (warnings: exit 0): DROP TABLE, DROP
COLUMN, narrowing type changes, SET NOT NULL, ADD COLUMN ... NOT NULL
without a DEFAULT.`,
		Example: `  shipgate migrate check db/migrations
  shipgate migrate check db/migrations -o json`,
		Args: argRange(1, 1),
		RunE: func(cmd *cobra.Command, args []string) error {
			migs, err := a.loadMigrations(cmd, args[0])
			if err != nil {
				return err
			}
			return a.printReport(args[0], migrate.Report{Migrations: len(migs), Findings: migrate.Check(migs)}, false)
		},
	}
}

func (a *app) migrateVerifyCommand() *cobra.Command {
	var database, seedFile, setupFile string
	var seedAfter int64
	var foreignKeys bool
	cmd := &cobra.Command{
		Use:   "verify DIR --database URL|sqlite [--seed FILE]",
		Short: "Run every migration up, down and up on a scratch database and compare",
		Long: `Apply the migrations in DIR to a scratch database, one by one, running each
up, down and up again, and report every migration whose down does not give
back the schema it started from (tables, columns, types, nullability,
defaults, indexes, constraints). With --seed, also apply the seed's rows
once its tables exist, and report migrations that fail over them or lose
them on the way down and up again. A migration that fails is reported and
the others still run; the last line says "verified N of M" and names every
migration not verified, and why.

--setup runs a SQL file on the scratch database before the migrations:
what they expect to find there (a runner's bookkeeping table, an
extension, a function). On SQLite, foreign keys are off while migrating,
as SQLite and the common runners leave them, and PRAGMA foreign_key_check
runs after each script; --sqlite-foreign-keys turns them on.

--database sqlite verifies on a temporary SQLite file. With a PostgreSQL
URL, a database shipgate_verify_<random> is created on that server and
dropped at the end; the user needs the CREATEDB privilege.

Exit 2 when a migration cannot be undone or was not verified, 0
otherwise (migrations marked -- shipgate:irreversible are listed, and need
an approval at deploy).`,
		Example: `  shipgate migrate verify db/migrations --database sqlite
  shipgate migrate verify db/migrations --database postgres://ci@127.0.0.1/app --seed db/seed.sql`,
		Args: argRange(1, 1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if database == "" {
				return invalidf("--database is required: a postgres:// URL or sqlite")
			}
			migs, err := a.loadMigrations(cmd, args[0], seedFile, setupFile)
			if err != nil {
				return err
			}
			opts := migrate.VerifyOptions{SeedAfter: seedAfter, SQLiteForeignKeys: foreignKeys}
			if setupFile != "" {
				opts.Setup, err = os.ReadFile(setupFile) //nolint:gosec // the setup file the user named
				if err != nil {
					return invalidf("read setup: %w", err)
				}
				opts.SetupFile = setupFile
			}
			if seedFile != "" {
				opts.Seed, err = os.ReadFile(seedFile) //nolint:gosec // the seed file the user named
				if err != nil {
					return invalidf("read seed: %w", err)
				}
				opts.SeedFile = seedFile
			}
			report, err := sqldb.Verify(cmd.Context(), database, migs, opts)
			if err != nil {
				return databaseError(err)
			}
			return a.printReport(args[0], report, true)
		},
	}
	cmd.Flags().StringVar(&setupFile, "setup", "", "SQL file run on the scratch database before the migrations")
	cmd.Flags().BoolVar(&foreignKeys, "sqlite-foreign-keys", false, "SQLite: enforce foreign keys while migrating (default off, with PRAGMA foreign_key_check after each script)")
	cmd.Flags().StringVar(&database, "database", "", "postgres:// URL of a server to create a scratch database on, or sqlite for a scratch file")
	cmd.Flags().StringVar(&seedFile, "seed", "", "SQL file inserting representative rows")
	cmd.Flags().Int64Var(&seedAfter, "seed-after", 0, "apply the seed after this version (default: after the first migration it fits)")
	return cmd
}

// databaseError gives an invalid database URL the exit code of invalid
// input; any other error is left alone.
func databaseError(err error) error {
	if errors.Is(err, sqldb.ErrDatabaseURL) {
		return &ExitError{Code: ExitInvalid, Err: err}
	}
	return err
}

// openRunner reads the migrations of dir and connects to the database.
func (a *app) openRunner(cmd *cobra.Command, dir, database string) (*sqldb.Runner, error) {
	if database == "" {
		return nil, invalidf("--database is required: postgres://USER@HOST/DB or sqlite:PATH")
	}
	migs, err := a.loadMigrations(cmd, dir)
	if err != nil {
		return nil, err
	}
	fk, _ := cmd.Flags().GetBool("sqlite-foreign-keys")
	r, err := sqldb.Open(cmd.Context(), database, migs, sqldb.SQLiteForeignKeys(fk))
	if err != nil {
		return nil, databaseError(err)
	}
	return r, nil
}

func (a *app) migrateUpCommand() *cobra.Command {
	var database string
	var to int64
	cmd := &cobra.Command{
		Use:   "up DIR --database URL [--to N]",
		Short: "Apply pending migrations, each in its own transaction",
		Long: `Apply the pending migrations in DIR, in order, up to version N (all by
default), each in a transaction of its own unless it must run outside one
(goose NO TRANSACTION, sql-migrate notransaction, dbmate transaction:false,
CREATE INDEX CONCURRENTLY alone in a golang-migrate file). A failure stops there; the migrations before it stay
applied, and 'shipgate migrate status' says where it stopped and what to do.`,
		Example: `  shipgate migrate up db/migrations --database postgres://app@db/app
  shipgate migrate up db/migrations --database sqlite:app.db --to 12`,
		Args: argRange(1, 1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.migrateChange(cmd, args[0], database, false, func(ctx context.Context, r *sqldb.Runner) ([]int64, error) {
				return r.Up(ctx, to)
			})
		},
	}
	databaseFlag(cmd, &database)
	cmd.Flags().Int64Var(&to, "to", 0, "apply up to this version (default: all)")
	return cmd
}

func (a *app) migrateDownCommand() *cobra.Command {
	var database string
	var to int64
	cmd := &cobra.Command{
		Use:   "down DIR --database URL --to N",
		Short: "Undo the applied migrations above version N, newest first",
		Example: `  shipgate migrate down db/migrations --database postgres://app@db/app --to 11
  shipgate migrate down db/migrations --database sqlite:app.db --to 0`,
		Args: argRange(1, 1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if !cmd.Flags().Changed("to") {
				return invalidf("--to is required: the version to go back to (0 for none)")
			}
			return a.migrateChange(cmd, args[0], database, true, func(ctx context.Context, r *sqldb.Runner) ([]int64, error) {
				return r.DownTo(ctx, to)
			})
		},
	}
	databaseFlag(cmd, &database)
	cmd.Flags().Int64Var(&to, "to", 0, "the version to go back to (0 undoes everything)")
	return cmd
}

// databaseFlag registers --database, the database that migrate up, down,
// status and resolve work on.
func databaseFlag(cmd *cobra.Command, database *string) {
	cmd.Flags().StringVar(database, "database", "", "postgres:// URL or sqlite:PATH of the database")
	cmd.Flags().Bool("sqlite-foreign-keys", false, "SQLite: enforce foreign keys while migrating (default off, with PRAGMA foreign_key_check after each migration)")
}

// migrateChange runs change, migrate up or (undo) down, on the migrations
// of dir, and reports each version it applied or undid and the version the
// database is at. A failed change is reported with the ways out of it,
// after what it did before it failed.
func (a *app) migrateChange(cmd *cobra.Command, dir, database string, undo bool, change func(context.Context, *sqldb.Runner) ([]int64, error)) error {
	r, err := a.openRunner(cmd, dir, database)
	if err != nil {
		return err
	}
	defer r.Close()
	versions, changeErr := change(cmd.Context(), r)
	st, err := r.Status(cmd.Context())
	if err != nil {
		return errors.Join(changeErr, err)
	}
	verb, out := "applied", migrationChange{Applied: versions, Version: st.Version}
	if undo {
		verb, out = "undone", migrationChange{Undone: versions, Version: st.Version}
	}
	if a.jsonOutput() {
		if err := a.printJSON(out); err != nil {
			return err
		}
	} else {
		for _, v := range versions {
			a.printf("%s %s\n", verb, idOf(r, v))
		}
		a.printf("version %d, %d pending\n", st.Version, len(st.Pending))
	}
	if changeErr != nil {
		return fmt.Errorf("%w\n%s", changeErr, wayOut(st, false))
	}
	return nil
}

func (a *app) migrateStatusCommand() *cobra.Command {
	var database string
	cmd := &cobra.Command{
		Use:   "status DIR --database URL",
		Short: "Show applied and pending migrations, and where a failed one stopped",
		Example: `  shipgate migrate status db/migrations --database postgres://app@db/app
  shipgate migrate status db/migrations --database sqlite:app.db -o json`,
		Args: argRange(1, 1),
		RunE: func(cmd *cobra.Command, args []string) error {
			r, err := a.openRunner(cmd, args[0], database)
			if err != nil {
				return err
			}
			defer r.Close()
			st, err := r.Status(cmd.Context())
			if err != nil {
				return err
			}
			if a.jsonOutput() {
				return a.printJSON(migrationStatus{Dir: args[0], Status: st})
			}
			return a.printMigrationStatus(r, st)
		},
	}
	databaseFlag(cmd, &database)
	return cmd
}

func (a *app) printMigrationStatus(r *sqldb.Runner, st migrate.Status) error {
	t := newTable(a.stdout, "VERSION", "MIGRATION", "STATE", "APPLIED")
	applied := map[int64]migrate.Record{}
	for _, rec := range st.Applied {
		applied[rec.Version] = rec
	}
	for _, m := range r.Migrations() {
		rec, ok := applied[m.Version]
		state := "pending"
		switch {
		case st.Failure != nil && st.Failure.Version == m.Version && st.Failure.Dirty:
			state = "DIRTY"
		case st.Failure != nil && st.Failure.Version == m.Version:
			state = "failed"
		case ok && slices.Contains(st.Modified, m.Version):
			state = "applied, file changed since"
		case ok:
			state = "applied"
		}
		t.row(strconv.FormatInt(m.Version, 10), m.ID, state, clock(rec.AppliedAt, a.now()))
	}
	for _, v := range st.Unknown {
		t.row(strconv.FormatInt(v, 10), applied[v].Name, "applied, not in this directory", clock(applied[v].AppliedAt, a.now()))
	}
	if err := t.flush(); err != nil {
		return err
	}
	a.printf("version %d, %d pending\n", st.Version, len(st.Pending))
	if st.Failure != nil {
		a.printf("\n%s\n", wayOut(st, true))
	}
	return nil
}

// idOf names a version for people by its migration's ID.
func idOf(r *sqldb.Runner, v int64) string {
	for _, m := range r.Migrations() {
		if m.Version == v {
			return m.ID
		}
	}
	return strconv.FormatInt(v, 10)
}

// wayOut says where a failed migration stopped (unless the error said it
// already) and the ways out of it.
func wayOut(st migrate.Status, where bool) string {
	f := st.Failure
	if f == nil {
		return ""
	}
	var b strings.Builder
	if where {
		fmt.Fprintf(&b, "failed: %s at %s\n  %s\n", f.Where(), f.At.Format("2006-01-02 15:04:05Z07:00"), f.Error)
	}
	if f.Dirty {
		fmt.Fprintf(&b, "The migration ran outside a transaction: statements 1 to %d took effect, and nothing runs until this is resolved.\n", f.Statement-1)
		b.WriteString("Way out: repair the database by hand, then either\n")
		fmt.Fprintf(&b, "  finish the migration's remaining statements and run: shipgate migrate resolve DIR %d --applied --database URL\n", f.Version)
		fmt.Fprintf(&b, "  or undo statements 1 to %d and run:                   shipgate migrate resolve DIR %d --undone --database URL", f.Statement-1, f.Version)
		return b.String()
	}
	fmt.Fprintf(&b, "Its transaction was rolled back: the database is at version %d, as the migration before it left it.\n", st.Version)
	b.WriteString("Way out: fix the migration and run again: shipgate migrate up DIR --database URL\n")
	fmt.Fprintf(&b, "     or: go back to an earlier version:     shipgate migrate down DIR --database URL --to N (N < %d)", st.Version+1)
	return b.String()
}

func (a *app) migrateResolveCommand() *cobra.Command {
	var database string
	var applied, undone bool
	cmd := &cobra.Command{
		Use:   "resolve DIR VERSION --database URL --applied|--undone",
		Short: "Record by hand how a dirty migration ended, after repairing the database",
		Long: `A migration run outside a transaction that fails after some of its statements
took effect leaves the database dirty: nothing runs until a person repairs
it. After finishing the migration by hand, record it with --applied; after
undoing its statements by hand, record that with --undone.`,
		Example: `  shipgate migrate resolve db/migrations 14 --undone --database postgres://app@db/app`,
		Args:    argRange(2, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			version, err := strconv.ParseInt(args[1], 10, 64)
			if err != nil {
				return invalidf("VERSION %q: want a number", args[1])
			}
			if applied == undone {
				return invalidf("give exactly one of --applied and --undone")
			}
			r, err := a.openRunner(cmd, args[0], database)
			if err != nil {
				return err
			}
			defer r.Close()
			if err := r.Resolve(cmd.Context(), version, applied); err != nil {
				return err
			}
			st, err := r.Status(cmd.Context())
			if err != nil {
				return err
			}
			if a.jsonOutput() {
				return a.printJSON(migrationChange{Version: st.Version})
			}
			a.printf("resolved %d; version %d, %d pending\n", version, st.Version, len(st.Pending))
			return nil
		},
	}
	databaseFlag(cmd, &database)
	cmd.Flags().BoolVar(&applied, "applied", false, "the migration was finished by hand: record it as applied")
	cmd.Flags().BoolVar(&undone, "undone", false, "its statements were undone by hand: record it as not applied")
	return cmd
}
