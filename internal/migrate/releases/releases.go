// Package releases runs a release's schema migrations for the rollout
// engine: it is the engine's Migrations port over internal/migrate (the
// migration files) and internal/migrate/sqldb (the database), so the
// server and the engine's own tests run the same thing.
package releases

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"github.com/shipgate/shipgate/internal/migrate"
	"github.com/shipgate/shipgate/internal/migrate/sqldb"
	"github.com/shipgate/shipgate/internal/rollout"
)

// Options are the migrations section of the config, as the CLI's
// migrate commands take them.
type Options struct {
	// Format forces a migration file format ("" detects it).
	Format string
	// Ignore are file name patterns in the migrations directory that are
	// not migrations.
	Ignore []string
	// SeedFile and SetupFile are the seed data and the setup script of
	// the reversibility check, as paths the server can open; they may
	// live among the migrations.
	SeedFile, SetupFile string
	// SQLiteForeignKeys turns SQLite's foreign key checks on.
	SQLiteForeignKeys bool
}

// Runner opens releases' migrations for the engine.
type Runner struct {
	o Options
}

var _ rollout.Migrations = Runner{}

// New returns a Runner with o.
func New(o Options) Runner { return Runner{o: o} }

// Open loads the migrations in dir and connects to database.
func (ms Runner) Open(ctx context.Context, dir, database string) (rollout.Migrator, error) {
	c := ms.o
	ignore := slices.Clone(c.Ignore)
	// The seed and setup files may live among the migrations.
	for _, f := range []string{c.SeedFile, c.SetupFile} {
		if f != "" && filepath.Clean(filepath.Dir(f)) == filepath.Clean(dir) {
			ignore = append(ignore, filepath.Base(f))
		}
	}
	format, err := migrate.ParseFormat(c.Format)
	if err != nil {
		return nil, err
	}
	migs, err := migrate.Load(dir, migrate.LoadOptions{Format: format, Ignore: ignore})
	if err != nil {
		return nil, fmt.Errorf("load migrations from %s: %w", dir, err)
	}
	// Static problems (a missing or empty down) are found before any
	// database is touched.
	var static []string
	for _, f := range migrate.Check(migs) {
		if f.Severity == migrate.SeverityError {
			static = append(static, f.String())
		}
	}
	r, err := sqldb.Open(ctx, database, migs, sqldb.SQLiteForeignKeys(c.SQLiteForeignKeys))
	if err != nil {
		return nil, fmt.Errorf("open the migration database: %w", err)
	}
	var irreversible []string
	for _, m := range migs {
		if m.Irreversible != nil {
			irreversible = append(irreversible, m.ID+" ("+m.Irreversible.Reason+")")
		}
	}
	m := &migrator{r: r, static: static, irreversible: irreversible, foreignKeys: c.SQLiteForeignKeys}
	m.setupFile = c.SetupFile
	return m, nil
}

type migrator struct {
	r            *sqldb.Runner
	static       []string
	irreversible []string
	setupFile    string
	foreignKeys  bool
}

// Irreversible names the migrations marked -- shipgate:irreversible, for
// the engine's migration gate.
func (m *migrator) Irreversible() []string { return m.irreversible }

func (m *migrator) Verify(ctx context.Context, seedFile string) ([]string, error) {
	if len(m.static) > 0 {
		return m.static, nil
	}
	opts := migrate.VerifyOptions{SQLiteForeignKeys: m.foreignKeys}
	if m.setupFile != "" {
		setup, err := os.ReadFile(m.setupFile)
		if err != nil {
			return nil, fmt.Errorf("read setup: %w", err)
		}
		opts.Setup, opts.SetupFile = setup, m.setupFile
	}
	if seedFile != "" {
		seed, err := os.ReadFile(seedFile)
		if err != nil {
			return nil, fmt.Errorf("read seed: %w", err)
		}
		opts.Seed, opts.SeedFile = seed, seedFile
	}
	rep, err := m.r.Verify(ctx, opts)
	if err != nil {
		return nil, err
	}
	var problems []string
	for _, f := range rep.Findings {
		if f.Severity == migrate.SeverityError {
			problems = append(problems, f.String())
		}
	}
	return problems, nil
}

func (m *migrator) Up(ctx context.Context) ([]int64, error) { return m.r.Up(ctx, 0) }

func (m *migrator) Down(ctx context.Context, versions []int64) error {
	return m.r.Down(ctx, versions)
}

func (m *migrator) Status(ctx context.Context) (string, error) {
	st, err := m.r.Status(ctx)
	if err != nil {
		return "", err
	}
	s := fmt.Sprintf("at version %d, %d pending", st.Version, len(st.Pending))
	if f := st.Failure; f != nil {
		s += fmt.Sprintf("; failed at %s: %s", f.Where(), f.Error)
		if f.Dirty {
			s += " (dirty: repair by hand, then shipgate migrate resolve)"
		}
	}
	return s, nil
}

func (m *migrator) Pending(ctx context.Context) ([]int64, error) {
	st, err := m.r.Status(ctx)
	if err != nil {
		return nil, err
	}
	return st.Pending, nil
}

func (m *migrator) Close() error {
	if m.r == nil {
		return errors.New("closed")
	}
	err := m.r.Close()
	m.r = nil
	return err
}
