package sqldb

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/shipgate/shipgate/internal/migrate"
	"github.com/shipgate/shipgate/internal/pgtest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// databases runs fn once per dialect, with a database URL for a Runner
// (a new, empty database) and one for Verify.
func databases(t *testing.T, fn func(t *testing.T, dialect, runnerURL, verifyURL string)) {
	t.Run("sqlite", func(t *testing.T) {
		fn(t, "sqlite", "sqlite:"+filepath.Join(t.TempDir(), "app.db"), "sqlite")
	})
	t.Run("postgres", func(t *testing.T) {
		url := pgtest.Shared(t).NewDatabase(t)
		fn(t, "postgres", url, url)
	})
}

func load(t *testing.T, dir string) []migrate.Migration {
	t.Helper()
	migs, err := migrate.LoadDir(dir)
	if err != nil {
		t.Fatalf("LoadDir(%s): %v", dir, err)
	}
	return migs
}

func verifyDir(t *testing.T, url, dir string, opts migrate.VerifyOptions) migrate.Report {
	t.Helper()
	r, err := Verify(t.Context(), url, load(t, dir), opts)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	return r
}

func seed(t *testing.T, file string) migrate.VerifyOptions { return seedOptions(t, file) }

func seedOptions(t testing.TB, file string) migrate.VerifyOptions {
	t.Helper()
	data, err := os.ReadFile(file) //nolint:gosec // test data
	if err != nil {
		t.Fatal(err)
	}
	return migrate.VerifyOptions{Seed: data, SeedFile: file}
}

// errorsOf returns the error findings of r as "migration: message".
func errorsOf(r migrate.Report) []string {
	var out []string
	for _, f := range r.Findings {
		if f.Severity == migrate.SeverityError {
			out = append(out, f.Migration+": "+f.Message)
		}
	}
	return out
}

// wantFindings checks that every want is the start of one error finding,
// and that there are no other errors.
func wantFindings(t *testing.T, r migrate.Report, want ...string) {
	t.Helper()
	got := errorsOf(r)
	rest := slices.Clone(got)
	for _, w := range want {
		i := slices.IndexFunc(rest, func(g string) bool { return strings.HasPrefix(g, w) })
		if i < 0 {
			t.Errorf("no finding starting with\n  %s", w)
			continue
		}
		rest = slices.Delete(rest, i, i+1)
	}
	if len(rest) > 0 || t.Failed() {
		t.Errorf("errors found:\n  %s", strings.Join(got, "\n  "))
	}
}

func TestVerify_Broken(t *testing.T) {
	databases(t, func(t *testing.T, dialect, _, url string) {
		r := verifyDir(t, url, "../testdata/broken", migrate.VerifyOptions{})
		wantFindings(t, r,
			"002_create_posts: no down migration",
			"003_add_nickname: down migration is empty",
			"004_replace_bio: down does not restore the schema: table users: column bio missing after down (was text)",
			// The second up copies from bio, which the down did not bring back.
			"004_replace_bio: up fails after its down: statement 2:",
		)
		if r.OK() {
			t.Error("report OK")
		}
	})
}

func TestVerify_Narrowing(t *testing.T) {
	databases(t, func(t *testing.T, dialect, _, url string) {
		r := verifyDir(t, url, "../testdata/narrowing/"+dialect, seed(t, "../testdata/narrowing/seed.sql"))
		if got, want := r.SeedAfter, int64(2); got != want {
			t.Errorf("SeedAfter = %d, want %d (the first version whose schema holds the seed)", got, want)
		}
		switch dialect {
		case "postgres":
			wantFindings(t, r,
				"002_widen_name: down fails on the seeded rows: statement 1: ERROR: value too long for type character varying(100)",
				"003_narrow_email: up fails on the seeded rows: statement 1: ERROR: value too long for type character varying(64)",
			)
		case "sqlite":
			wantFindings(t, r,
				"002_widen_name: down cannot hold the seeded rows: table users: column name cannot hold its data after down (declared varchar(100), holds a value of 180 characters)",
				"003_narrow_email: up cannot hold the seeded rows: table users: column email cannot hold its data after up (declared varchar(64), holds a value of 100 characters)",
			)
		}
	})
}

func TestVerify_NarrowingWithoutSeed(t *testing.T) {
	databases(t, func(t *testing.T, dialect, _, url string) {
		r := verifyDir(t, url, "../testdata/narrowing/"+dialect, migrate.VerifyOptions{})
		wantFindings(t, r)
		var warnings []string
		for _, f := range r.Findings {
			warnings = append(warnings, f.String())
		}
		joined := strings.Join(warnings, "\n")
		if !strings.Contains(joined, "002_widen_name") || !strings.Contains(joined, "003_narrow_email") {
			t.Errorf("no static warning for both narrowings:\n%s", joined)
		}
	})
}

func TestVerify_DroppedColumnData(t *testing.T) {
	databases(t, func(t *testing.T, dialect, _, url string) {
		r := verifyDir(t, url, "../testdata/dataloss", seed(t, "../testdata/dataloss.seed.sql"))
		wantFindings(t, r,
			"002_drop_bio: up then down loses seeded data: table users: column bio values lost or changed after up and down (2 of 2 values are now NULL or default)",
		)
		if got, want := r.SeedAfter, int64(1); got != want {
			t.Errorf("SeedAfter = %d, want %d", got, want)
		}
	})
}

func TestVerify_SeedNeverFits(t *testing.T) {
	databases(t, func(t *testing.T, dialect, _, url string) {
		opts := migrate.VerifyOptions{Seed: []byte("INSERT INTO nowhere (id) VALUES (1);"), SeedFile: "seed.sql"}
		r := verifyDir(t, url, "../testdata/dataloss", opts)
		got := errorsOf(r)
		if len(got) != 1 || !strings.HasPrefix(got[0], ": the seed fails after every migration") {
			t.Errorf("findings = %q, want one saying the seed never fits", got)
		}
	})
}

func TestVerify_Realistic(t *testing.T) {
	databases(t, func(t *testing.T, dialect, _, url string) {
		for _, format := range []string{"golang-migrate", "goose"} {
			t.Run(format, func(t *testing.T) {
				dir := filepath.Join("../testdata/realistic", dialect, format)
				r := verifyDir(t, url, dir, seed(t, filepath.Join("../testdata/realistic", dialect, "seed.sql")))
				wantFindings(t, r)
				if r.Migrations < 24 || r.Verified != r.Migrations || len(r.NotVerified) > 0 {
					t.Errorf("verified %d of %d; not verified: %v", r.Verified, r.Migrations, r.NotVerified)
				}
				if r.DataChecked != r.Migrations-5 || len(r.DataNotChecked) > 0 {
					t.Errorf("data checked for %d migrations, want %d from the seed's on; not checked: %v", r.DataChecked, r.Migrations-5, r.DataNotChecked)
				}
				if got, want := r.SeedAfter, int64(6); got != want {
					t.Errorf("SeedAfter = %d, want %d (create_memberships, the first schema the seed fits)", got, want)
				}
			})
		}
	})
}

// TestVerify_LeavesNoScratchDatabase checks that the scratch databases
// are dropped.
func TestVerify_LeavesNoScratchDatabase(t *testing.T) {
	url := pgtest.Shared(t).NewDatabase(t)
	verifyDir(t, url, "../testdata/dataloss", seed(t, "../testdata/dataloss.seed.sql"))
	tg, err := parseURL(url, false)
	if err != nil {
		t.Fatal(err)
	}
	db, err := tg.open(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRowContext(t.Context(), `SELECT count(*) FROM pg_database WHERE datname LIKE 'shipgate_verify_%'`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Errorf("%d scratch databases left", n)
	}
}
