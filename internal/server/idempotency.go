package server

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"time"

	"github.com/shipgate/shipgate/internal/api"
	"github.com/shipgate/shipgate/internal/postgres"
)

// pgKeys keeps the API's Idempotency-Keys (api.Idempotency) in the
// PostgreSQL store, so that a request sent again to another server of the
// group gets the first answer.
type pgKeys struct {
	st *postgres.Store
	// server names this process: a claim is its own until it dies.
	server string
}

var _ api.KeyStore = pgKeys{}

// keysStaleAfter is how long a claimed key whose server stopped beating
// (every 2 s) waits before another server takes it over: its server died
// while answering.
const keysStaleAfter = 10 * time.Second

func newPGKeys(st *postgres.Store, serverID string) pgKeys {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return pgKeys{st: st, server: serverID + "/" + hex.EncodeToString(b[:])}
}

// row is the key as stored: the scoped key holds a hash of the credentials
// in raw bytes, which a text column does not take.
func (pgKeys) row(key string) string {
	h := sha256.Sum256([]byte(key))
	return hex.EncodeToString(h[:])
}

func (k pgKeys) Claim(ctx context.Context, key string, fp [sha256.Size]byte) (api.KeyRecord, bool, error) {
	rec, claimed, err := k.st.ClaimIdempotencyKey(ctx, k.row(key), fp[:], k.server, keysStaleAfter)
	if err != nil {
		return api.KeyRecord{}, false, err
	}
	out := api.KeyRecord{Done: rec.Done, Answer: api.Answer{Status: rec.Status, Body: rec.Body}}
	copy(out.Fingerprint[:], rec.Fingerprint)
	if rec.Done {
		if err := json.Unmarshal([]byte(rec.Header), &out.Answer.Header); err != nil {
			out.Answer.Header = http.Header{}
		}
	}
	return out, claimed, nil
}

func (k pgKeys) Beat(ctx context.Context, key string) error {
	return k.st.BeatIdempotencyKey(ctx, k.row(key), k.server)
}

func (k pgKeys) Finish(ctx context.Context, key string, a api.Answer) error {
	header, err := json.Marshal(a.Header)
	if err != nil || a.Header == nil {
		header = []byte("{}")
	}
	return k.st.FinishIdempotencyKey(ctx, k.row(key), k.server, a.Status, string(header), a.Body)
}

func (k pgKeys) Forget(ctx context.Context, key string) error {
	return k.st.ForgetIdempotencyKey(ctx, k.row(key), k.server)
}
