package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// IdempotencyKey is the record of one Idempotency-Key (api.Idempotency):
// claimed by the server answering its request, then done with the answer.
type IdempotencyKey struct {
	Key         string
	Fingerprint []byte
	Done        bool
	// Status, Header (JSON of an http.Header) and Body are the answer of
	// a done key.
	Status int
	Header string
	Body   []byte
	// Server answers (answered) the request.
	Server    string
	ClaimedAt time.Time
}

// keyTTL is how long a key is kept.
const keyTTL = 24 * time.Hour

const keyColumns = `key, fingerprint, done, status, header, body, server, claimed_at`

// ClaimIdempotencyKey records that server answers the request of key,
// unless the key is recorded already: then it returns the record, with
// claimed false. A key whose request is not done and whose server has not
// beaten (BeatIdempotencyKey) for stale is taken over: its server died
// while answering. Keys older than a day are forgotten first. Any server
// may claim: the write is not fenced.
func (s *Store) ClaimIdempotencyKey(ctx context.Context, key string, fingerprint []byte, server string, stale time.Duration) (k IdempotencyKey, claimed bool, err error) {
	// Not s.inTx: the claim is no leader's write to fence, and no change
	// the other servers must read again.
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return IdempotencyKey{}, false, fmt.Errorf("claim idempotency key: %w", err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	err = func() error {
		if _, err := tx.Exec(ctx, `DELETE FROM idempotency_keys WHERE claimed_at < clock_timestamp() - make_interval(secs => $1)`, keyTTL.Seconds()); err != nil {
			return err
		}
		row := tx.QueryRow(ctx, `
INSERT INTO idempotency_keys (key, fingerprint, server) VALUES ($1, $2, $3)
ON CONFLICT (key) DO UPDATE SET server = EXCLUDED.server, beat_at = clock_timestamp()
	WHERE NOT idempotency_keys.done AND idempotency_keys.fingerprint = EXCLUDED.fingerprint
	AND idempotency_keys.beat_at < clock_timestamp() - make_interval(secs => $4)
RETURNING `+keyColumns, key, fingerprint, server, stale.Seconds())
		k, err = scanKey(row)
		if err == nil {
			claimed = true
			return nil
		}
		if !isNoRows(err) {
			return err
		}
		k, err = scanKey(tx.QueryRow(ctx, `SELECT `+keyColumns+` FROM idempotency_keys WHERE key = $1`, key))
		return err
	}()
	if err == nil {
		err = tx.Commit(ctx)
	}
	if err != nil {
		return IdempotencyKey{}, false, fmt.Errorf("claim idempotency key: %w", err)
	}
	return k, claimed, nil
}

// GetIdempotencyKey returns the record of key; found is false when there
// is none.
func (s *Store) GetIdempotencyKey(ctx context.Context, key string) (k IdempotencyKey, found bool, err error) {
	k, err = scanKey(s.pool.QueryRow(ctx, `SELECT `+keyColumns+` FROM idempotency_keys WHERE key = $1`, key))
	if isNoRows(err) {
		return IdempotencyKey{}, false, nil
	}
	if err != nil {
		return IdempotencyKey{}, false, fmt.Errorf("read idempotency key: %w", err)
	}
	return k, true, nil
}

// BeatIdempotencyKey says that server is still answering the request of
// key, so that no other server takes it over.
func (s *Store) BeatIdempotencyKey(ctx context.Context, key, server string) error {
	if _, err := s.pool.Exec(ctx, `UPDATE idempotency_keys SET beat_at = clock_timestamp() WHERE key = $1 AND server = $2 AND NOT done`, key, server); err != nil {
		return fmt.Errorf("beat idempotency key: %w", err)
	}
	return nil
}

// FinishIdempotencyKey records the answer server gave to the request of
// key.
func (s *Store) FinishIdempotencyKey(ctx context.Context, key, server string, status int, header string, body []byte) error {
	if _, err := s.pool.Exec(ctx, `UPDATE idempotency_keys SET done = true, status = $3, header = $4, body = $5 WHERE key = $1 AND server = $2 AND NOT done`,
		key, server, status, header, body); err != nil {
		return fmt.Errorf("record the answer of an idempotency key: %w", err)
	}
	return nil
}

// ForgetIdempotencyKey deletes the claim server holds on key, whose answer
// is not kept: the request sent again runs again.
func (s *Store) ForgetIdempotencyKey(ctx context.Context, key, server string) error {
	if _, err := s.pool.Exec(ctx, `DELETE FROM idempotency_keys WHERE key = $1 AND server = $2 AND NOT done`, key, server); err != nil {
		return fmt.Errorf("forget idempotency key: %w", err)
	}
	return nil
}

func scanKey(row pgx.Row) (IdempotencyKey, error) {
	var k IdempotencyKey
	err := row.Scan(&k.Key, &k.Fingerprint, &k.Done, &k.Status, &k.Header, &k.Body, &k.Server, &k.ClaimedAt)
	return k, err
}
