package sqldb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"github.com/shipgate/shipgate/internal/migrate"
)

// Verify checks that every migration can be undone, on scratch databases
// made for the purpose and dropped at the end: for url "sqlite", files in
// a temporary directory; for a PostgreSQL URL, databases named
// shipgate_verify_<random> created on that server (the database in the
// URL is only used to connect). The report holds the findings of
// migrate.Check, then:
//
//  1. the schema round trip, on an empty database: each migration in
//     order runs up, down, up; the schema after the down must equal the
//     schema before the up, and the schema after the second up the one
//     after the first. Each difference is an error in words ("table
//     users: column email missing after down"). Migrations without a down
//     (already errors of Check) only run up.
//  2. with a seed, the data round trip, on a second database: the
//     migrations run up in order, and the seed is applied, in a
//     transaction, after the first migration after which it succeeds (or
//     after opts.SeedAfter). Every later up runs over the seeded rows. Then,
//     from the newest migration down to the seed's, each runs down, up
//     (the rows must be what they were: row counts and the values of each
//     column) and down again to reach the one below. A migration that
//     fails over the rows (PostgreSQL refusing a value too long for a
//     narrowed column), or leaves a column declared shorter than a value
//     it holds (SQLite, which does not enforce lengths), is an error.
//
// The error is for what stopped the verification itself (no database); a
// migration that fails is a finding.
func Verify(ctx context.Context, url string, migrations []migrate.Migration, opts migrate.VerifyOptions) (migrate.Report, error) {
	t, err := parseURL(url, true)
	if err != nil {
		return migrate.Report{}, err
	}
	return verify(ctx, t, migrations, opts)
}

func verify(ctx context.Context, t target, migrations []migrate.Migration, opts migrate.VerifyOptions) (migrate.Report, error) {
	report := migrate.Report{Migrations: len(migrations), Findings: migrate.Check(migrations)}
	if t.pg == nil {
		// A runner's own SQLite file is never touched: verify on a
		// scratch file beside nothing.
		t = target{d: t.d}
	}
	v := &verifier{t: t, migrations: migrations}
	ok, err := v.schemaRoundTrip(ctx)
	if err != nil {
		return report, err
	}
	if ok && len(opts.Seed) > 0 {
		if err := v.dataRoundTrip(ctx, opts); err != nil {
			return report, err
		}
		report.SeedAfter = v.seedAfter
	}
	report.Findings = append(report.Findings, v.findings...)
	migrate.SortFindings(report.Findings)
	return report, nil
}

type verifier struct {
	t          target
	migrations []migrate.Migration
	findings   []migrate.Finding
	seedAfter  int64
	// db is the scratch database in use, drop the function that drops it.
	db   *sql.DB
	drop func()
}

// reversible reports whether m has a down to run.
func reversible(m migrate.Migration) bool { return !m.Down.Missing() && len(m.Down.Statements) > 0 }

func (v *verifier) fail(m migrate.Migration, s migrate.Script, err error, format string, args ...any) {
	f := migrate.Finding{Severity: migrate.SeverityError, File: s.File, Line: s.Line, Version: m.Version, Migration: m.ID, Message: fmt.Sprintf(format, args...)}
	var se *stmtError
	if errors.As(err, &se) {
		f.Line = se.Statement.Line
		f.Message += fmt.Sprintf(": statement %d: %v", se.Index+1, se.Err)
	} else if err != nil {
		f.Message += ": " + err.Error()
	}
	v.findings = append(v.findings, f)
}

func (v *verifier) differ(m migrate.Migration, s migrate.Script, what string, diffs []migrate.Difference, when string) {
	for _, d := range diffs {
		v.findings = append(v.findings, migrate.Finding{Severity: migrate.SeverityError, File: s.File, Line: s.Line, Version: m.Version, Migration: m.ID,
			Message: what + ": " + d.Format(when)})
	}
}

// fresh replaces the scratch database with an empty one and applies the
// ups of the first n migrations, without checks. It returns false if an
// up fails there, which the first pass has reported already.
func (v *verifier) fresh(ctx context.Context, n int) (bool, error) {
	v.close()
	db, drop, err := v.t.scratchDB(ctx)
	if err != nil {
		return false, err
	}
	v.db, v.drop = db, drop
	for _, m := range v.migrations[:n] {
		if err := runScript(ctx, v.db, m, m.Up); err != nil {
			return false, nil
		}
	}
	return true, nil
}

func (v *verifier) close() {
	if v.drop != nil {
		v.drop()
		v.db, v.drop = nil, nil
	}
}

func (v *verifier) schema(ctx context.Context) (migrate.Schema, error) {
	s, err := v.t.d.schema(ctx, v.db)
	if err != nil {
		return s, fmt.Errorf("verify: %w", err)
	}
	return s, nil
}

// schemaRoundTrip is the first pass. It returns false if an up failed on
// the empty database: the passes after it would only fail the same way.
func (v *verifier) schemaRoundTrip(ctx context.Context) (bool, error) {
	defer v.close()
	if _, err := v.fresh(ctx, 0); err != nil {
		return false, err
	}
	for i, m := range v.migrations {
		before, err := v.schema(ctx)
		if err != nil {
			return false, err
		}
		if err := runScript(ctx, v.db, m, m.Up); err != nil {
			v.fail(m, m.Up, err, "up fails on the schema of the migrations before it")
			return false, nil
		}
		if !reversible(m) {
			continue
		}
		after, err := v.schema(ctx)
		if err != nil {
			return false, err
		}
		if err := runScript(ctx, v.db, m, m.Down); err != nil {
			v.fail(m, m.Down, err, "down fails right after up")
			if _, err := v.fresh(ctx, i+1); err != nil {
				return false, err
			}
			continue
		}
		restored, err := v.schema(ctx)
		if err != nil {
			return false, err
		}
		diffs := migrate.DiffSchemas(before, restored)
		v.differ(m, m.Down, "down does not restore the schema", diffs, "after down")
		if err := runScript(ctx, v.db, m, m.Up); err != nil {
			v.fail(m, m.Up, err, "up fails after its down")
			if _, err := v.fresh(ctx, i+1); err != nil {
				return false, err
			}
			continue
		}
		if len(diffs) > 0 {
			// The second up ran on another schema; comparing its result
			// would only repeat the differences above.
			continue
		}
		again, err := v.schema(ctx)
		if err != nil {
			return false, err
		}
		v.differ(m, m.Up, "up after down gives another schema", migrate.DiffSchemas(after, again), "after up, down, up")
	}
	return true, nil
}

// state is a schema with the fingerprint of its rows.
type state struct {
	schema migrate.Schema
	data   migrate.Data
}

func (v *verifier) state(ctx context.Context) (state, error) {
	s, err := v.schema(ctx)
	if err != nil {
		return state{}, err
	}
	d, err := readData(ctx, v.db, s)
	if err != nil {
		return state{}, fmt.Errorf("verify: %w", err)
	}
	return state{schema: s, data: d}, nil
}

// seed applies the seed in a transaction and keeps it only if it ran and
// every value fits its column's declared length. It returns why not, and
// an error when the database failed otherwise.
func (v *verifier) seed(ctx context.Context, stmts []migrate.Statement, file string) (why, err error) {
	tx, err := v.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("verify: begin: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	if err := execScript(ctx, tx, migrate.Script{File: file, Statements: stmts}); err != nil {
		return err, nil //nolint:nilerr // the seed's failure is the answer, not an error of the verification
	}
	s, err := v.t.d.schema(ctx, tx)
	if err != nil {
		return nil, fmt.Errorf("verify: %w", err)
	}
	d, err := readData(ctx, tx, s)
	if err != nil {
		return nil, fmt.Errorf("verify: %w", err)
	}
	if long := migrate.LengthViolations(s, d); len(long) > 0 {
		return errors.New(long[0].String()), nil
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("verify: commit seed: %w", err)
	}
	return nil, nil
}

// dataRoundTrip is the second pass, with the seed.
func (v *verifier) dataRoundTrip(ctx context.Context, opts migrate.VerifyOptions) error {
	defer v.close()
	file := opts.SeedFile
	if file == "" {
		file = "seed"
	}
	stmts, err := migrate.Split(string(opts.Seed), 1)
	if err != nil {
		var se *migrate.SyntaxError
		line := 0
		if errors.As(err, &se) {
			line, err = se.Line, errors.New(se.Message)
		}
		v.findings = append(v.findings, migrate.Finding{Severity: migrate.SeverityError, File: file, Line: line, Message: "seed: " + err.Error()})
		return nil
	}
	if _, err := v.fresh(ctx, 0); err != nil {
		return err
	}
	seeded, top := -1, -1
	// forward[k] is the state after the up of migration k, with the
	// seeded rows, for k from seeded on.
	forward := map[int]state{}
	var seedErr error
	for i, m := range v.migrations {
		if err := runScript(ctx, v.db, m, m.Up); err != nil {
			if seeded >= 0 {
				v.fail(m, m.Up, err, "up fails on the seeded rows")
			}
			break
		}
		top = i
		if seeded < 0 {
			if opts.SeedAfter != 0 && m.Version < opts.SeedAfter {
				continue
			}
			why, err := v.seed(ctx, stmts, file)
			if err != nil {
				return err
			}
			if why != nil {
				seedErr = why
				if opts.SeedAfter != 0 {
					v.findings = append(v.findings, seedFinding(file, why, fmt.Sprintf("the seed fails after version %d", m.Version)))
					return nil
				}
				continue
			}
			seeded, v.seedAfter = i, m.Version
		}
		s, err := v.state(ctx)
		if err != nil {
			return err
		}
		forward[i] = s
		if i > seeded {
			v.differ(m, m.Up, "up cannot hold the seeded rows", migrate.LengthViolations(s.schema, s.data), "after up")
		}
	}
	if seeded < 0 {
		if seedErr == nil {
			seedErr = errors.New("no migration ran")
		}
		v.findings = append(v.findings, seedFinding(file, seedErr, "the seed fails after every migration; write it for the tables the migrations create"))
		return nil
	}

	// Walk down from the top to the seed's migration. Below it, the rows
	// would be gone with the tables that hold them, as they should.
	for k := top; k >= seeded; k-- {
		m := v.migrations[k]
		if !reversible(m) {
			// Check has reported it; nothing below it can be undone.
			return nil
		}
		before, err := v.state(ctx)
		if err != nil {
			return err
		}
		if err := runScript(ctx, v.db, m, m.Down); err != nil {
			v.fail(m, m.Down, err, "down fails on the seeded rows")
			return nil
		}
		down, err := v.state(ctx)
		if err != nil {
			return err
		}
		v.differ(m, m.Down, "down cannot hold the seeded rows", migrate.LengthViolations(down.schema, down.data), "after down")
		if k == seeded {
			return nil
		}
		v.differ(m, m.Down, "up then down loses seeded data", migrate.DiffData(forward[k-1].data, down.data), "after up and down")
		if err := runScript(ctx, v.db, m, m.Up); err != nil {
			v.fail(m, m.Up, err, "up fails after its down on the seeded rows")
			return nil
		}
		again, err := v.state(ctx)
		if err != nil {
			return err
		}
		// Columns the down removes hold what the up put there, not the seed's
		// rows: compare the others.
		v.differ(m, m.Down, "down then up loses seeded data", migrate.DiffData(before.data.Restrict(down.schema), again.data.Restrict(down.schema)), "after down and up")
		if err := runScript(ctx, v.db, m, m.Down); err != nil {
			v.fail(m, m.Down, err, "down fails on the seeded rows, the second time")
			return nil
		}
	}
	return nil
}

func seedFinding(file string, err error, what string) migrate.Finding {
	f := migrate.Finding{Severity: migrate.SeverityError, File: file, Message: what + ": " + err.Error()}
	var se *stmtError
	if errors.As(err, &se) {
		f.Line = se.Statement.Line
		f.Message = fmt.Sprintf("%s: statement %d: %v", what, se.Index+1, se.Err)
	}
	f.Message = strings.TrimSpace(f.Message)
	return f
}
