package releases

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestMigrations_Options checks that the deploy's migration gate reads
// the migrations section as the CLI reads its flags: the seed and setup
// files may live among the migrations, the setup script runs on the
// scratch database, the format is forced, and migrations marked
// irreversible are named for the gate.
func TestRunner_Options(t *testing.T) {
	dir := t.TempDir()
	write := func(name, data string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("001_index.up.sql", "CREATE INDEX base_x ON base (x);")
	write("001_index.down.sql", "DROP INDEX base_x;")
	write("002_fill.up.sql", "INSERT INTO base (x) VALUES (1);")
	write("002_fill.down.sql", "-- shipgate:irreversible billing reads the row at once\n")
	write("setup.sql", "CREATE TABLE base (x integer);")
	write("seed.sql", "INSERT INTO base (x) VALUES (2);")
	path := func(f string) string { return filepath.Join(dir, f) }
	db := "sqlite:" + filepath.Join(t.TempDir(), "app.db")

	ms := New(Options{SeedFile: path("seed.sql"), SetupFile: path("setup.sql")})
	m, err := ms.Open(t.Context(), dir, db)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer m.Close()
	problems, err := m.Verify(t.Context(), path("seed.sql"))
	if err != nil || len(problems) > 0 {
		t.Errorf("Verify = %v, %v; want no problems", problems, err)
	}
	if irr := m.Irreversible(); len(irr) != 1 || irr[0] != "002_fill (billing reads the row at once)" {
		t.Errorf("the migrator does not name the irreversible migration for the gate")
	}

	// Without the setup script the index has no table.
	ms = New(Options{SeedFile: path("seed.sql"), Ignore: []string{"setup.sql"}})
	m2, err := ms.Open(t.Context(), dir, db)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer m2.Close()
	if problems, err := m2.Verify(t.Context(), ""); err != nil || len(problems) == 0 || !strings.Contains(problems[0], "001_index: up fails") {
		t.Errorf("Verify without setup = %v, %v", problems, err)
	}

	// A file that is not a migration and not ignored stops the gate.
	ms = New(Options{})
	if _, err := ms.Open(t.Context(), dir, db); err == nil || !strings.Contains(err.Error(), "seed.sql: error: not read as a migration") {
		t.Errorf("Open with seed.sql not ignored = %v", err)
	}
	ms = New(Options{Format: "goose", Ignore: []string{"*.sql"}})
	if _, err := ms.Open(t.Context(), dir, db); err == nil || !strings.Contains(err.Error(), "no .sql migration files") {
		t.Errorf("Open with every file ignored = %v", err)
	}
}
