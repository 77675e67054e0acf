package api

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/shipgate/shipgate/internal/audit"
	"github.com/shipgate/shipgate/internal/rollout"
)

// Client talks to a Shipgate API. Its methods mirror Service; errors the
// API answered come back as *APIError.
type Client struct {
	baseURL string
	token   string
	hc      *http.Client
	retry   RetryPolicy
}

// RetryPolicy says how a client sends again a request that changes
// something when its answer was lost: each such request carries a fresh
// random Idempotency-Key, and is sent again with the same key and body
// after a transport error (the connection refused, reset or closed, a
// timeout) or a 502, 503 or 504, so that the server carries it out once
// (see Idempotency, and internal/ha on a PostgreSQL store) and the client
// gets its answer. Reads are sent once.
type RetryPolicy struct {
	// For bounds how long after the first attempt the request is sent
	// again; zero sends it once (with its key all the same).
	For time.Duration
	// Notify, when not nil, is told of each failed attempt before the
	// request is sent again after wait.
	Notify func(method, path string, attempt int, err error, wait time.Duration)
}

// WithRetry returns a copy of c that sends requests which change
// something again as p says.
func (c *Client) WithRetry(p RetryPolicy) *Client {
	cc := *c
	cc.retry = p
	return &cc
}

// The client is a Service too, so that anything written against the
// engine's interface can drive a remote server.
var _ Service = (*Client)(nil)

// maxResponseBytes caps a response body the client reads.
const maxResponseBytes = 16 << 20

// NewClient returns a client of the API at baseURL (for example
// http://127.0.0.1:7070) that authenticates with token. A nil hc uses a
// client with a 30s timeout.
func NewClient(baseURL, token string, hc *http.Client) *Client {
	if hc == nil {
		hc = &http.Client{Timeout: 30 * time.Second}
	}
	return &Client{baseURL: strings.TrimRight(baseURL, "/"), token: token, hc: hc}
}

// Deploy asks for a release to be rolled out.
func (c *Client) Deploy(ctx context.Context, req rollout.DeployRequest) (rollout.Rollout, error) {
	var ro rollout.Rollout
	err := c.do(ctx, http.MethodPost, "/v1/deploys", req, &ro)
	return ro, err
}

// Rollback asks for an environment to go back to its last good release.
func (c *Client) Rollback(ctx context.Context, req rollout.RollbackRequest) (rollout.Rollout, error) {
	var ro rollout.Rollout
	err := c.do(ctx, http.MethodPost, "/v1/rollbacks", req, &ro)
	return ro, err
}

// Status returns what is live in each environment of app; an empty app
// means the app the server manages.
func (c *Client) Status(ctx context.Context, app string) (rollout.AppStatus, error) {
	path := "/v1/status"
	if app != "" {
		path = "/v1/apps/" + url.PathEscape(app) + "/status"
	}
	var st rollout.AppStatus
	err := c.do(ctx, http.MethodGet, path, nil, &st)
	return st, err
}

// GetRollout returns one rollout.
func (c *Client) GetRollout(ctx context.Context, id int64) (rollout.Rollout, error) {
	var ro rollout.Rollout
	err := c.do(ctx, http.MethodGet, "/v1/rollouts/"+strconv.FormatInt(id, 10), nil, &ro)
	return ro, err
}

// History returns an app's rollouts in env ("" for all), newest first; a
// limit of 0 lets the server pick.
func (c *Client) History(ctx context.Context, app, env string, limit int) ([]rollout.Rollout, error) {
	q := url.Values{}
	if env != "" {
		q.Set("env", env)
	}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	var list []rollout.Rollout
	err := c.do(ctx, http.MethodGet, withQuery("/v1/apps/"+url.PathEscape(app)+"/rollouts", q), nil, &list)
	return list, err
}

// Audit returns the audit events matching f, newest first.
func (c *Client) Audit(ctx context.Context, f audit.Filter) ([]audit.Event, error) {
	q := url.Values{}
	if f.Subject != "" {
		q.Set("subject", f.Subject)
	}
	if f.Action != "" {
		q.Set("action", f.Action)
	}
	if f.Limit > 0 {
		q.Set("limit", strconv.Itoa(f.Limit))
	}
	var events []audit.Event
	err := c.do(ctx, http.MethodGet, withQuery("/v1/audit", q), nil, &events)
	return events, err
}

// AuditChain returns at most limit audit events from seq from on, oldest
// first, with their hashes.
func (c *Client) AuditChain(ctx context.Context, from int64, limit int) ([]audit.Event, error) {
	q := url.Values{"from": {strconv.FormatInt(from, 10)}, "limit": {strconv.Itoa(limit)}}
	var events []audit.Event
	err := c.do(ctx, http.MethodGet, withQuery("/v1/audit/chain", q), nil, &events)
	return events, err
}

// Health returns nil when the server answers its health check.
func (c *Client) Health(ctx context.Context) error {
	return c.do(ctx, http.MethodGet, "/healthz", nil, nil)
}

func withQuery(path string, q url.Values) string {
	if len(q) == 0 {
		return path
	}
	return path + "?" + q.Encode()
}

// do sends one request with body (nil for none) as JSON and decodes the
// response into out (nil to ignore it). A request that changes something
// carries an Idempotency-Key and is sent again as c.retry says.
func (c *Client) do(ctx context.Context, method, path string, body, out any) error {
	var data []byte
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return fmt.Errorf("encode request: %w", err)
		}
		data = b
	}
	if method == http.MethodGet || method == http.MethodHead {
		return c.send(ctx, method, path, data, body != nil, "", out)
	}
	key := newIdempotencyKey()
	deadline := time.Now().Add(c.retry.For)
	wait := 250 * time.Millisecond
	for attempt := 1; ; attempt++ {
		err := c.send(ctx, method, path, data, body != nil, key, out)
		if err == nil || !retryable(ctx, err) || !time.Now().Add(wait).Before(deadline) {
			if err != nil && attempt > 1 {
				return fmt.Errorf("%w (after %d attempts with %s %s)", err, attempt, IdempotencyKeyHeader, key)
			}
			return err
		}
		if c.retry.Notify != nil {
			c.retry.Notify(method, path, attempt, err, wait)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
		wait = min(2*wait, 2*time.Second)
	}
}

// newIdempotencyKey returns a fresh random key: 128 bits, so that two
// requests never share one.
func newIdempotencyKey() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// retryable reports whether a request that failed with err may not have
// been carried out, or its answer was lost, so that it is worth sending
// again with the same key: a transport error (not the caller's own
// cancellation, nor a certificate the client refuses) or a 502, 503 or
// 504.
func retryable(ctx context.Context, err error) bool {
	if ctx.Err() != nil {
		return false
	}
	var ae *APIError
	if errors.As(err, &ae) {
		switch ae.Status {
		case http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
			return true
		}
		return false
	}
	var ue *url.Error
	if !errors.As(err, &ue) {
		return false
	}
	var certErr *tls.CertificateVerificationError
	var unknownCA x509.UnknownAuthorityError
	var hostErr x509.HostnameError
	return !errors.As(err, &certErr) && !errors.As(err, &unknownCA) && !errors.As(err, &hostErr)
}

// send sends one request and decodes its answer into out.
func (c *Client) send(ctx context.Context, method, path string, data []byte, hasBody bool, key string, out any) error {
	var rd io.Reader
	if hasBody {
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.baseURL+path, rd)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	req.Header.Set("Accept", "application/json")
	if hasBody {
		req.Header.Set("Content-Type", "application/json")
	}
	if key != "" {
		req.Header.Set(IdempotencyKeyHeader, key)
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		// A *url.Error already names the method and the URL.
		return err
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
	if err != nil {
		// A transport error like the others: the answer was lost.
		return &url.Error{Op: method, URL: req.URL.Redacted(), Err: fmt.Errorf("read response: %w", err)}
	}
	if resp.StatusCode >= 300 {
		return responseError(resp.StatusCode, answer)
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(answer, out); err != nil {
		return fmt.Errorf("%s %s: decode response: %w", method, path, err)
	}
	return nil
}

// responseError returns the APIError of an error response. A body that is
// not an API error (a proxy in between, a route this server does not
// have) still gives an APIError, with the status and the body's first line.
func responseError(status int, data []byte) error {
	var eb errorBody
	if err := json.Unmarshal(data, &eb); err == nil && eb.Error != nil && eb.Error.Message != "" {
		eb.Error.Status = status
		return eb.Error
	}
	msg, _, _ := strings.Cut(strings.TrimSpace(string(data)), "\n")
	if len(msg) > 200 {
		msg = msg[:200]
	}
	if msg == "" {
		msg = http.StatusText(status)
	}
	return &APIError{Status: status, Code: codeForStatus(status), Message: fmt.Sprintf("server answered %d: %s", status, msg)}
}

// codeForStatus guesses the code of an error response that has none.
func codeForStatus(status int) string {
	switch status {
	case http.StatusBadRequest, http.StatusRequestEntityTooLarge:
		return codeInvalid
	case http.StatusUnauthorized:
		return codeUnauthorized
	case http.StatusForbidden:
		return codeForbidden
	case http.StatusNotFound:
		return codeNotFound
	case http.StatusConflict:
		return codeConflict
	}
	return codeInternal
}

// CreateRelease records a release with its CI checks.
func (c *Client) CreateRelease(ctx context.Context, req rollout.ReleaseRequest) (rollout.Release, error) {
	var rel rollout.Release
	err := c.do(ctx, http.MethodPost, "/v1/releases", req, &rel)
	return rel, err
}

// GetRelease returns a release of app.
func (c *Client) GetRelease(ctx context.Context, app, version string) (rollout.Release, error) {
	var rel rollout.Release
	err := c.do(ctx, http.MethodGet, releasePath(app, version), nil, &rel)
	return rel, err
}

// Approve approves the rollout waiting for approval in an environment.
func (c *Client) Approve(ctx context.Context, req rollout.ApproveRequest) (rollout.Rollout, error) {
	var ro rollout.Rollout
	err := c.do(ctx, http.MethodPost, "/v1/approvals", req, &ro)
	return ro, err
}

// Promote ends the running bake of an environment as passed: a rollout
// paused on inconclusive evidence goes on.
func (c *Client) Promote(ctx context.Context, req rollout.PromoteRequest) (rollout.Rollout, error) {
	var ro rollout.Rollout
	err := c.do(ctx, http.MethodPost, "/v1/promotions", req, &ro)
	return ro, err
}

// Pause holds the running bake of an environment.
func (c *Client) Pause(ctx context.Context, req rollout.PauseRequest) (rollout.Rollout, error) {
	var ro rollout.Rollout
	err := c.do(ctx, http.MethodPost, "/v1/pauses", req, &ro)
	return ro, err
}

// Resume lets a paused bake go on.
func (c *Client) Resume(ctx context.Context, req rollout.PauseRequest) (rollout.Rollout, error) {
	var ro rollout.Rollout
	err := c.do(ctx, http.MethodPost, "/v1/resumptions", req, &ro)
	return ro, err
}

// Plan returns what a deploy of req would do, and whether its gates pass
// now. It changes nothing, so, although a POST, it is sent once like
// every read: no Idempotency-Key, no retries (docs/cli.md).
func (c *Client) Plan(ctx context.Context, req rollout.DeployRequest) (rollout.PlanView, error) {
	var pv rollout.PlanView
	data, err := json.Marshal(req)
	if err != nil {
		return pv, fmt.Errorf("encode request: %w", err)
	}
	err = c.send(ctx, http.MethodPost, "/v1/plans", data, true, "", &pv)
	return pv, err
}

// Drift compares env of app ("" for the default environment) with against
// ("" for the drift gate's or the pipeline's choice).
func (c *Client) Drift(ctx context.Context, app, env, against string) (rollout.DriftReport, error) {
	q := url.Values{}
	if env != "" {
		q.Set("env", env)
	}
	if against != "" {
		q.Set("against", against)
	}
	var rep rollout.DriftReport
	err := c.do(ctx, http.MethodGet, withQuery("/v1/apps/"+url.PathEscape(app)+"/drift", q), nil, &rep)
	return rep, err
}

// Retry deploys again an environment's last deploy, rolled back or failed.
func (c *Client) Retry(ctx context.Context, req rollout.RetryRequest) (rollout.Rollout, error) {
	var ro rollout.Rollout
	err := c.do(ctx, http.MethodPost, "/v1/retries", req, &ro)
	return ro, err
}

// Drill starts a rollback drill and returns its rollout, which is followed
// like a deploy's.
func (c *Client) Drill(ctx context.Context, req rollout.DrillRequest) (rollout.Rollout, error) {
	var ro rollout.Rollout
	err := c.do(ctx, http.MethodPost, "/v1/drills", req, &ro)
	return ro, err
}
