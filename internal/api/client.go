package api

import (
	"bytes"
	"context"
	"encoding/json"
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
// response into out (nil to ignore it).
func (c *Client) do(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return fmt.Errorf("encode request: %w", err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.baseURL+path, rd)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
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
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
	if err != nil {
		return fmt.Errorf("%s %s: read response: %w", method, path, err)
	}
	if resp.StatusCode >= 300 {
		return responseError(resp.StatusCode, data)
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
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
// now. It changes nothing.
func (c *Client) Plan(ctx context.Context, req rollout.DeployRequest) (rollout.PlanView, error) {
	var pv rollout.PlanView
	err := c.do(ctx, http.MethodPost, "/v1/plans", req, &pv)
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
