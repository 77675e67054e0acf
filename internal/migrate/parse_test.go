package migrate

import (
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestLoadDir_Goose(t *testing.T) {
	migs, err := LoadDir("testdata/goose")
	if err != nil {
		t.Fatalf("LoadDir: %v", err)
	}
	if got, want := len(migs), 2; got != want {
		t.Fatalf("got %d migrations, want %d", got, want)
	}
	m := migs[0]
	if got, want := m.ID, "001_create_accounts"; got != want {
		t.Errorf("ID = %q, want %q", got, want)
	}
	if m.Version != 1 || m.Name != "create_accounts" || m.Format != FormatGoose || m.Up.NoTransaction {
		t.Errorf("migration 1 = %+v", m)
	}
	file := filepath.Join("testdata", "goose", "001_create_accounts.sql")
	wantUp := Script{File: file, Line: 1, Statements: []Statement{
		{SQL: "CREATE TABLE accounts (\n    id   BIGSERIAL PRIMARY KEY,\n    name TEXT NOT NULL DEFAULT 'unnamed; really'\n)", Line: 3},
		{SQL: "CREATE INDEX accounts_name ON accounts (name)", Line: 7},
		{SQL: "CREATE FUNCTION touch() RETURNS trigger AS $$\nBEGIN\n    NEW.name := trim(NEW.name); -- no split here\n    RETURN NEW;\nEND;\n$$ LANGUAGE plpgsql", Line: 10},
	}}
	if !reflect.DeepEqual(m.Up, wantUp) {
		t.Errorf("Up =\n%#v\nwant\n%#v", m.Up, wantUp)
	}
	wantDown := Script{File: file, Line: 18, Statements: []Statement{
		{SQL: "DROP FUNCTION touch()", Line: 19},
		{SQL: "DROP TABLE accounts", Line: 20},
	}}
	if !reflect.DeepEqual(m.Down, wantDown) {
		t.Errorf("Down =\n%#v\nwant\n%#v", m.Down, wantDown)
	}
	if len(m.Checksum) != 64 {
		t.Errorf("Checksum = %q, want hex SHA-256", m.Checksum)
	}
	if !migs[1].Up.NoTransaction || !migs[1].Down.NoTransaction {
		t.Error("002: NO TRANSACTION not seen")
	}
}

func TestLoadDir_GolangMigrate(t *testing.T) {
	migs, err := LoadDir("testdata/broken")
	if err != nil {
		t.Fatalf("LoadDir: %v", err)
	}
	var ids []string
	for _, m := range migs {
		ids = append(ids, m.ID)
	}
	if got, want := ids, []string{"001_create_users", "002_create_posts", "003_add_nickname", "004_replace_bio"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("IDs = %q, want %q", got, want)
	}
	if !migs[1].Down.Missing() {
		t.Errorf("002 down = %+v, want missing", migs[1].Down)
	}
	if migs[2].Down.Missing() || len(migs[2].Down.Statements) != 0 {
		t.Errorf("003 down = %+v, want present and empty", migs[2].Down)
	}
	if got, want := len(migs[3].Up.Statements), 3; got != want {
		t.Errorf("004 up has %d statements, want %d", got, want)
	}
	if got, want := migs[3].Up.Statements[2].Line, 3; got != want {
		t.Errorf("004 up statement 3 at line %d, want %d", got, want)
	}
}

func TestParseFiles_Errors(t *testing.T) {
	tests := []struct {
		name  string
		files []File
		want  []string
	}{
		{
			name:  "statement before Up",
			files: []File{{Path: "db/001_a.sql", Data: []byte("CREATE TABLE a (id int);\n-- +goose Up\nSELECT 1;\n")}},
			want:  []string{"db/001_a.sql:1: error: 001_a: statement before the -- +goose Up annotation"},
		},
		{
			name:  "no annotation at all",
			files: []File{{Path: "db/001_a.sql", Data: []byte("-- just a comment\n")}},
			want:  []string{"db/001_a.sql: error: not read as a migration: a numbered .sql file without -- +goose Up, -- +migrate Up or -- migrate:up sections, and not NNN_name.up.sql or NNN_name.down.sql; rename it, give --format, or list it in --ignore if it is not a migration"},
		},
		{
			name:  "unclosed StatementBegin",
			files: []File{{Path: "db/002_b.sql", Data: []byte("-- +goose Up\n-- +goose StatementBegin\nSELECT 1;\n-- +goose Down\n")}},
			want: []string{
				"db/002_b.sql:2: error: 002_b: -- +goose StatementBegin is never closed by -- +goose StatementEnd",
				"db/002_b.sql:4: error: 002_b: -- +goose Down inside the StatementBegin block of line 2; close it with -- +goose StatementEnd first",
			},
		},
		{
			name:  "StatementEnd alone, Down twice, unknown annotation",
			files: []File{{Path: "003_c.sql", Data: []byte("-- +goose Up\nSELECT 1;\n-- +goose StatementEnd\n-- +goose Down\n-- +goose Down\n-- +goose Sideways\n")}},
			want: []string{
				"003_c.sql:3: error: 003_c: -- +goose StatementEnd without a StatementBegin",
				"003_c.sql:5: error: 003_c: second -- +goose Down annotation",
				`003_c.sql:6: error: 003_c: unknown goose annotation "-- +goose Sideways"; want Up, Down, StatementBegin, StatementEnd or NO TRANSACTION`,
			},
		},
		{
			name:  "unclosed string in an up file",
			files: []File{{Path: "004_d.up.sql", Data: []byte("SELECT 1;\nSELECT 'x;\n")}, {Path: "004_d.down.sql", Data: []byte("SELECT 1;")}},
			want:  []string{"004_d.up.sql:2: error: 004_d: string ' is never closed"},
		},
		{
			name:  "down without up",
			files: []File{{Path: "005_e.down.sql", Data: []byte("SELECT 1;")}},
			want:  []string{"005_e.down.sql: error: down migration without an up migration (add 005_e.up.sql)"},
		},
		{
			name: "duplicate version",
			files: []File{
				{Path: "006_f.up.sql", Data: []byte("SELECT 1;")},
				{Path: "6_g.sql", Data: []byte("-- +goose Up\nSELECT 1;")},
			},
			want: []string{"6_g.sql: error: 6_g: version 6 is also used by 006_f.up.sql; each version must be unique"},
		},
		{
			name:  "version overflow",
			files: []File{{Path: "99999999999999999999_h.sql", Data: []byte("-- +goose Up\n")}},
			want:  []string{"99999999999999999999_h.sql: error: version 99999999999999999999 is not a 64-bit integer"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			migs, err := ParseFiles(tt.files)
			var perr *Error
			if !errors.As(err, &perr) {
				t.Fatalf("ParseFiles = %v, %v; want an *Error", migs, err)
			}
			var got []string
			for _, f := range perr.Findings {
				got = append(got, f.String())
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("findings:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}

func TestParse_GooseWithoutUp(t *testing.T) {
	_, err := Parse([]File{{Path: "db/001_a.sql", Data: []byte("-- just a comment\n")}}, FormatGoose)
	if got, want := fmt.Sprint(err), "db/001_a.sql:1: error: 001_a: no -- +goose Up annotation; a goose migration starts its up section with it"; got != want {
		t.Errorf("error = %q, want %q", got, want)
	}
}

// TestLoadDir_RealisticFormatsAgree checks that the realistic test data
// says the same in golang-migrate and goose format, but for the one goose
// migration that uses NO TRANSACTION to build an index concurrently.
func TestLoadDir_RealisticFormatsAgree(t *testing.T) {
	for _, dialect := range []string{"postgres", "sqlite"} {
		gm, err := LoadDir(filepath.Join("testdata/realistic", dialect, "golang-migrate"))
		if err != nil {
			t.Fatal(err)
		}
		gs, err := LoadDir(filepath.Join("testdata/realistic", dialect, "goose"))
		if err != nil {
			t.Fatal(err)
		}
		if len(gm) != len(gs) || len(gm) < 24 {
			t.Fatalf("%s: %d golang-migrate and %d goose migrations", dialect, len(gm), len(gs))
		}
		for i := range gm {
			a, b := gm[i], gs[i]
			if a.ID != b.ID {
				t.Errorf("%s: migration %d is %s and %s", dialect, i, a.ID, b.ID)
			}
			if b.Up.NoTransaction {
				continue
			}
			if !sameSQL(a.Up.Statements, b.Up.Statements) || !sameSQL(a.Down.Statements, b.Down.Statements) {
				t.Errorf("%s: %s differs between formats", dialect, a.ID)
			}
		}
	}
}

func sameSQL(a, b []Statement) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].SQL != b[i].SQL {
			return false
		}
	}
	return true
}
