package api

import (
	"bytes"
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
	maxIdempotentBody  = 16 << 20
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
// Authorization header), kept 24 hours, at most 10 000 of them, in this
// server's memory: a server restarted between acting and answering has
// forgotten them (on a PostgreSQL store, the commands that change a
// rollout are recorded with their key in the store, internal/ha, which
// covers that case and the other servers).
//
// The same key with another method, path or body is refused with 422, as
// the draft says. An answer of 5xx, 408 or 429 is not recorded: nothing is
// known to have been done, so the request sent again runs again (on a
// PostgreSQL store, a 503 "pending" command is then found by its key).
type Idempotency struct {
	now func() time.Time

	mu      sync.Mutex
	entries map[string]*idemEntry
	order   []string // keys of entries, oldest first
	// waiting, when set (tests), is called when a request starts waiting
	// for the first one with its key.
	waiting func()
}

type idemEntry struct {
	fingerprint [sha256.Size]byte
	at          time.Time
	done        chan struct{} // closed once the answer below is set
	recorded    bool          // the answer is kept for replays
	status      int
	header      http.Header
	body        []byte
}

// NewIdempotency returns an empty record of keys.
func NewIdempotency() *Idempotency {
	return &Idempotency{now: time.Now, entries: map[string]*idemEntry{}}
}

// Wrap returns h answering each key once.
func (c *Idempotency) Wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key := r.Header.Get(IdempotencyKeyHeader)
		if key == "" || r.Method == http.MethodGet || r.Method == http.MethodHead || r.Method == http.MethodOptions {
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
		for {
			e, first := c.claim(scoped, fp)
			switch {
			case e == nil:
				idemError(w, http.StatusUnprocessableEntity, codeInvalid,
					"the "+IdempotencyKeyHeader+" "+key+" was used for another request (method, path or body); use a new key for a new request")
				return
			case first:
				c.serve(w, r, h, scoped, e)
				return
			}
			if c.waiting != nil {
				c.waiting()
			}
			select {
			case <-r.Context().Done():
				return
			case <-e.done:
			}
			if e.recorded {
				replay(w, e)
				return
			}
			// The first answer was not recorded: run this one.
		}
	})
}

// claim returns the entry of key: a new one the caller must fill (first),
// or the one already there; nil when that one is of another request.
func (c *Idempotency) claim(key string, fp [sha256.Size]byte) (e *idemEntry, first bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	c.expire(now)
	if e := c.entries[key]; e != nil {
		if e.fingerprint != fp {
			return nil, false
		}
		return e, false
	}
	e = &idemEntry{fingerprint: fp, at: now, done: make(chan struct{})}
	c.entries[key] = e
	c.order = append(c.order, key)
	return e, true
}

// expire forgets entries older than the TTL, and the oldest answered ones
// beyond the maximum.
func (c *Idempotency) expire(now time.Time) {
	kept := c.order[:0]
	over := len(c.order) - maxIdempotencyKeys
	for _, k := range c.order {
		e := c.entries[k]
		if e == nil {
			continue
		}
		answered := isClosed(e.done)
		if answered && (now.Sub(e.at) > idempotencyTTL || over > 0) {
			delete(c.entries, k)
			over--
			continue
		}
		kept = append(kept, k)
	}
	c.order = kept
}

func isClosed(ch chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// serve runs h for the first request with a key and records its answer.
func (c *Idempotency) serve(w http.ResponseWriter, r *http.Request, h http.Handler, key string, e *idemEntry) {
	rec := &recorder{ResponseWriter: w}
	defer func() {
		c.mu.Lock()
		e.status, e.header, e.body = rec.status, rec.header, rec.body.Bytes()
		if e.status == 0 {
			e.status = http.StatusOK
		}
		e.recorded = !rec.over && e.status < 500 && e.status != http.StatusRequestTimeout && e.status != http.StatusTooManyRequests
		if !e.recorded {
			delete(c.entries, key)
		}
		close(e.done)
		c.mu.Unlock()
	}()
	h.ServeHTTP(rec, r)
}

// replay writes a recorded answer.
func replay(w http.ResponseWriter, e *idemEntry) {
	for k, v := range e.header {
		w.Header()[k] = v
	}
	w.Header().Set(ReplayedHeader, "true")
	w.WriteHeader(e.status)
	_, _ = w.Write(e.body)
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
