package migrate

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// seedCorpus adds every .sql file under testdata to f.
func seedCorpus(f *testing.F, add func(data []byte)) {
	f.Helper()
	err := filepath.WalkDir("testdata", func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".sql") {
			return err
		}
		data, err := os.ReadFile(path) //nolint:gosec // test data
		if err != nil {
			return err
		}
		add(data)
		return nil
	})
	if err != nil {
		f.Fatal(err)
	}
}

// checkParsed checks what every consumer of parsed migrations relies on,
// and that an error says where the problem is.
func checkParsed(t *testing.T, migs []Migration, err error, data ...[]byte) {
	t.Helper()
	if err != nil {
		var perr *Error
		if !errors.As(err, &perr) {
			t.Fatalf("error is a %T, want a *migrate.Error: %v", err, err)
		}
		if len(perr.Findings) == 0 {
			t.Fatal("*migrate.Error without findings")
		}
		for _, f := range perr.Findings {
			if f.File == "" || f.Line < 1 || f.Message == "" {
				t.Errorf("finding without file:line or message: %s", f)
			}
		}
		return
	}
	lines := 1
	for _, d := range data {
		lines = max(lines, strings.Count(string(d), "\n")+1)
	}
	for _, m := range migs {
		for _, s := range []Script{m.Up, m.Down} {
			for _, st := range s.Statements {
				if strings.TrimSpace(st.SQL) == "" {
					t.Errorf("%s: empty statement", m.ID)
				}
				if st.Line < 1 || st.Line > lines {
					t.Errorf("%s: statement at line %d of a %d-line file", m.ID, st.Line, lines)
				}
			}
		}
	}
	// Check must not panic on anything that parsed.
	_ = Check(migs)
}

// FuzzParseGoose checks that no goose file makes parsing or checking
// panic, and that every parse error carries file:line.
func FuzzParseGoose(f *testing.F) {
	seedCorpus(f, func(data []byte) { f.Add(data) })
	f.Add([]byte("-- +goose Up\n-- +goose StatementBegin\nSELECT $a$ ; $a$;\n-- +goose StatementEnd\n-- +goose Down\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		migs, err := Parse([]File{{Path: "db/001_fuzz.sql", Data: data}}, FormatGoose)
		checkParsed(t, migs, err, data)
	})
}

// FuzzParseDbmate does the same for a dbmate file.
func FuzzParseDbmate(f *testing.F) {
	seedCorpus(f, func(data []byte) { f.Add(data) })
	f.Add([]byte("-- migrate:up transaction:false\nCREATE INDEX CONCURRENTLY i ON t (a);\n-- migrate:down\nDROP INDEX i;\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		migs, err := Parse([]File{{Path: "db/20240101000000_fuzz.sql", Data: data}}, FormatDbmate)
		checkParsed(t, migs, err, data)
	})
}

// FuzzParseSQLMigrate does the same for a sql-migrate file.
func FuzzParseSQLMigrate(f *testing.F) {
	seedCorpus(f, func(data []byte) { f.Add(data) })
	f.Add([]byte("-- +migrate Up notransaction\n-- +migrate StatementBegin\nSELECT 1;\n-- +migrate StatementEnd\n-- +migrate Down\nSELECT 2;\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		migs, err := Parse([]File{{Path: "db/1-fuzz.sql", Data: data}}, FormatSQLMigrate)
		checkParsed(t, migs, err, data)
	})
}

// FuzzParseNames checks that any set of file names and contents either
// parses or fails with findings that name a file, and never panics: the
// format detection of every name.
func FuzzParseNames(f *testing.F) {
	for _, n := range []string{"001_a.up.sql", "0175.up.sql", "V1__a.sql", "U1__a.sql", "R__a.sql", "1_a.sql", "V0001.Name.up.sql", "20240101_x.sql", "2_x.go"} {
		f.Add(n, []byte("-- +goose Up\nSELECT 1;\n-- +goose Down\nSELECT 2;\n"))
		f.Add(n, []byte("-- migrate:up\nSELECT 1;\n"))
	}
	f.Fuzz(func(t *testing.T, name string, data []byte) {
		if name == "" || strings.ContainsAny(name, "/\\") {
			return
		}
		migs, err := ParseFiles([]File{{Path: name, Data: data}, {Path: "V9__b.sql", Data: []byte("SELECT 1;")}})
		if err != nil {
			var perr *Error
			if !errors.As(err, &perr) || len(perr.Findings) == 0 {
				t.Fatalf("error %T without findings: %v", err, err)
			}
			for _, f := range perr.Findings {
				if f.File == "" || f.Message == "" {
					t.Errorf("finding without file or message: %s", f)
				}
			}
			return
		}
		_ = Check(migs)
	})
}

// FuzzParseGolangMigrate does the same for a golang-migrate pair.
func FuzzParseGolangMigrate(f *testing.F) {
	seedCorpus(f, func(data []byte) { f.Add(data, []byte("DROP TABLE x;")) })
	f.Fuzz(func(t *testing.T, up, down []byte) {
		migs, err := ParseFiles([]File{{Path: "db/001_fuzz.up.sql", Data: up}, {Path: "db/001_fuzz.down.sql", Data: down}})
		checkParsed(t, migs, err, up, down)
	})
}
