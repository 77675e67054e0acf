package postgres

import (
	"bytes"
	"testing"

	"github.com/shipgate/shipgate/internal/pgtest"
)

// Two servers on one database (two handles) get the same secret, made
// once; another name is another secret.
func TestStore_Secret(t *testing.T) {
	dsn := pgtest.Shared(t).NewDatabase(t)
	a, b := openStore(t, dsn, nil), openStore(t, dsn, nil)
	ka, err := a.Secret(t.Context(), "release_digest")
	if err != nil {
		t.Fatal(err)
	}
	kb, err := b.Secret(t.Context(), "release_digest")
	if err != nil {
		t.Fatal(err)
	}
	if len(ka) != 32 || !bytes.Equal(ka, kb) {
		t.Fatalf("secrets %x and %x, want the same 32 bytes from both servers", ka, kb)
	}
	other, err := a.Secret(t.Context(), "other")
	if err != nil || bytes.Equal(other, ka) {
		t.Fatalf("another name gave %x, %v; want another secret", other, err)
	}
}
