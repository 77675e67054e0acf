package migrate

import (
	"errors"
	"reflect"
	"testing"
)

func TestSplit(t *testing.T) {
	tests := []struct {
		name string
		sql  string
		want []Statement
	}{
		{
			name: "two statements on their lines",
			sql:  "CREATE TABLE a (id int);\n\nCREATE TABLE b (id int);\n",
			want: []Statement{{SQL: "CREATE TABLE a (id int)", Line: 1}, {SQL: "CREATE TABLE b (id int)", Line: 3}},
		},
		{
			name: "semicolons in strings and identifiers",
			sql:  "INSERT INTO \"a;b\" VALUES ('x;''y', `q;`, [z;]);\nSELECT E'it\\'s;';",
			want: []Statement{{SQL: "INSERT INTO \"a;b\" VALUES ('x;''y', `q;`, [z;])", Line: 1}, {SQL: "SELECT E'it\\'s;'", Line: 2}},
		},
		{
			name: "comments are not statements and hide semicolons",
			sql:  "-- one; two\n/* three; /* nested; */ four; */\nSELECT 1; -- trailing;\n",
			want: []Statement{{SQL: "SELECT 1", Line: 3}},
		},
		{
			name: "dollar quotes",
			sql:  "CREATE FUNCTION f() RETURNS int AS $$ SELECT 1; $$ LANGUAGE sql;\nDO $body$ BEGIN PERFORM 1; END $body$;",
			want: []Statement{
				{SQL: "CREATE FUNCTION f() RETURNS int AS $$ SELECT 1; $$ LANGUAGE sql", Line: 1},
				{SQL: "DO $body$ BEGIN PERFORM 1; END $body$", Line: 2},
			},
		},
		{
			name: "parameters and dollars in names are not quotes",
			sql:  "SELECT $1, a$b FROM t;SELECT 2",
			want: []Statement{{SQL: "SELECT $1, a$b FROM t", Line: 1}, {SQL: "SELECT 2", Line: 1}},
		},
		{
			name: "sqlite trigger body",
			sql: "CREATE TRIGGER t AFTER INSERT ON a BEGIN\n  UPDATE b SET n = CASE WHEN n IS NULL THEN 1 ELSE n + 1 END;\n  DELETE FROM c;\nEND;\n" +
				"BEGIN;\nCOMMIT;",
			want: []Statement{
				{SQL: "CREATE TRIGGER t AFTER INSERT ON a BEGIN\n  UPDATE b SET n = CASE WHEN n IS NULL THEN 1 ELSE n + 1 END;\n  DELETE FROM c;\nEND", Line: 1},
				{SQL: "BEGIN", Line: 5},
				{SQL: "COMMIT", Line: 6},
			},
		},
		{
			name: "array subscripts are not sqlite quotes",
			sql:  "SELECT ARRAY[1,2], tags[1] FROM t WHERE x = '{}'::text[];",
			want: []Statement{{SQL: "SELECT ARRAY[1,2], tags[1] FROM t WHERE x = '{}'::text[]", Line: 1}},
		},
		{name: "only comments", sql: "-- nothing\n/* at all */\n;;\n", want: nil},
		{name: "last statement without semicolon", sql: "\n\nSELECT 1", want: []Statement{{SQL: "SELECT 1", Line: 3}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Split(tt.sql, 1)
			if err != nil {
				t.Fatalf("Split: %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Split =\n%#v\nwant\n%#v", got, tt.want)
			}
		})
	}
}

func TestSplit_Errors(t *testing.T) {
	tests := []struct {
		sql      string
		wantLine int
		wantMsg  string
	}{
		{"SELECT 1;\nSELECT 'open;\n\n", 2, "string ' is never closed"},
		{"SELECT 1;\n\n/* open", 3, "block comment /* is never closed"},
		{"CREATE FUNCTION f() AS $fn$\nSELECT 1;\n$$;", 1, "dollar quote $fn$ is never closed"},
		{"SELECT \"open", 1, "quoted identifier \" is never closed"},
	}
	for _, tt := range tests {
		_, err := Split(tt.sql, 1)
		var se *SyntaxError
		if !errors.As(err, &se) {
			t.Fatalf("Split(%q) error = %v, want a *SyntaxError", tt.sql, err)
		}
		if got, want := se.Line, tt.wantLine; got != want {
			t.Errorf("Split(%q) line = %d, want %d", tt.sql, got, want)
		}
		if got, want := se.Message, tt.wantMsg; got != want {
			t.Errorf("Split(%q) message = %q, want %q", tt.sql, got, want)
		}
	}
}

func TestSplit_FirstLine(t *testing.T) {
	got, err := Split("\nSELECT 1;", 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Line != 11 {
		t.Errorf("Split from line 10 = %+v, want one statement at line 11", got)
	}
}
