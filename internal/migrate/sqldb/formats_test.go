package sqldb

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/shipgate/shipgate/internal/migrate"
	"github.com/shipgate/shipgate/internal/pgtest"
)

const formats = "../testdata/formats"

// notVerified returns the migrations a report did not verify, as
// "ID (reason)".
func notVerified(r migrate.Report) string {
	parts := make([]string, len(r.NotVerified))
	for i, u := range r.NotVerified {
		parts[i] = u.Migration + " (" + u.Reason + ")"
	}
	return strings.Join(parts, ", ")
}

// TestVerify_Formats runs each naming convention's corpus on both
// databases and checks its true finding.
func TestVerify_Formats(t *testing.T) {
	tests := []struct {
		dir      string
		format   migrate.Format
		want     []string
		verified int
	}{
		{dir: "stem-named", want: []string{"V0002.Index_a: down fails right after up: statement 1:"}, verified: 1},
		{dir: "maragudk", format: migrate.FormatStem, want: []string{"0002_create_index_users_email: down migration is empty"}, verified: 2},
		{dir: "golang-migrate", want: []string{"002_add_bio: down fails right after up: statement 1:"}, verified: 1},
		{dir: "stem", want: []string{"0002: down migration is empty"}, verified: 1},
		{dir: "goose", want: []string{
			"00002_add_plan: down does not restore the schema: table accounts: column plan left behind after down",
			"00002_add_plan: up fails after its down: statement 1:",
		}, verified: 1},
		{dir: "dbmate", want: []string{"20240102090000_orders_customer_by_date: down does not restore the schema: table orders: index orders_customer columns differ after down (now (created_at), was (customer_id))"}, verified: 1},
		{dir: "sql-migrate", want: []string{"2_tag_colors: down fails right after up: statement 2:"}, verified: 1},
		{dir: "flyway", want: []string{"V2__add_currency: no down migration"}, verified: 1},
	}
	databases(t, func(t *testing.T, dialect, _, url string) {
		for _, tt := range tests {
			t.Run(tt.dir, func(t *testing.T) {
				migs, err := migrate.Load(filepath.Join(formats, tt.dir), migrate.LoadOptions{Format: tt.format})
				if err != nil {
					t.Fatal(err)
				}
				r, err := Verify(t.Context(), url, migs, migrate.VerifyOptions{})
				if err != nil {
					t.Fatal(err)
				}
				wantFindings(t, r, tt.want...)
				if r.Verified != tt.verified || len(r.NotVerified) != r.Migrations-tt.verified {
					t.Errorf("verified %d of %d, want %d; not verified: %s", r.Verified, r.Migrations, tt.verified, notVerified(r))
				}
			})
		}
	})
}

// TestVerify_GoesOnPastAFailure checks that a failing migration in the
// middle does not end the verification: the migrations after it that do
// not need it are verified, the one that does says so, and the report
// counts them.
func TestVerify_GoesOnPastAFailure(t *testing.T) {
	databases(t, func(t *testing.T, dialect, _, url string) {
		r := verifyDir(t, url, filepath.Join(formats, "failing-middle"), migrate.VerifyOptions{})
		wantFindings(t, r,
			"002_account_owner: up fails on the schema of the migrations before it: statement 1:",
			"004_index_owner: up fails on the schema of the migrations before it, without 002_account_owner, which failed (it may depend on it): statement 1:",
		)
		if got, want := fmt.Sprintf("verified %d of %d; not verified: %s", r.Verified, r.Migrations, notVerified(r)),
			"verified 3 of 5; not verified: 002_account_owner (up fails on the schema of the migrations before it), "+
				"004_index_owner (up fails on the schema of the migrations before it, without 002_account_owner, which failed (it may depend on it))"; got != want {
			t.Errorf("got  %s\nwant %s", got, want)
		}
	})
}

// TestVerify_NoTransactionOnPostgres checks that CREATE INDEX
// CONCURRENTLY verifies on PostgreSQL in every format's way of running
// outside a transaction: a golang-migrate file of its own, goose's NO
// TRANSACTION, dbmate's transaction:false, sql-migrate's notransaction.
func TestVerify_NoTransactionOnPostgres(t *testing.T) {
	url := pgtest.Shared(t).NewDatabase(t)
	r := verifyDir(t, url, filepath.Join(formats, "no-transaction"), migrate.VerifyOptions{})
	wantFindings(t, r)
	if r.Verified != 5 || !r.OK() {
		t.Errorf("verified %d of %d; not verified: %s", r.Verified, r.Migrations, notVerified(r))
	}
	r = verifyDir(t, url, "../testdata/goose", migrate.VerifyOptions{})
	if r.Verified != 2 || !r.OK() {
		t.Errorf("testdata/goose: verified %d of %d; not verified: %s; %v", r.Verified, r.Migrations, notVerified(r), errorsOf(r))
	}

	// Without its marker, the goose file is refused before and by the
	// database.
	migs := load(t, filepath.Join(formats, "no-transaction"))
	migs[2].Up.NoTransaction, migs[2].Down.NoTransaction = false, false
	migs[2].Format = migrate.FormatGoose
	r, err := Verify(t.Context(), url, migs, migrate.VerifyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	wantFindings(t, r,
		"003_events_at: PostgreSQL refuses CREATE INDEX CONCURRENTLY inside a transaction, and goose runs this migration in one",
		"003_events_at: PostgreSQL refuses DROP INDEX CONCURRENTLY inside a transaction, and goose runs this migration in one",
		"003_events_at: up fails on the schema of the migrations before it: statement 1: ERROR: CREATE INDEX CONCURRENTLY cannot run inside a transaction block",
	)
}

// TestVerify_SeededNarrowingUnderAnEmptyDown checks that the data pass
// does not stop at an empty down above the seed: it rebuilds the
// database under it and finds the narrowing further down, and says which
// migration it could not check.
func TestVerify_SeededNarrowingUnderAnEmptyDown(t *testing.T) {
	url := pgtest.Shared(t).NewDatabase(t)
	r := verifyDir(t, url, filepath.Join(formats, "seed-gap"), seed(t, filepath.Join(formats, "seed-gap.seed.sql")))
	wantFindings(t, r,
		"003_add_nickname: down migration is empty",
		"002_widen_bio: down fails on the seeded rows: statement 1: ERROR: value too long for type character varying(2000)",
	)
	if r.SeedAfter != 2 {
		t.Errorf("SeedAfter = %d, want 2", r.SeedAfter)
	}
	if len(r.DataNotChecked) != 2 || r.DataNotChecked[0].Migration != "003_add_nickname" || r.DataNotChecked[0].Reason != "it has no down to run" ||
		r.DataNotChecked[1].Migration != "002_widen_bio" {
		t.Errorf("data not checked = %+v, want 003 (no down) and 002 (down fails)", r.DataNotChecked)
	}
}

// TestVerify_SQLiteForeignKeys checks SQLite's documented table rebuild
// (create the new table, copy, drop the old one, rename) over rows that
// other tables refer to: it verifies with foreign keys off while
// migrating, the default, and fails when they are forced on; and a
// migration that leaves rows pointing at nothing is caught by the
// foreign key check after it.
func TestVerify_SQLiteForeignKeys(t *testing.T) {
	migs, err := migrate.ParseFiles([]migrate.File{
		{Path: "001_create.up.sql", Data: []byte("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT); CREATE TABLE posts (id INTEGER PRIMARY KEY, user_id INTEGER REFERENCES users (id));")},
		{Path: "001_create.down.sql", Data: []byte("DROP TABLE posts; DROP TABLE users;")},
		{Path: "002_rebuild.up.sql", Data: []byte("CREATE TABLE users_new (id INTEGER PRIMARY KEY, name TEXT NOT NULL DEFAULT ''); INSERT INTO users_new SELECT id, coalesce(name, '') FROM users; DROP TABLE users; ALTER TABLE users_new RENAME TO users;")},
		{Path: "002_rebuild.down.sql", Data: []byte("CREATE TABLE users_old (id INTEGER PRIMARY KEY, name TEXT); INSERT INTO users_old SELECT id, name FROM users; DROP TABLE users; ALTER TABLE users_old RENAME TO users;")},
		{Path: "003_orphan.up.sql", Data: []byte("DELETE FROM users WHERE id = 2;")},
		{Path: "003_orphan.down.sql", Data: []byte("INSERT INTO users (id, name) VALUES (2, 'b');")},
	})
	if err != nil {
		t.Fatal(err)
	}
	opts := migrate.VerifyOptions{Seed: []byte("INSERT INTO users VALUES (1, 'a'), (2, 'b'); INSERT INTO posts VALUES (1, 1), (2, 2);"), SeedFile: "seed.sql", SeedAfter: 1}
	r, err := Verify(t.Context(), "sqlite", migs[:2], opts)
	if err != nil {
		t.Fatal(err)
	}
	wantFindings(t, r)
	if !r.OK() || r.DataChecked != 2 {
		t.Errorf("foreign keys off: verified %d, data checked %d; %s", r.Verified, r.DataChecked, notVerified(r))
	}

	opts.SQLiteForeignKeys = true
	r, err = Verify(t.Context(), "sqlite", migs[:2], opts)
	if err != nil {
		t.Fatal(err)
	}
	wantFindings(t, r, "002_rebuild: up fails on the seeded rows: statement 3: constraint failed: FOREIGN KEY constraint failed")
	if r.OK() {
		t.Error("foreign keys on: report OK")
	}

	opts.SQLiteForeignKeys = false
	r, err = Verify(t.Context(), "sqlite", migs, opts)
	if err != nil {
		t.Fatal(err)
	}
	wantFindings(t, r, "003_orphan: up fails on the seeded rows: foreign key check failed after the script: 1 row(s): table posts row 2 references a missing row of users")
}

// TestVerify_Setup checks that a setup script runs on every scratch
// database before the migrations: here a function the migrations call.
func TestVerify_Setup(t *testing.T) {
	url := pgtest.Shared(t).NewDatabase(t)
	migs, err := migrate.ParseFiles([]migrate.File{
		{Path: "001_t.up.sql", Data: []byte("CREATE TABLE t (id int PRIMARY KEY, code text NOT NULL DEFAULT app_code());")},
		{Path: "001_t.down.sql", Data: []byte("DROP TABLE t;")},
	})
	if err != nil {
		t.Fatal(err)
	}
	r, err := Verify(t.Context(), url, migs, migrate.VerifyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if r.OK() {
		t.Fatal("without the setup script the migration should fail")
	}
	setup := "CREATE FUNCTION app_code() RETURNS text LANGUAGE sql AS $$ SELECT 'x' $$;"
	r, err = Verify(t.Context(), url, migs, migrate.VerifyOptions{Setup: []byte(setup), SetupFile: "setup.sql"})
	if err != nil {
		t.Fatal(err)
	}
	wantFindings(t, r)
	if !r.OK() || r.Verified != 1 {
		t.Errorf("with setup: verified %d; %s", r.Verified, notVerified(r))
	}
	r, err = Verify(t.Context(), url, migs, migrate.VerifyOptions{Setup: []byte("CREATE nonsense;"), SetupFile: "setup.sql"})
	if err != nil {
		t.Fatal(err)
	}
	if got := notVerified(r); got != "001_t (the setup script fails)" {
		t.Errorf("broken setup: not verified %q", got)
	}
}

// TestOpen_NamedVersions checks that the runner refuses migrations
// ordered by name: it records numeric versions, and a file added in the
// middle would shift them.
func TestOpen_NamedVersions(t *testing.T) {
	migs := load(t, filepath.Join(formats, "stem-named"))
	_, err := Open(t.Context(), "sqlite:"+filepath.Join(t.TempDir(), "app.db"), migs)
	if !errors.Is(err, ErrNamedVersions) || !strings.Contains(err.Error(), "V0001.Create_a") {
		t.Errorf("Open = %v, want ErrNamedVersions naming V0001.Create_a", err)
	}
}

// TestVerify_OwnTransaction checks a golang-migrate file that manages its
// own transaction (BEGIN; ... COMMIT;), as golang-migrate runs it: not
// inside another one.
func TestVerify_OwnTransaction(t *testing.T) {
	migs, err := migrate.ParseFiles([]migrate.File{
		{Path: "001_t.up.sql", Data: []byte("BEGIN;\nCREATE TABLE t (id integer PRIMARY KEY);\nCREATE INDEX t_id ON t (id);\nCOMMIT;\n")},
		{Path: "001_t.down.sql", Data: []byte("BEGIN TRANSACTION;\nDROP TABLE t;\nEND;\n")},
	})
	if err != nil {
		t.Fatal(err)
	}
	if !migs[0].Up.NoTransaction || !migs[0].Down.NoTransaction {
		t.Fatalf("scripts with their own transaction run inside Shipgate's: up %t, down %t", migs[0].Up.NoTransaction, migs[0].Down.NoTransaction)
	}
	databases(t, func(t *testing.T, dialect, _, url string) {
		r, err := Verify(t.Context(), url, migs, migrate.VerifyOptions{})
		if err != nil {
			t.Fatal(err)
		}
		wantFindings(t, r)
		if r.Verified != 1 {
			t.Errorf("verified %d of 1: %s", r.Verified, notVerified(r))
		}
	})
}
