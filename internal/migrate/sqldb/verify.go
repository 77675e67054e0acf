package sqldb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
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
		t = target{d: t.d, foreignKeys: t.foreignKeys || opts.SQLiteForeignKeys}
	}
	v := &verifier{t: t, migrations: migrations, skipped: map[int]bool{}}
	if err := v.parseSetup(opts); err != nil {
		return report, err
	}
	if !v.setupBroken {
		if err := v.schemaRoundTrip(ctx); err != nil {
			return report, err
		}
	}
	if len(opts.Seed) > 0 && !v.setupBroken {
		if err := v.dataRoundTrip(ctx, opts); err != nil {
			return report, err
		}
		report.SeedAfter, report.DataChecked, report.DataNotChecked = v.seedAfter, v.dataChecked, v.dataGaps
	}
	report.Findings = append(report.Findings, v.findings...)
	migrate.SortFindings(report.Findings)
	tally(&report, migrations, v.setupBroken)
	return report, nil
}

// tally fills the report's Verified, NotVerified and Irreversible from
// its findings: a migration with an error is not verified, and the
// reasons are its errors' first clauses.
func tally(r *migrate.Report, migrations []migrate.Migration, setupBroken bool) {
	reasons := map[int64][]string{}
	for _, f := range r.Findings {
		if f.Severity != migrate.SeverityError || f.Version == 0 {
			continue
		}
		why, _, _ := strings.Cut(f.Message, ": ")
		if !slices.Contains(reasons[f.Version], why) {
			reasons[f.Version] = append(reasons[f.Version], why)
		}
	}
	r.NotVerified = []migrate.Unverified{}
	for _, m := range migrations {
		switch {
		case setupBroken:
			r.NotVerified = append(r.NotVerified, migrate.Unverified{Version: m.Version, Migration: m.ID, Reason: "the setup script fails"})
		case len(reasons[m.Version]) > 0:
			r.NotVerified = append(r.NotVerified, migrate.Unverified{Version: m.Version, Migration: m.ID, Reason: strings.Join(reasons[m.Version], "; ")})
		case m.Irreversible != nil:
			r.Irreversible = append(r.Irreversible, migrate.Unverified{Version: m.Version, Migration: m.ID, Reason: m.Irreversible.Reason})
		default:
			r.Verified++
		}
	}
}

type verifier struct {
	t          target
	migrations []migrate.Migration
	findings   []migrate.Finding
	// setup is the setup script's statements, run on every scratch
	// database first; setupBroken is set when it fails.
	setup       migrate.Script
	setupBroken bool
	// skipped are the indexes of the migrations whose up failed on the
	// schema of the ones before it: later passes leave them out.
	skipped map[int]bool
	// seedAfter, dataChecked and dataGaps are the data pass's outcome.
	seedAfter   int64
	dataChecked int
	dataGaps    []migrate.Unverified
	// db is the scratch database in use, drop the function that drops it.
	db   *sql.DB
	drop func()
}

// parseSetup reads the setup script of opts.
func (v *verifier) parseSetup(opts migrate.VerifyOptions) error {
	if len(opts.Setup) == 0 {
		return nil
	}
	file := cmpOr(opts.SetupFile, "setup")
	stmts, err := migrate.Split(string(opts.Setup), 1)
	if err != nil {
		var se *migrate.SyntaxError
		line := 0
		if errors.As(err, &se) {
			line, err = se.Line, errors.New(se.Message)
		}
		v.findings = append(v.findings, migrate.Finding{Severity: migrate.SeverityError, File: file, Line: line, Message: "setup: " + err.Error()})
		v.setupBroken = true
		return nil
	}
	v.setup = migrate.Script{File: file, Line: 1, Statements: stmts}
	return nil
}

func cmpOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func (v *verifier) fail(m migrate.Migration, s migrate.Script, err error, format string, args ...any) {
	f := migrate.Finding{Severity: migrate.SeverityError, File: s.File, Line: s.Line, Version: m.Version, Migration: m.ID, Message: fmt.Sprintf(format, args...)}
	var se *stmtError
	if errors.As(err, &se) {
		f.Line = se.Statement.Line
		f.Message += fmt.Sprintf(": statement %d: %v", se.Index+1, se.Err)
	} else if err != nil {
		f.Message += ": " + err.Error()
	}
	if s.NoTransaction {
		f.Message += " (ran outside a transaction)"
	}
	v.findings = append(v.findings, f)
}

func (v *verifier) differ(m migrate.Migration, s migrate.Script, what string, diffs []migrate.Difference, when string) {
	for _, d := range diffs {
		v.findings = append(v.findings, migrate.Finding{Severity: migrate.SeverityError, File: s.File, Line: s.Line, Version: m.Version, Migration: m.ID,
			Message: what + ": " + d.Format(when)})
	}
}

func (v *verifier) dataGap(m migrate.Migration, why string) {
	v.dataGaps = append(v.dataGaps, migrate.Unverified{Version: m.Version, Migration: m.ID, Reason: why})
}

// errRebuild means a scratch database could not be brought back to a
// state it was in before: an up that ran there fails now.
var errRebuild = errors.New("rebuild failed")

// rebuild replaces the scratch database with an empty one, runs the
// setup script, and applies the ups of the first n migrations that are
// not skipped, without checks; with seed, the seed goes in after the
// migration at index seeded. It returns errRebuild if an up fails, and
// records a finding when the setup script does.
func (v *verifier) rebuild(ctx context.Context, n int, keep func(int) bool, seeded int, seed []migrate.Statement) error {
	v.close()
	db, drop, err := v.t.scratchDB(ctx)
	if err != nil {
		return err
	}
	v.db, v.drop = db, drop
	if len(v.setup.Statements) > 0 {
		if err := runScript(ctx, v.db, v.t.d, v.setup); err != nil {
			if !v.setupBroken {
				v.setupBroken = true
				f := seedFinding(v.setup.File, err, "the setup script fails on an empty database")
				v.findings = append(v.findings, f)
			}
			return errRebuild
		}
	}
	for i, m := range v.migrations[:n] {
		if v.skipped[i] || keep != nil && !keep(i) {
			continue
		}
		if err := runScript(ctx, v.db, v.t.d, m.Up); err != nil {
			return errRebuild
		}
		if i == seeded && seed != nil {
			if err := execScript(ctx, v.db, migrate.Script{Statements: seed}); err != nil {
				return errRebuild
			}
		}
	}
	return nil
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

// schemaRoundTrip is the first pass. An up that fails is reported and
// left out: the migrations after it run without it, and those that fail
// for want of it say so.
func (v *verifier) schemaRoundTrip(ctx context.Context) error {
	defer v.close()
	if err := v.rebuild(ctx, 0, nil, -1, nil); err != nil {
		return ignoreRebuild(err)
	}
	var failed []string
	// again brings the database back to the state after migration i, when
	// a failed script left it in another; false when it cannot.
	again := func(i int) (bool, error) {
		err := v.rebuild(ctx, i+1, nil, -1, nil)
		if errors.Is(err, errRebuild) {
			for _, m := range v.migrations[i+1:] {
				v.findings = append(v.findings, migrate.Finding{Severity: migrate.SeverityError, File: m.Up.File, Version: m.Version, Migration: m.ID,
					Message: "not run: the scratch database could not be rebuilt after " + v.migrations[i].ID + " failed"})
			}
			return false, nil
		}
		return err == nil, err
	}
	for i, m := range v.migrations {
		before, err := v.schema(ctx)
		if err != nil {
			return err
		}
		if err := runScript(ctx, v.db, v.t.d, m.Up); err != nil {
			if len(failed) == 0 {
				v.fail(m, m.Up, err, "up fails on the schema of the migrations before it")
			} else {
				v.fail(m, m.Up, err, "up fails on the schema of the migrations before it, without %s, which failed (it may depend on it)", strings.Join(failed, ", "))
			}
			v.skipped[i] = true
			failed = append(failed, m.ID)
			if m.Up.NoTransaction {
				if ok, err := again(i); !ok {
					return err
				}
			}
			continue
		}
		if !m.Reversible() {
			continue
		}
		after, err := v.schema(ctx)
		if err != nil {
			return err
		}
		if err := runScript(ctx, v.db, v.t.d, m.Down); err != nil {
			v.fail(m, m.Down, err, "down fails right after up")
			if ok, err := again(i); !ok {
				return err
			}
			continue
		}
		restored, err := v.schema(ctx)
		if err != nil {
			return err
		}
		diffs := migrate.DiffSchemas(before, restored)
		v.differ(m, m.Down, "down does not restore the schema", diffs, "after down")
		if err := runScript(ctx, v.db, v.t.d, m.Up); err != nil {
			v.fail(m, m.Up, err, "up fails after its down")
			if ok, err := again(i); !ok {
				return err
			}
			continue
		}
		if len(diffs) > 0 {
			// The second up ran on another schema; comparing its result
			// would only repeat the differences above.
			continue
		}
		twice, err := v.schema(ctx)
		if err != nil {
			return err
		}
		v.differ(m, m.Up, "up after down gives another schema", migrate.DiffSchemas(after, twice), "after up, down, up")
	}
	return nil
}

// ignoreRebuild turns errRebuild, already reported, into no error.
func ignoreRebuild(err error) error {
	if errors.Is(err, errRebuild) {
		return nil
	}
	return err
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

// dataRoundTrip is the second pass, with the seed. It covers every
// migration from the seed's on that it can: one that fails over the rows
// is reported and left out, and below a migration without a down (or
// whose down fails) the walk goes on from a database rebuilt to the
// state under it.
func (v *verifier) dataRoundTrip(ctx context.Context, opts migrate.VerifyOptions) error {
	defer v.close()
	file := cmpOr(opts.SeedFile, "seed")
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
	if err := v.rebuild(ctx, 0, nil, -1, nil); err != nil {
		return ignoreRebuild(err)
	}
	seeded, top := -1, -1
	applied := map[int]bool{}
	// forward[k] is the state after the up of migration k, with the
	// seeded rows, for k from seeded on.
	forward := map[int]state{}
	var seedErr error
	for i, m := range v.migrations {
		if v.skipped[i] {
			if seeded >= 0 {
				v.dataGap(m, "its up fails on the schema before it")
			}
			continue
		}
		if err := runScript(ctx, v.db, v.t.d, m.Up); err != nil {
			if seeded >= 0 {
				v.fail(m, m.Up, err, "up fails on the seeded rows")
				v.dataGap(m, "its up fails on the seeded rows")
			}
			if m.Up.NoTransaction {
				if err := v.rebuild(ctx, i, func(j int) bool { return applied[j] }, seeded, stmts); err != nil {
					return ignoreRebuild(err)
				}
			}
			continue
		}
		applied[i], top = true, i
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

	below := func(k int) int {
		for j := k - 1; j >= 0; j-- {
			if applied[j] {
				return j
			}
		}
		return -1
	}
	// under brings the database to the state under migration k (the
	// migrations applied below it, and the seed), when k cannot be
	// walked down through.
	under := func(k int) error {
		return v.rebuild(ctx, k, func(j int) bool { return applied[j] }, seeded, stmts)
	}
	var gaps []migrate.Unverified
	defer func() { v.dataGaps = append(v.dataGaps, gaps...) }()
	gap := func(m migrate.Migration, why string) {
		gaps = append(gaps, migrate.Unverified{Version: m.Version, Migration: m.ID, Reason: why})
	}

	// Walk down from the top to the seed's migration. Below it, the rows
	// would be gone with the tables that hold them, as they should.
	for k := top; k >= seeded; k-- {
		if !applied[k] {
			continue
		}
		m := v.migrations[k]
		if !m.Reversible() {
			why := "it has no down to run"
			if m.Irreversible != nil {
				why = "it is irreversible on purpose"
			}
			gap(m, why)
			if k == seeded {
				return nil
			}
			if err := under(k); err != nil {
				return v.rebuildFailed(err, m)
			}
			continue
		}
		before, err := v.state(ctx)
		if err != nil {
			return err
		}
		if err := runScript(ctx, v.db, v.t.d, m.Down); err != nil {
			v.fail(m, m.Down, err, "down fails on the seeded rows")
			gap(m, "its down fails on the seeded rows")
			if k == seeded {
				return nil
			}
			if err := under(k); err != nil {
				return v.rebuildFailed(err, m)
			}
			continue
		}
		down, err := v.state(ctx)
		if err != nil {
			return err
		}
		v.differ(m, m.Down, "down cannot hold the seeded rows", migrate.LengthViolations(down.schema, down.data), "after down")
		if k == seeded {
			v.dataChecked++
			return nil
		}
		v.differ(m, m.Down, "up then down loses seeded data", migrate.DiffData(forward[below(k)].data, down.data), "after up and down")
		if err := runScript(ctx, v.db, v.t.d, m.Up); err != nil {
			v.fail(m, m.Up, err, "up fails after its down on the seeded rows")
			gap(m, "its up fails after its down on the seeded rows")
			if err := under(k); err != nil {
				return v.rebuildFailed(err, m)
			}
			continue
		}
		again, err := v.state(ctx)
		if err != nil {
			return err
		}
		// Columns the down removes hold what the up put there, not the seed's
		// rows: compare the others.
		v.differ(m, m.Down, "down then up loses seeded data", migrate.DiffData(before.data.Restrict(down.schema), again.data.Restrict(down.schema)), "after down and up")
		if err := runScript(ctx, v.db, v.t.d, m.Down); err != nil {
			v.fail(m, m.Down, err, "down fails on the seeded rows, the second time")
			gap(m, "its down fails on the seeded rows the second time")
			if err := under(k); err != nil {
				return v.rebuildFailed(err, m)
			}
			continue
		}
		v.dataChecked++
	}
	return nil
}

// rebuildFailed reports that the data pass stopped at m because the
// state under it could not be rebuilt.
func (v *verifier) rebuildFailed(err error, m migrate.Migration) error {
	if !errors.Is(err, errRebuild) {
		return err
	}
	v.findings = append(v.findings, migrate.Finding{Severity: migrate.SeverityWarning, File: m.Up.File, Version: m.Version, Migration: m.ID,
		Message: "the seeded data check stops here: the database under this migration could not be rebuilt"})
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
