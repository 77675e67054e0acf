package ofrep_test

// End-to-end tests of the OFREP adapter: the real flags service on the
// real SQLite store, served on a real loopback listener, evaluated by the
// official OpenFeature Go SDK through its OFREP provider, and by this
// package's caching client listening to the change stream.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	ofrepprovider "github.com/open-feature/go-sdk-contrib/providers/ofrep"
	"github.com/open-feature/go-sdk/openfeature"

	"github.com/shipgate/shipgate/internal/auth"
	"github.com/shipgate/shipgate/internal/flags"
	"github.com/shipgate/shipgate/internal/ofrep"
	"github.com/shipgate/shipgate/internal/sqlite"
)

type server struct {
	url       string
	svc       *flags.Service
	clientKey string
	adminKey  string
}

func startServer(t *testing.T) *server {
	t.Helper()
	data, err := os.ReadFile("testdata/flags.json")
	if err != nil {
		t.Fatal(err)
	}
	return startServerWith(t, data)
}

// startServerWith serves the flags of a flagd file.
func startServerWith(t *testing.T, data []byte) *server {
	t.Helper()
	ctx := t.Context()
	store, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "shipgate.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	svc, err := flags.NewService(ctx, flags.Options{Store: store})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Import(ctx, data, flags.Who{Actor: "user:test", Reason: "fixture"}); err != nil {
		t.Fatal(err)
	}
	s := &server{svc: svc}
	for name, role := range map[string]auth.Role{"app": auth.RoleFlagClient, "admin": auth.RoleAdmin} {
		secret, err := auth.NewSecret()
		if err != nil {
			t.Fatal(err)
		}
		if err := store.CreateToken(ctx, auth.Token{Name: name, Role: role}, auth.Hash(secret)); err != nil {
			t.Fatal(err)
		}
		if role == auth.RoleFlagClient {
			s.clientKey = secret
		} else {
			s.adminKey = secret
		}
	}
	srv := httptest.NewServer(ofrep.NewHandler(svc, store, ofrep.Options{}))
	t.Cleanup(srv.Close)
	s.url = srv.URL
	return s
}

var domainSeq atomic.Int64

// sdkClient is an OpenFeature client whose provider is the OFREP provider
// pointed at s.
func sdkClient(t *testing.T, s *server) *openfeature.Client {
	t.Helper()
	domain := fmt.Sprintf("ofrep-test-%d", domainSeq.Add(1))
	p := ofrepprovider.NewProvider(s.url, ofrepprovider.WithBearerToken(s.clientKey))
	if err := openfeature.SetNamedProviderAndWait(domain, p); err != nil {
		t.Fatal(err)
	}
	return openfeature.NewClient(domain)
}

func TestOFREP_OpenFeatureSDK(t *testing.T) {
	s := startServer(t)
	c := sdkClient(t, s)
	ctx := t.Context()
	user := openfeature.NewEvaluationContext

	t.Run("targeting match", func(t *testing.T) {
		d, err := c.BooleanValueDetails(ctx, "new-checkout", false, user("u1", map[string]any{"email": "ana@shipgate.dev"}))
		if err != nil || !d.Value || d.Variant != "on" || d.Reason != openfeature.TargetingMatchReason {
			t.Fatalf("got %+v, %v; want true, on, TARGETING_MATCH", d, err)
		}
		if owner, _ := d.FlagMetadata.GetString("owner"); owner != "payments" {
			t.Errorf("metadata owner = %q, want payments", owner)
		}
		d, err = c.BooleanValueDetails(ctx, "new-checkout", true, user("u2", map[string]any{"email": "bo@example.com"}))
		if err != nil || d.Value || d.Variant != "off" || d.Reason != openfeature.TargetingMatchReason {
			t.Fatalf("got %+v, %v; want false, off, TARGETING_MATCH", d, err)
		}
	})
	t.Run("static", func(t *testing.T) {
		d, err := c.StringValueDetails(ctx, "banner-text", "code default", user("u1", nil))
		if err != nil || d.Value != "Hello!" || d.Variant != "hello" || d.Reason != openfeature.StaticReason {
			t.Fatalf("got %+v, %v; want Hello!, hello, STATIC", d, err)
		}
	})
	t.Run("default and integers", func(t *testing.T) {
		d, err := c.IntValueDetails(ctx, "max-items", 1, user("u1", map[string]any{"plan": "pro"}))
		if err != nil || d.Value != 50 || d.Reason != openfeature.TargetingMatchReason {
			t.Fatalf("pro: got %+v, %v; want 50, TARGETING_MATCH", d, err)
		}
		d, err = c.IntValueDetails(ctx, "max-items", 1, user("u1", map[string]any{"plan": "free"}))
		if err != nil || d.Value != 10 || d.Variant != "small" || d.Reason != openfeature.DefaultReason {
			t.Fatalf("free: got %+v, %v; want 10, small, DEFAULT", d, err)
		}
	})
	t.Run("split", func(t *testing.T) {
		on := 0
		for i := range 200 {
			key := fmt.Sprintf("user-%d", i)
			d, err := c.BooleanValueDetails(ctx, "half", false, user(key, nil))
			if err != nil || d.Reason != openfeature.TargetingMatchReason {
				t.Fatalf("%s: got %+v, %v; want reason TARGETING_MATCH, as flagd answers for a split", key, d, err)
			}
			if want := flags.BucketFor("half", key) < 50; d.Value != want {
				t.Fatalf("%s: got %v, the published bucketing says %v", key, d.Value, want)
			}
			if d.Value {
				on++
			}
		}
		if on < 70 || on > 130 {
			t.Errorf("%d of 200 users on at 50%%", on)
		}
	})
	errorCases := []struct {
		name string
		eval func() (openfeature.ErrorCode, openfeature.Reason, any)
		want openfeature.ErrorCode
	}{
		{"flag not found", func() (openfeature.ErrorCode, openfeature.Reason, any) {
			d, _ := c.BooleanValueDetails(ctx, "no-such-flag", true, user("u1", nil))
			return d.ErrorCode, d.Reason, d.Value
		}, openfeature.FlagNotFoundCode},
		{"parse error", func() (openfeature.ErrorCode, openfeature.Reason, any) {
			d, _ := c.BooleanValueDetails(ctx, "fragile", true, user("u1", map[string]any{"n": 5}))
			return d.ErrorCode, d.Reason, d.Value
		}, openfeature.ParseErrorCode},
		{"type mismatch", func() (openfeature.ErrorCode, openfeature.Reason, any) {
			d, _ := c.BooleanValueDetails(ctx, "banner-text", true, user("u1", nil))
			return d.ErrorCode, d.Reason, d.Value
		}, openfeature.TypeMismatchCode},
	}
	for _, tc := range errorCases {
		t.Run(tc.name, func(t *testing.T) {
			code, reason, value := tc.eval()
			if code != tc.want || reason != openfeature.ErrorReason || value != true {
				t.Fatalf("got code %q, reason %q, value %v; want %q, ERROR and the code default true", code, reason, value, tc.want)
			}
		})
	}
	t.Run("targeting key missing", func(t *testing.T) {
		// flagd's split without a targeting key serves the default.
		d, err := c.BooleanValueDetails(ctx, "half", true, openfeature.NewTargetlessEvaluationContext(nil))
		if err != nil || d.Value || d.Variant != "off" || d.Reason != openfeature.DefaultReason {
			t.Fatalf("got %+v, %v; want false, off, DEFAULT", d, err)
		}
	})
	t.Run("disabled", func(t *testing.T) {
		d, err := c.BooleanValueDetails(ctx, "dormant", false, user("u1", nil))
		if err != nil || d.Value || d.Reason != openfeature.DisabledReason {
			t.Fatalf("got %+v, %v; want the code default false with reason DISABLED", d, err)
		}
	})
}

// post sends an OFREP request and returns the status, ETag and body.
func post(t *testing.T, url, key, etag string, body string) (int, string, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, url, bytes.NewReader([]byte(body)))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		req.Header.Set("X-API-Key", key)
	}
	if etag != "" {
		req.Header.Set("If-None-Match", etag)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("ETag"), b
}

func TestOFREP_BulkETag(t *testing.T) {
	s := startServer(t)
	url := s.url + ofrep.PathEvaluate
	ctxBody := `{"context": {"targetingKey": "u1", "email": "ana@shipgate.dev"}}`
	status, etag, body := post(t, url, s.clientKey, "", ctxBody)
	if status != http.StatusOK || etag == "" {
		t.Fatalf("first bulk: %d, ETag %q: %s", status, etag, body)
	}
	var bulk struct {
		Flags        []map[string]any `json:"flags"`
		EventStreams []map[string]any `json:"eventStreams"`
	}
	if err := json.Unmarshal(body, &bulk); err != nil {
		t.Fatal(err)
	}
	if got, want := len(bulk.Flags), 6; got != want {
		t.Errorf("%d flags in the bulk answer, want %d: %s", got, want, body)
	}
	if len(bulk.EventStreams) != 1 || bulk.EventStreams[0]["type"] != "sse" {
		t.Errorf("eventStreams = %v, want one sse stream", bulk.EventStreams)
	}

	if status, _, body := post(t, url, s.clientKey, etag, ctxBody); status != http.StatusNotModified || len(body) != 0 {
		t.Fatalf("unchanged: %d %s, want 304 and no body", status, body)
	}
	// Another context is another answer.
	if status, _, _ := post(t, url, s.clientKey, etag, `{"context": {"targetingKey": "u2"}}`); status != http.StatusOK {
		t.Fatalf("other context: %d, want 200", status)
	}
	if _, err := s.svc.Disable(t.Context(), "new-checkout", flags.Who{Actor: "user:test", Reason: "kill"}); err != nil {
		t.Fatal(err)
	}
	status, etag2, body := post(t, url, s.clientKey, etag, ctxBody)
	if status != http.StatusOK || etag2 == etag {
		t.Fatalf("after a change: %d, ETag %q (was %q), want 200 and a new ETag", status, etag2, etag)
	}
	if !bytes.Contains(body, []byte(`{"key":"new-checkout","reason":"DISABLED"`)) {
		t.Errorf("the disabled flag is not reported as DISABLED: %s", body)
	}
}

func TestOFREP_ErrorsAndAuth(t *testing.T) {
	s := startServer(t)
	single := s.url + ofrep.PathEvaluate + "/new-checkout"
	cases := []struct {
		name, url, key, body string
		status               int
		code                 string
	}{
		{"no key", single, "", `{"context":{}}`, http.StatusUnauthorized, ""},
		{"unknown key", single, "sgt_nope", `{"context":{}}`, http.StatusUnauthorized, ""},
		{"admin token", single, s.adminKey, `{"context":{}}`, http.StatusForbidden, ""},
		{"bad json", single, s.clientKey, `{"context":`, http.StatusBadRequest, "PARSE_ERROR"},
		{"context not an object", single, s.clientKey, `{"context":[1]}`, http.StatusBadRequest, "INVALID_CONTEXT"},
		// flagd evaluates a targetingKey that is not a string: no refusal.
		{"targeting key not a string", single, s.clientKey, `{"context":{"targetingKey":7}}`, http.StatusOK, ""},
		{"not found", s.url + ofrep.PathEvaluate + "/nope", s.clientKey, `{"context":{}}`, http.StatusNotFound, "FLAG_NOT_FOUND"},
		{"bulk bad context", s.url + ofrep.PathEvaluate, s.clientKey, `{"context":"x"}`, http.StatusBadRequest, "INVALID_CONTEXT"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			status, _, body := post(t, tc.url, tc.key, "", tc.body)
			if status != tc.status {
				t.Fatalf("status %d, want %d: %s", status, tc.status, body)
			}
			var e struct {
				ErrorCode string `json:"errorCode"`
			}
			_ = json.Unmarshal(body, &e)
			if e.ErrorCode != tc.code {
				t.Fatalf("errorCode %q, want %q: %s", e.ErrorCode, tc.code, body)
			}
		})
	}
}

// TestOFREP_KillSwitchUnderLoad: clients that cache a bulk evaluation and
// refresh it on the change stream's events evaluate in a loop; after the
// flag is disabled, none of them sees it on more than a second after the
// disable was acknowledged.
func TestOFREP_KillSwitchUnderLoad(t *testing.T) {
	s := startServer(t)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()

	const clients, workersPerClient = 8, 4
	var (
		mu      sync.Mutex
		lastOn  time.Time
		onCount int
		evals   atomic.Int64
		wg      sync.WaitGroup
	)
	ready := make(chan struct{}, clients)
	for i := range clients {
		c := ofrep.NewClient(s.url, s.clientKey, map[string]any{"targetingKey": fmt.Sprintf("u%d", i), "email": fmt.Sprintf("u%d@shipgate.dev", i)})
		if err := c.Refresh(ctx); err != nil {
			t.Fatal(err)
		}
		if !c.Bool("new-checkout", false) {
			t.Fatalf("client %d does not see the flag on before the switch", i)
		}
		// Run refetches once when it connects; that is when it listens.
		// Take the channel before Run starts, or a quick connect closes it
		// before anyone waits on it.
		refreshed := c.Refreshed()
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = c.Run(ctx)
		}()
		go func() {
			<-refreshed
			ready <- struct{}{}
		}()
		for range workersPerClient {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for ctx.Err() == nil {
					evals.Add(1)
					// The time the evaluation began: taken after it, it
					// would include however long this goroutine waited
					// for a core, which is not the flag's staleness.
					now := time.Now()
					if c.Bool("new-checkout", false) {
						mu.Lock()
						onCount++
						if now.After(lastOn) {
							lastOn = now
						}
						mu.Unlock()
					}
					time.Sleep(100 * time.Microsecond)
				}
			}()
		}
	}
	for range clients {
		select {
		case <-ready:
		case <-time.After(15 * time.Second):
			t.Fatal("clients did not connect to the change stream within 15s")
		}
	}
	// The clients evaluate the flag on before it is switched off.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		mu.Lock()
		on := onCount
		mu.Unlock()
		if on > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no client saw the flag on within 10s")
		}
	}
	if _, err := s.svc.Disable(ctx, "new-checkout", flags.Who{Actor: "user:oncall", Reason: "errors on /pay"}); err != nil {
		t.Fatal(err)
	}
	acked := time.Now()
	time.Sleep(2 * time.Second)
	cancel()
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	t.Logf("%d evaluations, %d on; last on %v after the disable was acknowledged", evals.Load(), onCount, lastOn.Sub(acked))
	if onCount == 0 {
		t.Fatal("no client ever saw the flag on: the test measured nothing")
	}
	if late := lastOn.Sub(acked); late > time.Second {
		t.Fatalf("a client saw the flag on %v after the disable was acknowledged, want at most 1s", late)
	}
}
