package postgres

import (
	"context"
	"crypto/rand"
	"fmt"
)

// Secret returns the server secret called name (sqlite.SecretDigestKey:
// the key of the release digests), making it (32 random bytes) the first
// time any server on the database asks for it: every server of a
// high-availability group gets the same one, so that a digest recorded by
// one leader is recomputed alike by the next. It is never written
// anywhere else, nor logged.
func (s *Store) Secret(ctx context.Context, name string) ([]byte, error) {
	fresh := make([]byte, 32)
	if _, err := rand.Read(fresh); err != nil {
		return nil, fmt.Errorf("make secret %s: %w", name, err)
	}
	if _, err := s.pool.Exec(ctx, `INSERT INTO server_secrets (name, value, created_at) VALUES ($1, $2, $3) ON CONFLICT (name) DO NOTHING`,
		name, fresh, formatTime(s.now())); err != nil {
		return nil, fmt.Errorf("store secret %s: %w", name, err)
	}
	var value []byte
	if err := s.pool.QueryRow(ctx, `SELECT value FROM server_secrets WHERE name = $1`, name).Scan(&value); err != nil {
		return nil, fmt.Errorf("read secret %s: %w", name, err)
	}
	return value, nil
}
