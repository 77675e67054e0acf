package api

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"io"
	"net/http"
	"sync"
	"time"
)

// IdempotencyKeyHeader is the header a client names a request that
// changes something with (IETF draft "The Idempotency-Key HTTP Header
// Field"): the same request sent again with the same key, because the
// first answer was lost, gets the first answer instead of being carried
// out twice.
const IdempotencyKeyHeader = "Idempotency-Key"

// ReplayedHeader marks an answer given again from the record of the first
// request with the same key (Stripe's name for it).
const ReplayedHeader = "Idempotent-Replayed"

// Idempotency limits.
const (
	maxIdempotencyKey  = 255
	maxIdempotentBody  = maxBodyBytes // larger (test reports) go through without their key
	maxRecordedAnswer  = 1 << 20
	idempotencyTTL     = 24 * time.Hour
	maxIdempotencyKeys = 10000
)

// Idempotency answers a request that changes something (any method but
// GET, HEAD and OPTIONS) and carries an Idempotency-Key header once: the
// handler runs for the first request with a key, and the same request sent
// again with that key gets the recorded answer, marked with
// Idempotent-Replayed: true; sent while the first still runs, it waits for
// the first's answer. Keys are scoped by the request's credentials (its
// Authorization header) and kept 24 hours, in a KeyStore: this server's
// memory (at most 10 000 keys; a server restarted between acting and
// answering has forgotten them), or the PostgreSQL store that several
// servers share, so that a request sent again to another server gets the
// first answer too.
//
// The same key with another method, path or body is refused with 422, as
// the draft says. A request without an Authorization header is served as
// if it had no key (the API refuses it). An answer of 5xx, 401, 408 or 429
// is not recorded: nothing is known to have been done, so the request sent again runs again (on a
// PostgreSQL store, a 503 "pending" command is then found by its key).
type Idempotency struct {
	keys KeyStore
	// poll is how often a request waiting for another with its key looks
	// again.
	poll time.Duration
	// waiting, when set (tests), is called each time a request looks
	// again for the first one with its key.
	waiting func()
}

// KeyStore keeps the answers given per key (the key is already scoped by
// credentials).
type KeyStore interface {
	// Claim records that this server answers the request fingerprinted
	// fp under key, unless the key is recorded: then it returns the
	// record, with claimed false. A record whose server died while
	// answering is taken over (claimed true).
	Claim(ctx context.Context, key string, fp [sha256.Size]byte) (rec KeyRecord, claimed bool, err error)
	// Beat says that this server still answers a claimed key.
	Beat(ctx context.Context, key string) error
	// Finish records the answer to a claimed key.
	Finish(ctx context.Context, key string, a Answer) error
	// Forget deletes a claimed key whose answer is not kept.
	Forget(ctx context.Context, key string) error
}

// KeyRecord is what a KeyStore holds of a key.
type KeyRecord struct {
	Fingerprint [sha256.Size]byte
	// Done is set once the answer is recorded.
	Done   bool
	Answer Answer
}

// Answer is a recorded HTTP answer.
type Answer struct {
	Status int
	Header http.Header
	Body   []byte
}

// NewIdempotency returns the middleware keeping its keys in keys, or in
// this server's memory when keys is nil.
func NewIdempotency(keys KeyStore) *Idempotency {
	if keys == nil {
		keys = NewMemoryKeys()
	}
	return &Idempotency{keys: keys, poll: 50 * time.Millisecond}
}

// beatEvery is how often a server answering a key says it still does.
const beatEvery = 2 * time.Second

// Wrap returns h answering each key once.
func (c *Idempotency) Wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key := r.Header.Get(IdempotencyKeyHeader)
		// Without credentials the API refuses the request anyway: nothing
		// is recorded for it.
		if key == "" || r.Header.Get("Authorization") == "" || r.Method == http.MethodGet || r.Method == http.MethodHead || r.Method == http.MethodOptions || answersASecret(r) {
			h.ServeHTTP(w, r)
			return
		}
		if len(key) > maxIdempotencyKey || !printable(key) {
			idemError(w, http.StatusBadRequest, codeInvalid, "the "+IdempotencyKeyHeader+" header must be 1 to 255 printable ASCII characters")
			return
		}
		body, err := io.ReadAll(io.LimitReader(r.Body, maxIdempotentBody+1))
		if err != nil {
			idemError(w, http.StatusBadRequest, codeInvalid, "read the request body: "+err.Error())
			return
		}
		if len(body) > maxIdempotentBody {
			// Too big to fingerprint: served as if it had no key.
			r.Body = io.NopCloser(io.MultiReader(bytes.NewReader(body), r.Body))
			h.ServeHTTP(w, r)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		fp := fingerprint(r, body)
		scoped := scope(r, key)
		ctx := r.Context()
		for {
			rec, claimed, err := c.keys.Claim(ctx, scoped, fp)
			switch {
			case err != nil:
				if ctx.Err() == nil {
					idemError(w, http.StatusServiceUnavailable, "unavailable", "the record of "+IdempotencyKeyHeader+"s cannot be read now; send the request again with the same key")
				}
				return
			case claimed:
				c.serve(w, r, h, scoped)
				return
			case rec.Fingerprint != fp:
				idemError(w, http.StatusUnprocessableEntity, codeInvalid,
					"the "+IdempotencyKeyHeader+" "+key+" was used for another request (method, path or body); use a new key for a new request")
				return
			case rec.Done:
				replay(w, rec.Answer)
				return
			}
			// The first request with the key is still being answered
			// (here or by another server): look again.
			if c.waiting != nil {
				c.waiting()
			}
			t := time.NewTimer(c.poll)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
		}
	})
}

// serve runs h for the first request with a key and records its answer.
func (c *Idempotency) serve(w http.ResponseWriter, r *http.Request, h http.Handler, key string) {
	rec := &recorder{ResponseWriter: w}
	// The record outlives the request: a client gone does not undo what
	// the handler did.
	bg := context.WithoutCancel(r.Context())
	beatCtx, stopBeat := context.WithCancel(bg)
	beaten := make(chan struct{})
	go func() {
		defer close(beaten)
		t := time.NewTicker(beatEvery)
		defer t.Stop()
		for {
			select {
			case <-beatCtx.Done():
				return
			case <-t.C:
				_ = c.keys.Beat(beatCtx, key)
			}
		}
	}()
	defer func() {
		stopBeat()
		<-beaten
		status := rec.status
		if status == 0 {
			status = http.StatusOK
		}
		if !rec.over && status < 500 && status != http.StatusUnauthorized && status != http.StatusRequestTimeout && status != http.StatusTooManyRequests {
			_ = c.keys.Finish(bg, key, Answer{Status: status, Header: rec.header, Body: rec.body.Bytes()})
		} else {
			_ = c.keys.Forget(bg, key)
		}
	}()
	h.ServeHTTP(rec, r)
}

// MemoryKeys is a KeyStore in this process's memory.
type MemoryKeys struct {
	now     func() time.Time
	mu      sync.Mutex
	entries map[string]*memoryKey
	order   []string // keys of entries, oldest first
}

type memoryKey struct {
	KeyRecord
	at time.Time
}

// NewMemoryKeys returns an empty KeyStore in memory.
func NewMemoryKeys() *MemoryKeys {
	return &MemoryKeys{now: time.Now, entries: map[string]*memoryKey{}}
}

var _ KeyStore = (*MemoryKeys)(nil)

// Claim implements KeyStore. A key is only ever claimed by this process,
// which is alive: it is never taken over.
func (m *MemoryKeys) Claim(_ context.Context, key string, fp [sha256.Size]byte) (KeyRecord, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	m.expire(now)
	if e := m.entries[key]; e != nil {
		return e.KeyRecord, false, nil
	}
	m.entries[key] = &memoryKey{KeyRecord: KeyRecord{Fingerprint: fp}, at: now}
	m.order = append(m.order, key)
	return KeyRecord{Fingerprint: fp}, true, nil
}

// Beat implements KeyStore.
func (m *MemoryKeys) Beat(context.Context, string) error { return nil }

// Finish implements KeyStore.
func (m *MemoryKeys) Finish(_ context.Context, key string, a Answer) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if e := m.entries[key]; e != nil {
		e.Done, e.Answer = true, a
	}
	return nil
}

// Forget implements KeyStore.
func (m *MemoryKeys) Forget(_ context.Context, key string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if e := m.entries[key]; e != nil && !e.Done {
		delete(m.entries, key)
	}
	return nil
}

// expire forgets entries older than the TTL, and the oldest answered ones
// beyond the maximum.
func (m *MemoryKeys) expire(now time.Time) {
	kept := m.order[:0]
	over := len(m.order) - maxIdempotencyKeys
	for _, k := range m.order {
		e := m.entries[k]
		if e == nil {
			continue
		}
		if e.Done && (now.Sub(e.at) > idempotencyTTL || over > 0) {
			delete(m.entries, k)
			over--
			continue
		}
		kept = append(kept, k)
	}
	m.order = kept
}

// replay writes a recorded answer.
func replay(w http.ResponseWriter, a Answer) {
	for k, v := range a.Header {
		w.Header()[k] = v
	}
	w.Header().Set(ReplayedHeader, "true")
	w.WriteHeader(a.Status)
	_, _ = w.Write(a.Body)
}

// recorder passes an answer on to the client and keeps a copy of it.
type recorder struct {
	http.ResponseWriter
	status int
	header http.Header
	body   bytes.Buffer
	over   bool // the answer is too long to keep
}

func (r *recorder) WriteHeader(status int) {
	if r.status == 0 {
		r.status, r.header = status, r.ResponseWriter.Header().Clone()
	}
	r.ResponseWriter.WriteHeader(status)
}

func (r *recorder) Write(p []byte) (int, error) {
	if r.status == 0 {
		r.WriteHeader(http.StatusOK)
	}
	if !r.over {
		if r.body.Len()+len(p) > maxRecordedAnswer {
			r.over = true
			r.body.Reset()
		} else {
			r.body.Write(p)
		}
	}
	return r.ResponseWriter.Write(p)
}

// Flush lets a streamed answer through as it comes.
func (r *recorder) Flush() {
	if f, ok := r.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap gives http.ResponseController the client's writer.
func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// fingerprint identifies a request: its method, path and query, and body.
func fingerprint(r *http.Request, body []byte) [sha256.Size]byte {
	h := sha256.New()
	_, _ = io.WriteString(h, r.Method+"\x00"+r.URL.RequestURI()+"\x00")
	_, _ = h.Write(body)
	var out [sha256.Size]byte
	h.Sum(out[:0])
	return out
}

// scope is the key as recorded: within the request's credentials, so that
// a key never replays another client's answer.
func scope(r *http.Request, key string) string {
	cred := sha256.Sum256([]byte(r.Header.Get("Authorization")))
	return string(cred[:]) + key
}

func printable(s string) bool {
	for i := range len(s) {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

func idemError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(errorBody{Error: &APIError{Code: code, Message: msg}})
}

// answersASecret reports whether r makes a secret and answers with it (a
// new API token, a new OFREP key). Such an answer is not recorded under
// its Idempotency-Key: a key store would keep the secret in the clear
// for a day. The request runs as if it had no key; sent again after a
// lost answer it makes another secret, and the first can be listed and
// revoked.
func answersASecret(r *http.Request) bool {
	return r.Method == http.MethodPost && (r.URL.Path == "/v1/tokens" || r.URL.Path == "/v1/flags/keys")
}
