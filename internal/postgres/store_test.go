package postgres

import (
	"os"
	"testing"
	"time"

	"github.com/shipgate/shipgate/internal/pgtest"
	"github.com/shipgate/shipgate/internal/store"
	"github.com/shipgate/shipgate/internal/storetest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// openStore opens the store at dsn for t, closed when t ends.
func openStore(t *testing.T, dsn string, now func() time.Time) *Store {
	t.Helper()
	s, err := Open(t.Context(), dsn)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	if now != nil {
		s.now = now
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// TestStore_Contract runs the store contract (internal/storetest) against
// a real PostgreSQL server, one new database per test.
func TestStore_Contract(t *testing.T) {
	srv := pgtest.Shared(t)
	storetest.RunWith(t, storetest.Backend{
		Fresh: func(t *testing.T) string { return srv.NewDatabase(t) },
		Open: func(t *testing.T, dsn string, now func() time.Time) store.Store {
			t.Helper()
			return openStore(t, dsn, now)
		},
	})
}
