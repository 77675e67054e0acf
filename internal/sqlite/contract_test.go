package sqlite

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/shipgate/shipgate/internal/store"
	"github.com/shipgate/shipgate/internal/storetest"
)

// TestStore_Contract runs the store contract (internal/storetest) against
// SQLite files.
func TestStore_Contract(t *testing.T) {
	storetest.RunWith(t, storetest.Backend{
		Fresh: func(t *testing.T) string { return filepath.Join(t.TempDir(), "shipgate.db") },
		Open: func(t *testing.T, path string, now func() time.Time) store.Store {
			t.Helper()
			s, err := Open(t.Context(), path)
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			if now != nil {
				s.now = now
			}
			t.Cleanup(func() { _ = s.Close() })
			return s
		},
	})
}
