package pgtest

import (
	"database/sql"
	"os"
	"testing"
)

func TestMain(m *testing.M) { os.Exit(Main(m)) }

func TestShared_Query(t *testing.T) {
	s := Shared(t)
	db, err := sql.Open("pgx", s.NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var user string
	if err := db.QueryRowContext(t.Context(), "SELECT current_user").Scan(&user); err != nil {
		t.Fatal(err)
	}
	if got, want := user, "postgres"; got != want {
		t.Errorf("current_user = %q, want %q", got, want)
	}
	if Shared(t) != s {
		t.Error("Shared started a second server")
	}
}

func TestNew_StopRemovesDir(t *testing.T) {
	s := New(t)
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(s.dir); !os.IsNotExist(err) {
		t.Errorf("dir %s still there after Stop: %v", s.dir, err)
	}
	if err := s.Stop(); err != nil {
		t.Errorf("second Stop: %v", err)
	}
}
