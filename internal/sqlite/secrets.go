package sqlite

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"fmt"

	"github.com/shipgate/shipgate/internal/rollout"
	"github.com/shipgate/shipgate/internal/store"
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

// exportSecrets reads every server secret, by name.
func exportSecrets(ctx context.Context, tx *sql.Tx) ([]store.Secret, error) {
	rows, err := tx.QueryContext(ctx, `SELECT name, value, created_at FROM server_secrets ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("server secrets: %w", err)
	}
	defer func() { _ = rows.Close() }()
	var out []store.Secret
	for rows.Next() {
		var (
			sec     store.Secret
			created string
		)
		if err := rows.Scan(&sec.Name, &sec.Value, &created); err != nil {
			return nil, fmt.Errorf("server secrets: %w", err)
		}
		if sec.CreatedAt, err = parseTime(created); err != nil {
			return nil, fmt.Errorf("server secret %s: %w", sec.Name, err)
		}
		out = append(out, sec)
	}
	return out, rows.Err()
}

// importSecrets writes secrets, keeping one the store already holds with
// the same value; another value is an error wrapping
// store.ErrSecretMismatch (and rollout.ErrConflict): neither kept, which
// would change every copied digest, nor overwritten, which would change
// the digests of what the target already recorded.
func importSecrets(ctx context.Context, tx *sql.Tx, secrets []store.Secret) error {
	for _, sec := range secrets {
		if _, err := tx.ExecContext(ctx, `INSERT INTO server_secrets (name, value, created_at) VALUES (?, ?, ?) ON CONFLICT (name) DO NOTHING`,
			sec.Name, sec.Value, formatTime(sec.CreatedAt)); err != nil {
			return fmt.Errorf("import server secret %s: %w", sec.Name, err)
		}
		var value []byte
		if err := tx.QueryRowContext(ctx, `SELECT value FROM server_secrets WHERE name = ?`, sec.Name).Scan(&value); err != nil {
			return fmt.Errorf("import server secret %s: %w", sec.Name, err)
		}
		if !bytes.Equal(value, sec.Value) {
			return fmt.Errorf("%w %s, not the source's: a server has run on the target and made its own, and the copied release digests would not match it; copy into a new database (%w)",
				store.ErrSecretMismatch, sec.Name, rollout.ErrConflict)
		}
	}
	return nil
}
