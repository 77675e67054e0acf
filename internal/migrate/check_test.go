package migrate

import (
	"reflect"
	"strings"
	"testing"
)

func TestCheck_Broken(t *testing.T) {
	migs, err := LoadDir("testdata/broken")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, f := range Check(migs) {
		got = append(got, f.String())
	}
	want := []string{
		"testdata/broken/002_create_posts.down.sql: error: 002_create_posts: no down migration: add this file with statements that undo testdata/broken/002_create_posts.up.sql" + irreversibleHint,
		"testdata/broken/003_add_nickname.down.sql:1: error: 003_add_nickname: down migration is empty (only comments or space): write the statements that undo the up migration" + irreversibleHint,
		"testdata/broken/004_replace_bio.up.sql:3: warning: 004_replace_bio: drops column users.bio and the data in it; the down migration can recreate the table or column but not its data",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Check:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if !HasErrors(Check(migs)) {
		t.Error("HasErrors = false")
	}
}

// goose returns a one-migration goose file.
func goose(up, down string) string {
	return "-- +goose Up\n" + up + "\n-- +goose Down\n" + down + "\n"
}

func TestCheck_Warnings(t *testing.T) {
	const users = "CREATE TABLE users (id bigint PRIMARY KEY, name varchar(255) NOT NULL, bio text, n integer, price numeric(10,2));"
	tests := []struct {
		name  string
		files []string
		want  []string
	}{
		{
			name:  "drop table in up",
			files: []string{goose(users, "DROP TABLE users;"), goose("\nDROP TABLE users;", users)},
			want:  []string{"2_m.sql:3: warning: 2_m: drops table users and every row in it; the down migration can recreate the table or column but not its data"},
		},
		{
			name:  "dropping what the up created is the inverse, not a loss",
			files: []string{goose(users+"\nALTER TABLE users ADD COLUMN age int;", "ALTER TABLE users DROP COLUMN age;\nDROP TABLE users;")},
			want:  nil,
		},
		{
			name:  "down dropping what its up did not create",
			files: []string{goose(users, "DROP TABLE users;"), goose("SELECT 1;", "ALTER TABLE users DROP COLUMN bio;")},
			want:  []string{"2_m.sql:4: warning: 2_m: drops column users.bio and the data in it; a rollback would lose the data in it"},
		},
		{
			name:  "narrowing varchar",
			files: []string{goose(users, "DROP TABLE users;"), goose("ALTER TABLE users ALTER COLUMN name TYPE varchar(100);", "ALTER TABLE users ALTER COLUMN name TYPE varchar(255);")},
			want:  []string{"2_m.sql:2: warning: 2_m: changes column users.name from varchar(255) to varchar(100): values longer than 100 characters fail or are cut"},
		},
		{
			name: "widening in up narrows in down",
			files: []string{goose(users, "DROP TABLE users;"), goose("ALTER TABLE users ALTER COLUMN name SET DATA TYPE VARCHAR (500);",
				"ALTER TABLE users ALTER COLUMN name TYPE VARCHAR(255);")},
			want: []string{"2_m.sql:4: warning: 2_m: changes column users.name from varchar(500) to varchar(255): values longer than 255 characters fail or are cut"},
		},
		{
			name:  "text to varchar, bigint to int, numeric scale",
			files: []string{goose(users, "DROP TABLE users;"), goose("ALTER TABLE users ALTER bio TYPE varchar(80), ALTER COLUMN id TYPE int, ALTER price TYPE numeric(10,1);", "SELECT 1;")},
			want: []string{
				"2_m.sql:2: warning: 2_m: changes column users.bio from text to varchar(80): values longer than 80 characters fail or are cut",
				"2_m.sql:2: warning: 2_m: changes column users.id from bigint to int: values beyond a 4-byte integer fail",
				"2_m.sql:2: warning: 2_m: changes column users.price from numeric(10,2) to numeric(10,1): values with more digits fail or are rounded",
			},
		},
		{
			name: "not null",
			files: []string{goose(users, "DROP TABLE users;"), goose(
				"ALTER TABLE users ADD COLUMN email text NOT NULL;\nALTER TABLE users ADD COLUMN plan text NOT NULL DEFAULT 'free';\nALTER TABLE users ALTER COLUMN bio SET NOT NULL;",
				"ALTER TABLE users DROP COLUMN plan, DROP COLUMN email;\nALTER TABLE users ALTER COLUMN bio DROP NOT NULL;")},
			want: []string{
				"2_m.sql:2: warning: 2_m: adds column users.email NOT NULL without a DEFAULT: fails if the table has rows; add a DEFAULT, or add it nullable, backfill, then SET NOT NULL",
				"2_m.sql:4: warning: 2_m: sets users.bio NOT NULL: fails if any row has NULL in it; backfill first",
			},
		},
		{
			name: "sqlite rebuild that narrows and loses a column",
			files: []string{goose(users, "DROP TABLE users;"), goose(
				"CREATE TABLE users_new (id bigint PRIMARY KEY, name varchar(100) NOT NULL, n integer, price numeric(10,2));\n"+
					"INSERT INTO users_new SELECT id, name, n, price FROM users;\nDROP TABLE users;\nALTER TABLE users_new RENAME TO users;",
				"SELECT 1;")},
			want: []string{
				"2_m.sql:4: warning: 2_m: rebuilds table users without column bio: the data in it is lost",
				"2_m.sql:5: warning: 2_m: rebuilds table users with column name as varchar(100) instead of varchar(255): values longer than 100 characters fail or are cut",
			},
		},
		{
			name:  "truncate",
			files: []string{goose(users, "DROP TABLE users;"), goose("TRUNCATE users;", "SELECT 1;")},
			want:  []string{"2_m.sql:2: warning: 2_m: truncates table users: every row in it is lost"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var files []File
			for i, f := range tt.files {
				files = append(files, File{Path: string(rune('1'+i)) + "_m.sql", Data: []byte(f)})
			}
			migs, err := ParseFiles(files)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, f := range Check(migs) {
				got = append(got, f.String())
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Check:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}
