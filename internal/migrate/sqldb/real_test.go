package sqldb

import (
	"os"
	"strings"
	"testing"

	"github.com/shipgate/shipgate/internal/migrate"
	"github.com/shipgate/shipgate/internal/pgtest"
)

// TestVerify_RealFolder verifies a folder named by SHIPGATE_REAL_DIR on
// the throwaway PostgreSQL server, to try Shipgate on a real project's
// migrations: SHIPGATE_REAL_FORMAT and SHIPGATE_REAL_IGNORE (comma
// separated) are --format and --ignore. It prints the findings and
// always passes: it is a tool, not a check.
func TestVerify_RealFolder(t *testing.T) {
	dir := os.Getenv("SHIPGATE_REAL_DIR")
	if dir == "" {
		t.Skip("SHIPGATE_REAL_DIR not set")
	}
	format, err := migrate.ParseFormat(os.Getenv("SHIPGATE_REAL_FORMAT"))
	if err != nil {
		t.Fatal(err)
	}
	var ignore []string
	if s := os.Getenv("SHIPGATE_REAL_IGNORE"); s != "" {
		ignore = strings.Split(s, ",")
	}
	migs, err := migrate.Load(dir, migrate.LoadOptions{Format: format, Ignore: ignore})
	if err != nil {
		t.Fatal(err)
	}
	url := pgtest.Shared(t).NewDatabase(t)
	r, err := Verify(t.Context(), url, migs, migrate.VerifyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range r.Findings {
		t.Log(f)
	}
	t.Logf("verified %d of %d; not verified: %s", r.Verified, r.Migrations, notVerified(r))
}
