package cli

import (
	"path/filepath"
	"strings"
	"testing"
)

// The migration directories of internal/migrate's tests.
const migrateTestdata = "../migrate/testdata"

func TestCLI_MigrateCheck(t *testing.T) {
	e := &env{getenv: map[string]string{}, data: t.TempDir()}
	broken := filepath.Join(migrateTestdata, "broken")

	t.Run("errors exit 2", func(t *testing.T) {
		r := e.runRaw(t, "migrate", "check", broken)
		r.wantCode(t, ExitInvalid)
		for _, want := range []string{
			broken + "/002_create_posts.down.sql: error: 002_create_posts: no down migration",
			broken + "/003_add_nickname.down.sql:1: error: 003_add_nickname: down migration is empty",
			broken + "/004_replace_bio.up.sql:3: warning: 004_replace_bio: drops column users.bio",
			broken + ": 4 migrations, 2 errors, 1 warning\n",
		} {
			if !strings.Contains(r.stdout, want) {
				t.Errorf("stdout does not contain %q:\n%s", want, r.stdout)
			}
		}
	})
	t.Run("warnings only exit 0", func(t *testing.T) {
		dir := filepath.Join(migrateTestdata, "narrowing", "postgres")
		r := e.runRaw(t, "migrate", "check", dir)
		r.wantCode(t, ExitOK)
		if want := dir + ": 3 migrations, 0 errors, 2 warnings\n"; !strings.HasSuffix(r.stdout, want) {
			t.Errorf("stdout does not end with %q:\n%s", want, r.stdout)
		}
	})
	t.Run("json", func(t *testing.T) {
		r := e.runRaw(t, "migrate", "check", broken, "-o", "json")
		r.wantCode(t, ExitInvalid)
		var rep migrationReport
		decodeOne(t, r.stdout, &rep)
		if rep.OK || rep.Errors != 2 || rep.Warnings != 1 || rep.Migrations != 4 || len(rep.Findings) != 3 {
			t.Fatalf("report = %+v", rep)
		}
		if got := rep.Findings[1]; got.Severity != "error" || got.Line != 1 || got.Migration != "003_add_nickname" || got.Version != 3 {
			t.Errorf("finding = %+v, want the empty down of 003 at line 1", got)
		}
	})
	t.Run("parse errors exit 2 with file:line", func(t *testing.T) {
		dir := t.TempDir()
		writeFile(t, filepath.Join(dir, "001_a.sql"), "-- +goose Up\nSELECT 'open;\n")
		r := e.runRaw(t, "migrate", "check", dir)
		r.wantCode(t, ExitInvalid)
		if want := filepath.Join(dir, "001_a.sql") + ":2: error: 001_a: string ' is never closed"; !strings.Contains(r.stdout, want) {
			t.Errorf("stdout does not contain %q:\n%s", want, r.stdout)
		}
	})
	t.Run("missing dir exits 2", func(t *testing.T) {
		r := e.runRaw(t, "migrate", "check", filepath.Join(t.TempDir(), "nope"))
		r.wantCode(t, ExitInvalid)
	})
}

func TestCLI_MigrateVerify(t *testing.T) {
	e := &env{getenv: map[string]string{}, data: t.TempDir()}
	t.Run("irreversible exits 2", func(t *testing.T) {
		r := e.runRaw(t, "migrate", "verify", filepath.Join(migrateTestdata, "broken"), "--database", "sqlite")
		r.wantCode(t, ExitInvalid)
		if want := "error: 004_replace_bio: down does not restore the schema: table users: column bio missing after down"; !strings.Contains(r.stdout, want) {
			t.Errorf("stdout does not contain %q:\n%s", want, r.stdout)
		}
	})
	t.Run("narrowing with seed, json", func(t *testing.T) {
		r := e.runRaw(t, "migrate", "verify", filepath.Join(migrateTestdata, "narrowing", "sqlite"),
			"--database", "sqlite", "--seed", filepath.Join(migrateTestdata, "narrowing", "seed.sql"), "-o", "json")
		r.wantCode(t, ExitInvalid)
		var rep migrationReport
		decodeOne(t, r.stdout, &rep)
		if rep.OK || rep.SeedAfter != 2 || rep.Errors != 2 {
			t.Fatalf("report = %+v", rep)
		}
		if !strings.Contains(r.stdout, "column name cannot hold its data after down (declared varchar(100), holds a value of 180 characters)") {
			t.Errorf("no finding for the narrowing down:\n%s", r.stdout)
		}
	})
	t.Run("reversible exits 0", func(t *testing.T) {
		dir := filepath.Join(migrateTestdata, "realistic", "sqlite", "goose")
		r := e.runRaw(t, "migrate", "verify", dir, "--database", "sqlite", "--seed", filepath.Join(migrateTestdata, "realistic", "sqlite", "seed.sql"))
		r.wantCode(t, ExitOK)
		if want := dir + ": 30 migrations, 0 errors,"; !strings.Contains(r.stdout, want) {
			t.Errorf("stdout does not contain %q:\n%s", want, r.stdout)
		}
	})
	t.Run("bad database URL exits 2", func(t *testing.T) {
		r := e.runRaw(t, "migrate", "verify", filepath.Join(migrateTestdata, "broken"), "--database", "mysql://x")
		r.wantCode(t, ExitInvalid)
		if !strings.Contains(r.stderr, "invalid database URL") {
			t.Errorf("stderr = %q", r.stderr)
		}
	})
}

func TestCLI_MigrateUpStatusDown(t *testing.T) {
	e := &env{getenv: map[string]string{}, data: t.TempDir()}
	dir := filepath.Join(migrateTestdata, "failing")
	db := "sqlite:" + filepath.Join(t.TempDir(), "app.db")

	r := e.runRaw(t, "migrate", "up", dir, "--database", db)
	r.wantCode(t, ExitFailure)
	if want := "applied 001_create_accounts\napplied 002_add_plan\nversion 2, 1 pending\n"; r.stdout != want {
		t.Errorf("stdout = %q, want %q", r.stdout, want)
	}
	for _, want := range []string{"statement 2 of 3_one_account_per_plan up", "shipgate migrate down DIR --database URL --to N"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("stderr does not contain %q:\n%s", want, r.stderr)
		}
	}

	r = e.runRaw(t, "migrate", "status", dir, "--database", db)
	r.wantCode(t, ExitOK)
	for _, want := range []string{"003_one_account_per_plan  failed", "version 2, 1 pending", "Its transaction was rolled back: the database is at version 2", "shipgate migrate up DIR --database URL"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("status does not contain %q:\n%s", want, r.stdout)
		}
	}

	r = e.runRaw(t, "migrate", "status", dir, "--database", db, "-o", "json")
	r.wantCode(t, ExitOK)
	var st migrationStatus
	decodeOne(t, r.stdout, &st)
	if st.Version != 2 || st.Failure == nil || st.Failure.Statement != 2 || st.Failure.Version != 3 {
		t.Errorf("status = %+v, failure %+v", st, st.Failure)
	}

	r = e.runRaw(t, "migrate", "down", dir, "--database", db)
	r.wantCode(t, ExitInvalid)
	r = e.runRaw(t, "migrate", "down", dir, "--database", db, "--to", "0")
	r.wantCode(t, ExitOK)
	if want := "undone 002_add_plan\nundone 001_create_accounts\nversion 0, 3 pending\n"; r.stdout != want {
		t.Errorf("stdout = %q, want %q", r.stdout, want)
	}
}

// TestCLI_MigrateFolders checks the folders of the naming conventions
// from the command line: files it cannot read make it fail, listing them;
// --format and --ignore; and verify's "verified N of M" line after a
// failure in the middle.
func TestCLI_MigrateFolders(t *testing.T) {
	e := &env{getenv: map[string]string{}, data: t.TempDir()}
	formats := filepath.Join(migrateTestdata, "formats")

	t.Run("unrecognised files exit 2 listing them", func(t *testing.T) {
		dir := filepath.Join(formats, "unrecognised")
		for _, args := range [][]string{{"check", dir}, {"verify", dir, "--database", "sqlite"}} {
			cmd := args[0]
			r := e.runRaw(t, append([]string{"migrate"}, args...)...)
			r.wantCode(t, ExitInvalid)
			for _, f := range []string{"0002_b.sql", "2024-01-01-init.sql", "fixtures.sql", "schema.sql"} {
				if want := filepath.Join(dir, f) + ": error: not read as a migration"; !strings.Contains(r.stdout, want) {
					t.Errorf("%s: stdout does not contain %q:\n%s", cmd, want, r.stdout)
				}
			}
			if want := dir + ": 0 migrations, 4 errors, 0 warnings\n"; !strings.HasSuffix(r.stdout, want) {
				t.Errorf("%s: stdout does not end with %q:\n%s", cmd, want, r.stdout)
			}
		}
		r := e.runRaw(t, "migrate", "check", dir, "--ignore", "fixtures.sql", "--ignore", "s*.sql,2024-*", "-o", "json")
		r.wantCode(t, ExitInvalid)
		var rep migrationReport
		decodeOne(t, r.stdout, &rep)
		if rep.OK || rep.Errors != 1 || rep.Findings[0].File != filepath.Join(dir, "0002_b.sql") {
			t.Errorf("with --ignore: %+v", rep)
		}
	})
	t.Run("format override", func(t *testing.T) {
		r := e.runRaw(t, "migrate", "check", filepath.Join(formats, "dbmate"), "--format", "dbmate")
		r.wantCode(t, ExitOK)
		r = e.runRaw(t, "migrate", "check", filepath.Join(formats, "dbmate"), "--format", "goose")
		r.wantCode(t, ExitInvalid)
		if !strings.Contains(r.stdout, "statement before the -- +goose Up annotation") {
			t.Errorf("dbmate files read as goose:\n%s", r.stdout)
		}
		r = e.runRaw(t, "migrate", "check", filepath.Join(formats, "dbmate"), "--format", "liquibase")
		r.wantCode(t, ExitInvalid)
		if !strings.Contains(r.stderr, `unknown migration format "liquibase"`) {
			t.Errorf("stderr = %q", r.stderr)
		}
	})
	t.Run("verify goes on past a failure", func(t *testing.T) {
		dir := filepath.Join(formats, "failing-middle")
		r := e.runRaw(t, "migrate", "verify", dir, "--database", "sqlite")
		r.wantCode(t, ExitInvalid)
		want := "verified 3 of 5; not verified: 002_account_owner (up fails on the schema of the migrations before it), " +
			"004_index_owner (up fails on the schema of the migrations before it, without 002_account_owner, which failed (it may depend on it))\n"
		if !strings.HasSuffix(r.stdout, want) {
			t.Errorf("stdout does not end with %q:\n%s", want, r.stdout)
		}
		r = e.runRaw(t, "migrate", "verify", dir, "--database", "sqlite", "-o", "json")
		var rep migrationReport
		decodeOne(t, r.stdout, &rep)
		if rep.Verified == nil || *rep.Verified != 3 || len(rep.NotVerified) != 2 || rep.NotVerified[1].Version != 4 {
			t.Errorf("json: verified %v, not verified %+v", rep.Verified, rep.NotVerified)
		}
	})
	t.Run("verify all", func(t *testing.T) {
		dir := filepath.Join(migrateTestdata, "realistic", "sqlite", "golang-migrate")
		r := e.runRaw(t, "migrate", "verify", dir, "--database", "sqlite")
		r.wantCode(t, ExitOK)
		if want := "verified 30 of 30\n"; !strings.HasSuffix(r.stdout, want) {
			t.Errorf("stdout does not end with %q:\n%s", want, r.stdout)
		}
	})
	t.Run("irreversible on purpose", func(t *testing.T) {
		dir := t.TempDir()
		writeFile(t, filepath.Join(dir, "001_a.up.sql"), "CREATE TABLE a (id int);")
		writeFile(t, filepath.Join(dir, "001_a.down.sql"), "DROP TABLE a;")
		writeFile(t, filepath.Join(dir, "002_b.up.sql"), "INSERT INTO a VALUES (1);")
		writeFile(t, filepath.Join(dir, "002_b.down.sql"), "-- shipgate:irreversible the row is read by billing at once\n")
		r := e.runRaw(t, "migrate", "verify", dir, "--database", "sqlite")
		r.wantCode(t, ExitOK)
		for _, want := range []string{
			filepath.Join(dir, "002_b.down.sql") + ":1: warning: 002_b: irreversible on purpose: the row is read by billing at once",
			"verified 1 of 2\nirreversible on purpose, a deploy needs an approval: 002_b (the row is read by billing at once)\n",
		} {
			if !strings.Contains(r.stdout, want) {
				t.Errorf("stdout does not contain %q:\n%s", want, r.stdout)
			}
		}
	})
}
