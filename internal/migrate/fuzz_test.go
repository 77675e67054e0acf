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
		migs, err := ParseFiles([]File{{Path: "db/001_fuzz.sql", Data: data}})
		checkParsed(t, migs, err, data)
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
