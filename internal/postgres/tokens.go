package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/shipgate/shipgate/internal/audit"
	"github.com/shipgate/shipgate/internal/auth"
	"github.com/shipgate/shipgate/internal/rollout"
)

// CreateToken records an API token under the SHA-256 of its secret (see
// auth.Hash). A token with the same name or secret is an error wrapping
// rollout.ErrConflict; an empty name, an unknown role or an empty hash is
// a *rollout.FieldError. A zero CreatedAt is stored as now.
func (s *Store) CreateToken(ctx context.Context, t auth.Token, secretHash string) error {
	return s.createToken(ctx, t, secretHash, nil)
}

// CreateTokenAudited is CreateToken with the audit event that records it,
// appended in the same transaction: either both are stored or neither.
func (s *Store) CreateTokenAudited(ctx context.Context, t auth.Token, secretHash string, e audit.Event) error {
	return s.createToken(ctx, t, secretHash, []audit.Event{e})
}

func (s *Store) createToken(ctx context.Context, t auth.Token, secretHash string, events []audit.Event) error {
	if t.Name == "" {
		return fmt.Errorf("create token: %w", &rollout.FieldError{Field: "name", Message: "must not be empty"})
	}
	if _, err := auth.ParseRole(string(t.Role)); err != nil {
		return fmt.Errorf("create token %q: %w", t.Name, &rollout.FieldError{Field: "role", Message: err.Error()})
	}
	if secretHash == "" {
		return fmt.Errorf("create token %q: %w", t.Name, &rollout.FieldError{Field: "secret_hash", Message: "must not be empty"})
	}
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `
INSERT INTO tokens (name, role, secret_hash, created_at) VALUES ($1, $2, $3, $4)
ON CONFLICT (name) DO NOTHING`,
			t.Name, string(t.Role), secretHash, formatTime(s.orNow(t.CreatedAt)))
		if isUniqueViolation(err) {
			return fmt.Errorf("%w: another token has the same secret; make a new secret", rollout.ErrConflict)
		}
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return fmt.Errorf("%w: a token with this name exists; delete it first or pick another name", rollout.ErrConflict)
		}
		return s.appendAudit(ctx, tx, events)
	})
	if err != nil {
		return fmt.Errorf("create token %q: %w", t.Name, err)
	}
	return nil
}

// TokenByHash returns the token whose secret has the SHA-256 secretHash,
// or an error wrapping rollout.ErrNotFound.
func (s *Store) TokenByHash(ctx context.Context, secretHash string) (auth.Token, error) {
	t, err := scanToken(s.pool.QueryRow(ctx, `SELECT name, role, created_at FROM tokens WHERE secret_hash = $1`, secretHash))
	if isNoRows(err) {
		// The hash is a credential of sorts: it stays out of the error.
		return auth.Token{}, fmt.Errorf("token by hash: %w", rollout.ErrNotFound)
	}
	if err != nil {
		return auth.Token{}, fmt.Errorf("token by hash: %w", err)
	}
	return t, nil
}

// ListTokens returns every token, by name (byte order, as SQLite sorts).
func (s *Store) ListTokens(ctx context.Context) ([]auth.Token, error) {
	rows, err := s.pool.Query(ctx, `SELECT name, role, created_at FROM tokens ORDER BY name COLLATE "C"`)
	if err != nil {
		return nil, fmt.Errorf("list tokens: %w", err)
	}
	defer rows.Close()
	var tokens []auth.Token
	for rows.Next() {
		t, err := scanToken(rows)
		if err != nil {
			return nil, fmt.Errorf("list tokens: %w", err)
		}
		tokens = append(tokens, t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list tokens: %w", err)
	}
	return tokens, nil
}

// DeleteToken deletes the token named name, so that its secret stops
// working at once. Deleting a token that does not exist is an error
// wrapping rollout.ErrNotFound, and changes nothing.
func (s *Store) DeleteToken(ctx context.Context, name string) error {
	return s.deleteToken(ctx, name, nil)
}

// DeleteTokenAudited is DeleteToken with the audit event that records it,
// appended in the same transaction: either both are stored or neither.
func (s *Store) DeleteTokenAudited(ctx context.Context, name string, event func(auth.Token) audit.Event) error {
	return s.deleteToken(ctx, name, event)
}

func (s *Store) deleteToken(ctx context.Context, name string, event func(auth.Token) audit.Event) error {
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		t, err := scanToken(tx.QueryRow(ctx, `DELETE FROM tokens WHERE name = $1 RETURNING name, role, created_at`, name))
		if isNoRows(err) {
			return rollout.ErrNotFound
		}
		if err != nil {
			return err
		}
		if event == nil {
			return nil
		}
		return s.appendAudit(ctx, tx, []audit.Event{event(t)})
	})
	if err != nil {
		return fmt.Errorf("delete token %q: %w", name, err)
	}
	return nil
}

func scanToken(row pgx.Row) (auth.Token, error) {
	var (
		t             auth.Token
		role, created string
	)
	if err := row.Scan(&t.Name, &role, &created); err != nil {
		return auth.Token{}, err
	}
	t.Role = auth.Role(role)
	var err error
	if t.CreatedAt, err = parseTime(created); err != nil {
		return auth.Token{}, err
	}
	return t, nil
}
