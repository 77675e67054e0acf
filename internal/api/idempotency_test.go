package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shipgate/shipgate/internal/losingproxy"
	"github.com/shipgate/shipgate/internal/rollout"
)

// post sends a POST with key (none when empty) and token, and returns the
// status, body and whether it was a replay.
func post(t *testing.T, url, key, token, body string) (int, string, bool) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if key != "" {
		req.Header.Set(IdempotencyKeyHeader, key)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b), resp.Header.Get(ReplayedHeader) == "true"
}

// countingServer answers each request it runs with its number.
func countingServer(t *testing.T, idem *Idempotency, h func(n int64, w http.ResponseWriter)) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var calls atomic.Int64
	srv := httptest.NewServer(idem.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		h(calls.Add(1), w)
	})))
	t.Cleanup(srv.Close)
	return srv, &calls
}

func TestIdempotency_ReplaysTheFirstAnswer(t *testing.T) {
	srv, calls := countingServer(t, NewIdempotency(nil), func(n int64, w http.ResponseWriter) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		fmt.Fprintf(w, `{"id":%d}`, n)
	})
	url := srv.URL + "/v1/deploys"
	status, body, replayed := post(t, url, "k1", "a", `{"version":"v1"}`)
	if status != http.StatusCreated || body != `{"id":1}` || replayed {
		t.Fatalf("first = %d %s (replayed %v), want 201 {\"id\":1}", status, body, replayed)
	}
	status, body, replayed = post(t, url, "k1", "a", `{"version":"v1"}`)
	if status != http.StatusCreated || body != `{"id":1}` || !replayed {
		t.Fatalf("sent again = %d %s (replayed %v), want the first answer, replayed", status, body, replayed)
	}
	if got := calls.Load(); got != 1 {
		t.Fatalf("the handler ran %d times, want once", got)
	}
	// The same key for another body is refused, and runs nothing.
	if status, body, _ := post(t, url, "k1", "a", `{"version":"v2"}`); status != http.StatusUnprocessableEntity || !strings.Contains(body, "another request") {
		t.Errorf("the key for another body = %d %s, want 422", status, body)
	}
	// Another token's key is its own; no key runs every time.
	if status, body, replayed := post(t, url, "k1", "b", `{"version":"v1"}`); status != http.StatusCreated || body != `{"id":2}` || replayed {
		t.Errorf("the same key from another token = %d %s (replayed %v), want its own answer", status, body, replayed)
	}
	post(t, url, "", "a", `{"version":"v1"}`)
	post(t, url, "", "a", `{"version":"v1"}`)
	if got := calls.Load(); got != 4 {
		t.Errorf("the handler ran %d times, want 4", got)
	}
	if status, _, _ := post(t, url, strings.Repeat("x", 256), "a", `{}`); status != http.StatusBadRequest {
		t.Errorf("a 256-character key = %d, want 400", status)
	}
	// Without credentials nothing is recorded (the API refuses them).
	before0 := calls.Load()
	for range 2 {
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, url, strings.NewReader(`{}`))
		req.Header.Set(IdempotencyKeyHeader, "k-anon")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
	}
	if got := calls.Load() - before0; got != 2 {
		t.Errorf("a keyed request without credentials ran %d times, want twice (nothing recorded)", got)
	}
	// A body over the API's limit is not buffered to be fingerprinted:
	// it goes through as if it had no key, whole.
	big := strings.Repeat("x", maxBodyBytes+1)
	before := calls.Load()
	for range 2 {
		if status, _, replayed := post(t, url, "k-big", "a", big); status != http.StatusCreated || replayed {
			t.Errorf("a big body = %d (replayed %v), want it run", status, replayed)
		}
	}
	if got := calls.Load() - before; got != 2 {
		t.Errorf("a big body with one key ran %d times, want twice (not fingerprinted)", got)
	}
}

// TestIdempotency_SecondWaitsForTheFirst: a request sent again while the
// first is still being carried out waits for it, and gets its answer.
func TestIdempotency_SecondWaitsForTheFirst(t *testing.T) {
	idem := NewIdempotency(nil)
	waiting := make(chan struct{}, 1)
	idem.waiting = func() {
		select {
		case waiting <- struct{}{}:
		default:
		}
	}
	entered, release := make(chan struct{}), make(chan struct{})
	srv, calls := countingServer(t, idem, func(n int64, w http.ResponseWriter) {
		close(entered)
		<-release
		fmt.Fprintf(w, `{"id":%d}`, n)
	})
	type answer struct {
		status   int
		body     string
		replayed bool
	}
	answers := make(chan answer, 2)
	send := func() {
		s, b, r := post(t, srv.URL+"/v1/approvals", "k", "a", `{}`)
		answers <- answer{s, b, r}
	}
	go send()
	<-entered
	go send()
	<-waiting
	close(release)
	got := []answer{<-answers, <-answers}
	if got[0].body != `{"id":1}` || got[1].body != `{"id":1}` || got[0].replayed == got[1].replayed {
		t.Errorf("answers %+v, want the first one twice, once replayed", got)
	}
	if n := calls.Load(); n != 1 {
		t.Errorf("the handler ran %d times, want once", n)
	}
}

// TestIdempotency_ServerErrorIsNotRecorded: after a 503 nothing is known
// to be done, so the request sent again runs again.
func TestIdempotency_ServerErrorIsNotRecorded(t *testing.T) {
	srv, calls := countingServer(t, NewIdempotency(nil), func(n int64, w http.ResponseWriter) {
		if n == 1 {
			http.Error(w, "no leader", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintf(w, `{"id":%d}`, n)
	})
	if status, _, _ := post(t, srv.URL, "k", "a", `{}`); status != http.StatusServiceUnavailable {
		t.Fatalf("first = %d, want 503", status)
	}
	if status, body, replayed := post(t, srv.URL, "k", "a", `{}`); status != http.StatusOK || body != `{"id":2}` || replayed {
		t.Fatalf("sent again after a 503 = %d %s (replayed %v), want it run", status, body, replayed)
	}
	if n := calls.Load(); n != 2 {
		t.Errorf("the handler ran %d times, want twice", n)
	}
}

// TestClient_RetriesALostAnswerWithTheSameKey: the server carries out a
// deploy but its answer is lost on the way; the client sends it again
// with the same key and gets the first answer, and the deploy ran once.
func TestClient_RetriesALostAnswerWithTheSameKey(t *testing.T) {
	srv, calls := countingServer(t, NewIdempotency(nil), func(n int64, w http.ResponseWriter) {
		fmt.Fprintf(w, `{"id":%d,"version":"v1"}`, n)
	})
	proxy := losingproxy.New(t, srv.URL)
	proxy.Lose(nil)
	sent := func() []string {
		var keys []string
		for _, r := range proxy.Keyed() {
			keys = append(keys, r.Key)
		}
		return keys
	}
	var notes []string
	c := NewClient(proxy.URL, "tok", nil).WithRetry(RetryPolicy{For: 30 * time.Second,
		Notify: func(method, path string, attempt int, err error, _ time.Duration) {
			notes = append(notes, fmt.Sprintf("%s %s attempt %d: %v", method, path, attempt, err))
		}})
	r, err := c.Deploy(t.Context(), rollout.DeployRequest{App: "shop", Version: "v1"})
	if err != nil {
		t.Fatalf("Deploy through a connection dropped once: %v", err)
	}
	if r.ID != 1 || r.Version != "v1" {
		t.Errorf("Deploy = %d %s, want the first answer (rollout 1 of v1)", r.ID, r.Version)
	}
	if n := calls.Load(); n != 1 {
		t.Errorf("the server carried the deploy out %d times, want once", n)
	}
	keys := sent()
	if len(keys) != 2 || keys[0] != keys[1] || len(keys[0]) < 32 {
		t.Errorf("keys sent %q, want one random key twice", keys)
	}
	if len(notes) != 1 || !strings.Contains(notes[0], "POST /v1/deploys attempt 1") {
		t.Errorf("notes %q, want one about the first attempt", notes)
	}
	// The next command gets a key of its own.
	if _, err := c.Deploy(t.Context(), rollout.DeployRequest{App: "shop", Version: "v1"}); err != nil {
		t.Fatal(err)
	}
	if keys := sent(); len(keys) != 3 || keys[2] == keys[0] {
		t.Errorf("keys sent %q, want a new one for a new request", keys)
	}
	// Reads carry no key and are sent once.
	if _, err := c.GetRollout(t.Context(), 1); err != nil {
		t.Fatal(err)
	}
	if keys := sent(); len(keys) != 3 {
		t.Errorf("a read carried a key: %q", keys)
	}
}

// TestClient_RetryIsBounded: a server that keeps answering 503 is asked
// again until RetryPolicy.For, then the client gives up with its last
// answer; a refusal (409) is not sent again; For 0 sends once.
func TestClient_RetryIsBounded(t *testing.T) {
	var calls atomic.Int64
	status := http.StatusServiceUnavailable
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		code := "internal"
		if status == http.StatusConflict {
			code = "conflict"
		}
		http.Error(w, `{"error":{"code":"`+code+`","message":"no leader"}}`, status)
	}))
	defer srv.Close()
	c := NewClient(srv.URL, "tok", nil).WithRetry(RetryPolicy{For: 2 * time.Second})
	_, err := c.Promote(t.Context(), rollout.PromoteRequest{App: "shop"})
	var ae *APIError
	if !errors.As(err, &ae) || ae.Status != http.StatusServiceUnavailable || !strings.Contains(err.Error(), "attempts") {
		t.Fatalf("Promote against a server answering 503 = %v, want its 503 after several attempts", err)
	}
	if n := calls.Load(); n < 2 {
		t.Errorf("sent %d times within 2s, want more than once", n)
	}

	status = http.StatusConflict
	calls.Store(0)
	if _, err := c.Promote(t.Context(), rollout.PromoteRequest{App: "shop"}); !errors.Is(err, rollout.ErrConflict) {
		t.Fatalf("Promote refused = %v, want the conflict", err)
	}
	if n := calls.Load(); n != 1 {
		t.Errorf("a refusal was sent %d times, want once", n)
	}

	status = http.StatusServiceUnavailable
	calls.Store(0)
	if _, err := NewClient(srv.URL, "tok", nil).Promote(t.Context(), rollout.PromoteRequest{App: "shop"}); err == nil {
		t.Fatal("want the 503")
	}
	if n := calls.Load(); n != 1 {
		t.Errorf("without a retry policy the request was sent %d times, want once", n)
	}

	// A client whose caller gave up stops at once.
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := c.Promote(ctx, rollout.PromoteRequest{App: "shop"}); !errors.Is(err, context.Canceled) {
		t.Errorf("Promote with a cancelled context = %v, want context.Canceled", err)
	}
}

// TestClient_PlanIsSentOnce: plan changes nothing, so like every read it is
// sent once (docs/cli.md: "Reads are sent once"), with no Idempotency-Key,
// even under a retry policy: `shipgate plan` against a server that is down,
// or answers 503, fails at once instead of retrying for --retry-for.
func TestClient_PlanIsSentOnce(t *testing.T) {
	var keys atomic.Value
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		n.Add(1)
		keys.Store(r.Header.Get(IdempotencyKeyHeader))
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = io.WriteString(w, `{"error":"no leader yet","code":"pending"}`)
	}))
	t.Cleanup(srv.Close)
	var notified atomic.Int64
	c := NewClient(srv.URL, "tok", nil).WithRetry(RetryPolicy{For: time.Minute,
		Notify: func(string, string, int, error, time.Duration) { notified.Add(1) }})
	_, err := c.Plan(context.Background(), rollout.DeployRequest{App: "shop", Version: "v2"})
	var ae *APIError
	if !errors.As(err, &ae) || ae.Status != http.StatusServiceUnavailable {
		t.Fatalf("Plan: err = %v, want the server's 503", err)
	}
	if got, want := n.Load(), int64(1); got != want {
		t.Errorf("plan requests = %d, want %d (a read is sent once)", got, want)
	}
	if got := notified.Load(); got != 0 {
		t.Errorf("retry notices = %d, want 0", got)
	}
	if k, _ := keys.Load().(string); k != "" {
		t.Errorf("plan sent with %s %q, want none (it changes nothing)", IdempotencyKeyHeader, k)
	}

	// A server that is not there: one attempt, no minute of retries.
	addr := srv.URL
	srv.Close()
	down := NewClient(addr, "tok", nil).WithRetry(RetryPolicy{For: time.Minute,
		Notify: func(string, string, int, error, time.Duration) { notified.Add(1) }})
	if _, err := down.Plan(context.Background(), rollout.DeployRequest{App: "shop", Version: "v2"}); err == nil {
		t.Fatal("Plan to a closed server: no error")
	}
	if got := notified.Load(); got != 0 {
		t.Errorf("retry notices to a closed server = %d, want 0", got)
	}
}

// TestIdempotency_SecretsAreNotRecorded: a request that makes a secret (a
// token, an OFREP key) is not recorded under its key, so the key store
// never holds the secret; sent again, it runs again.
func TestIdempotency_SecretsAreNotRecorded(t *testing.T) {
	keys := NewMemoryKeys()
	srv, calls := countingServer(t, NewIdempotency(keys), func(n int64, w http.ResponseWriter) {
		w.WriteHeader(http.StatusCreated)
		fmt.Fprintf(w, `{"token":"sg_secret_%d"}`, n)
	})
	for _, path := range []string{"/v1/tokens", "/v1/flags/keys"} {
		before := calls.Load()
		for range 2 {
			if status, body, replayed := post(t, srv.URL+path, "k-"+path, "a", `{"name":"ci"}`); status != http.StatusCreated || replayed || !strings.Contains(body, "sg_secret_") {
				t.Fatalf("POST %s = %d %s (replayed %v), want a new secret each time", path, status, body, replayed)
			}
		}
		if n := calls.Load() - before; n != 2 {
			t.Errorf("POST %s with one key ran %d times, want 2 (not recorded)", path, n)
		}
	}
	keys.mu.Lock()
	defer keys.mu.Unlock()
	if len(keys.entries) != 0 {
		t.Errorf("the key store holds %d answers, want none", len(keys.entries))
	}
}
