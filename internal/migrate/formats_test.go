package migrate

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
)

// TestLoad_Formats reads the corpus of each naming convention under
// testdata/formats, recognised without --format and with it, and checks
// its true finding where a static check can see it.
func TestLoad_Formats(t *testing.T) {
	tests := []struct {
		dir    string
		format Format
		// forced is set for a folder read right only with --format.
		forced bool
		n      int
		// finding is a static finding the corpus must give, "" when its
		// finding needs a database (see sqldb's TestVerify_Formats).
		finding string
	}{
		{dir: "golang-migrate", format: FormatGolangMigrate, n: 2},
		{dir: "stem", format: FormatStem, n: 2, finding: "stem/0002.down.sql:1: error: 0002: down migration is empty"},
		{dir: "stem-named", format: FormatStem, n: 2},
		{dir: "maragudk", format: FormatStem, forced: true, n: 3, finding: "maragudk/0002_create_index_users_email.down.sql:1: error: 0002_create_index_users_email: down migration is empty"},
		{dir: "goose", format: FormatGoose, n: 2},
		{dir: "dbmate", format: FormatDbmate, n: 2},
		{dir: "sql-migrate", format: FormatSQLMigrate, n: 2, finding: "sql-migrate/2_tag_colors.sql:6: warning: 2_tag_colors: down deletes rows from table tags"},
		{dir: "flyway", format: FormatFlyway, n: 2, finding: "flyway/U2__add_currency.sql: error: V2__add_currency: no down migration: add this file"},
	}
	for _, tt := range tests {
		t.Run(tt.dir, func(t *testing.T) {
			dir := filepath.Join("testdata", "formats", tt.dir)
			tries := []Format{"", tt.format}
			if tt.forced {
				tries = tries[1:]
			}
			for _, format := range tries {
				migs, err := Load(dir, LoadOptions{Format: format})
				if err != nil {
					t.Fatalf("Load(%s, %q): %v", dir, format, err)
				}
				if len(migs) != tt.n {
					t.Fatalf("Load(%s, %q): %d migrations, want %d", dir, format, len(migs), tt.n)
				}
				for _, m := range migs {
					if m.Format != tt.format {
						t.Errorf("%s: format %s, want %s", m.ID, m.Format, tt.format)
					}
					if !m.Reversible() && m.Down.Missing() && tt.format != FormatFlyway {
						t.Errorf("%s: no down read", m.ID)
					}
				}
				if tt.finding == "" {
					continue
				}
				var all []string
				for _, f := range Check(migs) {
					all = append(all, f.String())
				}
				if !strings.Contains(strings.Join(all, "\n"), filepath.Join("testdata", "formats", tt.finding)) {
					t.Errorf("findings:\n%s\nwant one starting %q", strings.Join(all, "\n"), tt.finding)
				}
			}
		})
	}
}

// TestLoad_Unrecognised checks that a folder whose .sql files Shipgate
// cannot read is an error naming each of them, not "0 migrations".
func TestLoad_Unrecognised(t *testing.T) {
	dir := filepath.Join("testdata", "formats", "unrecognised")
	_, err := LoadDir(dir)
	var perr *Error
	if !errors.As(err, &perr) {
		t.Fatalf("LoadDir = %v, want an *Error", err)
	}
	want := []string{"0002_b.sql", "2024-01-01-init.sql", "fixtures.sql", "schema.sql"}
	if len(perr.Findings) != len(want) {
		t.Fatalf("findings:\n%v\nwant one per file: %v", err, want)
	}
	for i, f := range perr.Findings {
		if f.File != filepath.Join(dir, want[i]) || !strings.Contains(f.Message, "not read as a migration") {
			t.Errorf("finding %d = %s, want %s not read", i, f, want[i])
		}
	}
	// Ignoring the fixtures leaves the others.
	_, err = Load(dir, LoadOptions{Ignore: []string{"fixtures.sql", "s*.sql"}})
	if !errors.As(err, &perr) || len(perr.Findings) != 2 {
		t.Errorf("with fixtures.sql ignored: %v", err)
	}
	// A forced format says what it wanted.
	_, err = Load(dir, LoadOptions{Format: FormatGolangMigrate})
	if !strings.Contains(err.Error(), "not a golang-migrate file name (want NNN_name.up.sql and NNN_name.down.sql)") {
		t.Errorf("with --format golang-migrate: %v", err)
	}
}

func TestLoad_NoTransaction(t *testing.T) {
	migs, err := LoadDir(filepath.Join("testdata", "formats", "no-transaction"))
	if err != nil {
		t.Fatal(err)
	}
	formats := []Format{FormatGolangMigrate, FormatGolangMigrate, FormatGoose, FormatDbmate, FormatSQLMigrate}
	for i, m := range migs {
		if m.Format != formats[i] {
			t.Errorf("%s: format %s, want %s", m.ID, m.Format, formats[i])
		}
		want := i > 0
		if m.Up.NoTransaction != want || m.Down.NoTransaction != want {
			t.Errorf("%s: NoTransaction up %t down %t, want %t", m.ID, m.Up.NoTransaction, m.Down.NoTransaction, want)
		}
	}
	if f := Check(migs); HasErrors(f) {
		t.Errorf("Check: %v", f)
	}
}

func TestCheck_Transactions(t *testing.T) {
	tests := []struct {
		name string
		file File
		want string
	}{
		{
			name: "goose without NO TRANSACTION",
			file: File{Path: "001_idx.sql", Data: []byte("-- +goose Up\nCREATE INDEX CONCURRENTLY i ON t (a);\n-- +goose Down\nDROP INDEX i;\n")},
			want: "001_idx.sql:2: error: 001_idx: PostgreSQL refuses CREATE INDEX CONCURRENTLY inside a transaction, and goose runs this migration in one: add -- +goose NO TRANSACTION",
		},
		{
			name: "dbmate down without transaction:false",
			file: File{Path: "002_idx.sql", Data: []byte("-- migrate:up transaction:false\nCREATE INDEX CONCURRENTLY i ON t (a);\n-- migrate:down\nDROP INDEX CONCURRENTLY i;\n")},
			want: "002_idx.sql:4: error: 002_idx: PostgreSQL refuses DROP INDEX CONCURRENTLY inside a transaction, and dbmate runs this migration in one",
		},
		{
			name: "golang-migrate with other statements",
			file: File{Path: "003_idx.up.sql", Data: []byte("ALTER TABLE t ADD COLUMN b int;\nCREATE INDEX CONCURRENTLY i ON t (b);\n")},
			want: "003_idx.up.sql:2: warning: 003_idx: CREATE INDEX CONCURRENTLY in a file with other statements: golang-migrate sends a file as one query",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			files := []File{tt.file}
			if strings.HasSuffix(tt.file.Path, ".up.sql") {
				files = append(files, File{Path: strings.Replace(tt.file.Path, ".up.", ".down.", 1), Data: []byte("DROP INDEX i;")})
			}
			migs, err := ParseFiles(files)
			if err != nil {
				t.Fatal(err)
			}
			var all []string
			for _, f := range Check(migs) {
				all = append(all, f.String())
			}
			if !strings.Contains(strings.Join(all, "\n"), tt.want) {
				t.Errorf("findings:\n%s\nwant %q", strings.Join(all, "\n"), tt.want)
			}
		})
	}
}

func TestCheck_Markers(t *testing.T) {
	migs, err := ParseFiles([]File{
		{Path: "001_a.up.sql", Data: []byte("CREATE TABLE a (id int);")},
		{Path: "001_a.down.sql", Data: []byte("DROP TABLE a;")},
		{Path: "002_backfill.up.sql", Data: []byte("-- shipgate:irreversible rows merged; the old split cannot be rebuilt\nUPDATE a SET id = id + 1;")},
		{Path: "003_empty.up.sql", Data: []byte("-- nothing yet\n")},
		{Path: "003_empty.down.sql", Data: []byte("")},
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := migs[1].Irreversible; got == nil || got.Reason != "rows merged; the old split cannot be rebuilt" || got.Line != 1 {
		t.Fatalf("marker = %+v", got)
	}
	findings := Check(migs)
	if HasErrors(findings) {
		t.Errorf("an irreversible marker and an empty up with an empty down are not errors: %v", findings)
	}
	if len(findings) != 1 || !strings.Contains(findings[0].String(), "002_backfill.up.sql:1: warning: 002_backfill: irreversible on purpose: rows merged") {
		t.Errorf("findings = %v, want the marker's warning", findings)
	}
	_, err = ParseFiles([]File{{Path: "001_a.up.sql", Data: []byte("-- shipgate:irreversible\nSELECT 1;")}, {Path: "001_a.down.sql", Data: []byte("-- shipgate:no-transactoin\n")}})
	if err == nil || !strings.Contains(err.Error(), "001_a.up.sql:1: error: 001_a: -- shipgate:irreversible needs a reason") ||
		!strings.Contains(err.Error(), "001_a.down.sql:1: error: 001_a: unknown marker -- shipgate:no-transactoin") {
		t.Errorf("err = %v", err)
	}
}

func TestCheck_DoBlocks(t *testing.T) {
	up := "DO $$\nBEGIN\n  IF NOT EXISTS (SELECT 1 FROM information_schema.columns WHERE table_name = 'users' AND column_name = 'email') THEN\n    ALTER TABLE users ADD COLUMN email text;\n  END IF;\nEND\n$$;\n"
	migs, err := ParseFiles([]File{
		{Path: "001_users.up.sql", Data: []byte("CREATE TABLE users (id int);")},
		{Path: "001_users.down.sql", Data: []byte("DROP TABLE users;")},
		{Path: "002_email.up.sql", Data: []byte(up)},
		{Path: "002_email.down.sql", Data: []byte("ALTER TABLE users DROP COLUMN email;")},
		{Path: "003_drop.up.sql", Data: []byte("DO $x$ BEGIN\n  ALTER TABLE users DROP COLUMN email;\nEND $x$;")},
		{Path: "003_drop.down.sql", Data: []byte("ALTER TABLE users ADD COLUMN email text;")},
	})
	if err != nil {
		t.Fatal(err)
	}
	var all []string
	for _, f := range Check(migs) {
		all = append(all, f.String())
	}
	// The column added inside the DO block is the up's own: dropping it
	// in the down is no data loss. The drop inside a DO block is one.
	want := "003_drop.up.sql:2: warning: 003_drop: drops column users.email"
	if len(all) != 1 || !strings.HasPrefix(all[0], want) {
		t.Errorf("findings:\n%s\nwant only %q", strings.Join(all, "\n"), want)
	}
}

// TestLoad_StemVersions checks folders whose versions are whole file
// stems: ordered by name, as maragudk/migrate orders them, when they are
// not numbers; and a folder of golang-migrate names with duplicate
// versions, which is how such a folder reads without --format, says how
// to read it.
func TestLoad_StemVersions(t *testing.T) {
	migs, err := LoadDir(filepath.Join("testdata", "formats", "stem-named"))
	if err != nil {
		t.Fatal(err)
	}
	if len(migs) != 2 || migs[0].ID != "V0001.Create_a" || migs[0].Version != 1 || migs[1].ID != "V0002.Index_a" || !migs[1].OrderedByName {
		t.Errorf("migrations = %+v", migs)
	}
	dir := filepath.Join("testdata", "formats", "maragudk")
	_, err = LoadDir(dir)
	if err == nil || !strings.Contains(err.Error(), "version 1 is also used by "+filepath.Join(dir, "0001_create_table_a_users.up.sql")+"; each version must be unique (if the whole file stem is the version, as maragudk/migrate reads it, give --format stem)") {
		t.Errorf("LoadDir(maragudk) = %v", err)
	}
	migs, err = Load(dir, LoadOptions{Format: FormatStem})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, m := range migs {
		ids = append(ids, fmt.Sprintf("%d:%s", m.Version, m.ID))
	}
	if got, want := strings.Join(ids, " "), "1:0001_create_table_a_users 2:0001_create_table_b_posts 3:0002_create_index_users_email"; got != want {
		t.Errorf("order = %s, want %s", got, want)
	}
	// Named stems do not mix with numbered migrations.
	_, err = ParseFiles([]File{{Path: "001_a.up.sql", Data: []byte("SELECT 1;")}, {Path: "V2.b.up.sql", Data: []byte("SELECT 1;")}})
	if err == nil || !strings.Contains(err.Error(), `V2.b.up.sql: error: a migration whose version is its whole file stem "V2.b"`) {
		t.Errorf("mixed: %v", err)
	}
}

func TestParse_AnnotatedWithoutNumber(t *testing.T) {
	_, err := ParseFiles([]File{{Path: "init.sql", Data: []byte("-- +migrate Up\nCREATE TABLE a (id int);\n-- +migrate Down\nDROP TABLE a;\n")}})
	if want := "init.sql: error: not read as a migration: sql-migrate annotations, but no version number at the start of the name; Shipgate orders such files by that number: rename it NNN_init.sql"; err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("err = %v, want %q", err, want)
	}
}
