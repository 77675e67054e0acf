package sqldb

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/shipgate/shipgate/internal/migrate"
)

// sqliteSchema returns the schema SQLite reports after ddl.
func sqliteSchema(t *testing.T, ddl string) migrate.Schema {
	t.Helper()
	db, err := target{d: sqlite{}, path: filepath.Join(t.TempDir(), "s.db")}.open(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	stmts, err := migrate.Split(ddl, 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := execScript(t.Context(), db, migrate.Script{Statements: stmts}); err != nil {
		t.Fatalf("%s: %v", ddl, err)
	}
	s, err := sqlite{}.schema(t.Context(), db)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestSQLiteSchema_Normalised checks that what SQLite keeps as written
// compares by meaning: each pair of spellings compares equal, and a real
// difference next to each still shows.
func TestSQLiteSchema_Normalised(t *testing.T) {
	tests := []struct {
		name       string
		a, same    string
		other      string
		wantChange string
	}{
		{
			name:       "foreign key to the primary key, with and without its column",
			a:          "CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT UNIQUE); CREATE TABLE posts (id INTEGER PRIMARY KEY, user_id INTEGER REFERENCES users)",
			same:       "CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT UNIQUE); CREATE TABLE posts (id INTEGER PRIMARY KEY, user_id INTEGER REFERENCES users(id))",
			other:      "CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT UNIQUE); CREATE TABLE posts (id INTEGER PRIMARY KEY, user_id INTEGER REFERENCES users(email))",
			wantChange: "table posts: constraint foreign key (user_id) references users (id) missing",
		},
		{
			name:       "expression and partial index, spacing, quoting and case",
			a:          `CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT, email TEXT, gone INTEGER); CREATE INDEX users_name ON users (lower(name)) WHERE gone IS NULL`,
			same:       "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT, email TEXT, gone INTEGER); CREATE INDEX \"users_name\"   ON \"users\"(LOWER(\"name\"))\n   where gone is null",
			other:      `CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT, email TEXT, gone INTEGER); CREATE INDEX users_name ON users (lower(email)) WHERE gone IS NULL`,
			wantChange: "table users: index users_name predicate differs",
		},
		{
			name:       "boolean defaults in either case",
			a:          "CREATE TABLE flags (id INTEGER PRIMARY KEY, on_ BOOLEAN NOT NULL DEFAULT FALSE, n INTEGER DEFAULT (0))",
			same:       "CREATE TABLE flags (id INTEGER PRIMARY KEY, on_ BOOLEAN NOT NULL DEFAULT false, n INTEGER DEFAULT 0)",
			other:      "CREATE TABLE flags (id INTEGER PRIMARY KEY, on_ BOOLEAN NOT NULL DEFAULT true, n INTEGER DEFAULT 0)",
			wantChange: "table flags: column on_ default differs (now true, was false)",
		},
		{
			name:       "check constraints, spacing and case",
			a:          "CREATE TABLE t (id INTEGER PRIMARY KEY, n INTEGER CHECK (n > 0 AND n < 10))",
			same:       "CREATE TABLE t (id INTEGER PRIMARY KEY, n INTEGER CHECK (n>0 and n<10))",
			other:      "CREATE TABLE t (id INTEGER PRIMARY KEY, n INTEGER CHECK (n > 0 AND n < 11))",
			wantChange: "table t: constraint check (n > 0 and n < 10) missing",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := sqliteSchema(t, tt.a)
			if diffs := migrate.DiffSchemas(a, sqliteSchema(t, tt.same)); len(diffs) > 0 {
				t.Errorf("same schema reported as different: %v", diffs)
			}
			diffs := migrate.DiffSchemas(a, sqliteSchema(t, tt.other))
			var got []string
			for _, d := range diffs {
				got = append(got, d.String())
			}
			if !strings.Contains(strings.Join(got, "\n"), tt.wantChange) {
				t.Errorf("differences:\n%s\nwant one starting %q", strings.Join(got, "\n"), tt.wantChange)
			}
		})
	}
}
