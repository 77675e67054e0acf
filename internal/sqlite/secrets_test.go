package sqlite

import (
	"bytes"
	"path/filepath"
	"testing"
)

// The secret is made once and survives a reopen of the database; another
// name is another secret.
func TestStore_Secret(t *testing.T) {
	path := filepath.Join(t.TempDir(), "shipgate.db")
	s, err := Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	k1, err := s.Secret(t.Context(), SecretDigestKey)
	if err != nil {
		t.Fatal(err)
	}
	other, err := s.Secret(t.Context(), "other")
	if err != nil || bytes.Equal(other, k1) {
		t.Fatalf("another name gave %x, %v; want another secret", other, err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	k2, err := s.Secret(t.Context(), SecretDigestKey)
	if err != nil {
		t.Fatal(err)
	}
	if len(k1) != 32 || !bytes.Equal(k1, k2) {
		t.Fatalf("secrets %x then %x, want the same 32 bytes after a reopen", k1, k2)
	}
}
