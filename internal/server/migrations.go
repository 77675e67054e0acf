package server

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"github.com/shipgate/shipgate/internal/config"
	"github.com/shipgate/shipgate/internal/migrate"
	"github.com/shipgate/shipgate/internal/migrate/sqldb"
	"github.com/shipgate/shipgate/internal/rollout"
)

// migrations adapts the migrate packages to the rollout engine's port,
// with the options of the config's migrations section.
type migrations struct {
	// cfg is the migrations section, nil when there is none; path
	// resolves a file named in it.
	cfg  *config.Migrations
	path func(string) string
}

var _ rollout.Migrations = migrations{}

// Open loads the migrations in dir and connects to database.
func (ms migrations) Open(ctx context.Context, dir, database string) (rollout.Migrator, error) {
	var c config.Migrations
	if ms.cfg != nil {
		c = *ms.cfg
	}
	ignore := slices.Clone(c.Ignore)
	// The seed and setup files may live among the migrations.
	for _, f := range []string{c.Seed, c.Setup} {
		if f != "" && ms.path != nil && filepath.Clean(filepath.Dir(ms.path(f))) == filepath.Clean(dir) {
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
	if c.Setup != "" && ms.path != nil {
		m.setupFile = ms.path(c.Setup)
	}
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
