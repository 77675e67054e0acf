package sqlite

import (
	"context"
	"crypto/rand"
	"fmt"
)

// SecretDigestKey names the key of the HMAC that identifies a release in
// audit events and approvals (see rollout.Options.DigestKey).
const SecretDigestKey = "release_digest"

// secretSize is the length of the secrets the store makes: 256 bits, as
// long as an HMAC-SHA256 output, so the key is never the weak part.
const secretSize = 32

// Secret returns the server secret called name, making it (32 random
// bytes) the first time it is asked for. Every server on the same
// database gets the same secret, and it survives restarts; it is never
// written anywhere else, nor logged.
func (s *Store) Secret(ctx context.Context, name string) ([]byte, error) {
	fresh := make([]byte, secretSize)
	if _, err := rand.Read(fresh); err != nil {
		return nil, fmt.Errorf("make secret %s: %w", name, err)
	}
	if _, err := s.write.ExecContext(ctx, `INSERT INTO server_secrets (name, value, created_at) VALUES (?, ?, ?) ON CONFLICT (name) DO NOTHING`,
		name, fresh, formatTime(s.now())); err != nil {
		return nil, fmt.Errorf("store secret %s: %w", name, err)
	}
	var value []byte
	if err := s.write.QueryRowContext(ctx, `SELECT value FROM server_secrets WHERE name = ?`, name).Scan(&value); err != nil {
		return nil, fmt.Errorf("read secret %s: %w", name, err)
	}
	return value, nil
}
