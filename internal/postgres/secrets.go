package postgres

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/shipgate/shipgate/internal/rollout"
	"github.com/shipgate/shipgate/internal/store"
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

// exportSecrets reads every server secret, by name.
func exportSecrets(ctx context.Context, tx pgx.Tx) ([]store.Secret, error) {
	rows, err := tx.Query(ctx, `SELECT name, value, created_at FROM server_secrets ORDER BY name COLLATE "C"`)
	if err != nil {
		return nil, fmt.Errorf("server secrets: %w", err)
	}
	defer rows.Close()
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
func importSecrets(ctx context.Context, tx pgx.Tx, secrets []store.Secret) error {
	for _, sec := range secrets {
		if _, err := tx.Exec(ctx, `INSERT INTO server_secrets (name, value, created_at) VALUES ($1, $2, $3) ON CONFLICT (name) DO NOTHING`,
			sec.Name, sec.Value, formatTime(sec.CreatedAt)); err != nil {
			return fmt.Errorf("import server secret %s: %w", sec.Name, err)
		}
		var value []byte
		if err := tx.QueryRow(ctx, `SELECT value FROM server_secrets WHERE name = $1`, sec.Name).Scan(&value); err != nil {
			return fmt.Errorf("import server secret %s: %w", sec.Name, err)
		}
		if !bytes.Equal(value, sec.Value) {
			return fmt.Errorf("%w %s, not the source's: a server has run on the target and made its own, and the copied release digests would not match it; copy into a new database (%w)",
				store.ErrSecretMismatch, sec.Name, rollout.ErrConflict)
		}
	}
	return nil
}
