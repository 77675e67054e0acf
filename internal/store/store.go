// Package store names what a Shipgate store is, whatever holds it: the
// ports of the engine, the flags service and the API in one interface, and
// the snapshot that copies a whole store (history, audit chain, tokens,
// flags) from one kind of store to another.
package store

import (
	"context"
	"errors"
	"fmt"

	"github.com/shipgate/shipgate/internal/audit"
	"github.com/shipgate/shipgate/internal/auth"
	"github.com/shipgate/shipgate/internal/flags"
	"github.com/shipgate/shipgate/internal/rollout"
)

// Store is everything the server asks of its store. The SQLite store
// (internal/sqlite) and the PostgreSQL store (internal/postgres) implement
// it, and pass the same contract suite (internal/storetest).
type Store interface {
	rollout.Store
	flags.Store

	// CreateToken records an API token under the SHA-256 of its secret.
	// A token with the same name or secret is an error wrapping
	// rollout.ErrConflict.
	CreateToken(ctx context.Context, t auth.Token, secretHash string) error
	// CreateTokenAudited is CreateToken with its audit event, in one
	// transaction.
	CreateTokenAudited(ctx context.Context, t auth.Token, secretHash string, e audit.Event) error
	// TokenByHash returns the token whose secret hashes to secretHash, or
	// an error wrapping rollout.ErrNotFound.
	TokenByHash(ctx context.Context, secretHash string) (auth.Token, error)
	// ListTokens returns every token, by name.
	ListTokens(ctx context.Context) ([]auth.Token, error)
	// DeleteToken deletes a token; an error wrapping rollout.ErrNotFound
	// when there is none.
	DeleteToken(ctx context.Context, name string) error
	// DeleteTokenAudited is DeleteToken with the event event makes of the
	// deleted token, in one transaction.
	DeleteTokenAudited(ctx context.Context, name string, event func(auth.Token) audit.Event) error
	// AuditChain returns every audit event from seq fromSeq on, oldest
	// first, for audit.Verify.
	AuditChain(ctx context.Context, fromSeq int64) ([]audit.Event, error)

	// Export reads the whole store in one consistent snapshot.
	Export(ctx context.Context) (*Snapshot, error)
	// Import writes s into an empty store in one transaction, keeping
	// every ID, sequence number and hash; a store that holds anything is
	// an error wrapping rollout.ErrConflict.
	Import(ctx context.Context, s *Snapshot) error

	Close() error
}

// Snapshot is the whole content of a store.
type Snapshot struct {
	Releases []rollout.Release
	// Rollouts keep their IDs; the store's next ID follows the highest.
	Rollouts []rollout.Rollout
	Envs     []rollout.EnvState
	// Audit is the whole chain, oldest first.
	Audit    []audit.Event
	Tokens   []Token
	Flags    []*flags.Flag
	Segments []flags.Segment
	Usage    map[string]flags.Usage
}

// Token is an API token as stored: never its secret, only the secret's
// hash.
type Token struct {
	auth.Token
	SecretHash string
}

// Counts says how many of each kind a snapshot holds, for a person to check
// a copy.
type Counts struct {
	Releases    int `json:"releases"`
	Rollouts    int `json:"rollouts"`
	Envs        int `json:"environments"`
	AuditEvents int `json:"audit_events"`
	Tokens      int `json:"tokens"`
	Flags       int `json:"flags"`
	Segments    int `json:"segments"`
}

// Counts counts what s holds.
func (s *Snapshot) Counts() Counts {
	return Counts{
		Releases: len(s.Releases), Rollouts: len(s.Rollouts), Envs: len(s.Envs), AuditEvents: len(s.Audit),
		Tokens: len(s.Tokens), Flags: len(s.Flags), Segments: len(s.Segments),
	}
}

// Copy copies the whole of from into the empty store to: it refuses a
// source whose audit chain does not verify, and verifies the chain as the
// target stored it before returning.
func Copy(ctx context.Context, from, to Store) (Counts, error) {
	snap, err := from.Export(ctx)
	if err != nil {
		return Counts{}, fmt.Errorf("read source: %w", err)
	}
	if err := audit.Verify(snap.Audit); err != nil {
		return Counts{}, fmt.Errorf("the source's audit chain does not verify, nothing copied: %w", err)
	}
	if err := to.Import(ctx, snap); err != nil {
		return Counts{}, fmt.Errorf("write target: %w", err)
	}
	chain, err := to.AuditChain(ctx, 1)
	if err != nil {
		return Counts{}, fmt.Errorf("read back the target's audit chain: %w", err)
	}
	if err := audit.Verify(chain); err != nil {
		return Counts{}, fmt.Errorf("the target's audit chain does not verify after the copy: %w", err)
	}
	if len(chain) != len(snap.Audit) {
		return Counts{}, fmt.Errorf("the target holds %d audit events after the copy, the source %d", len(chain), len(snap.Audit))
	}
	return snap.Counts(), nil
}

// ErrNotEmpty means Import was given a store that already holds data.
var ErrNotEmpty = errors.New("the target store is not empty")
