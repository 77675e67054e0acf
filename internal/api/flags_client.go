package api

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"

	"github.com/shipgate/shipgate/internal/flags"
)

// ListFlags returns a summary of every flag.
func (c *Client) ListFlags(ctx context.Context) ([]FlagSummary, error) {
	var out []FlagSummary
	err := c.do(ctx, http.MethodGet, "/v1/flags", nil, &out)
	return out, err
}

// GetFlag returns a flag's full definition and usage.
func (c *Client) GetFlag(ctx context.Context, key string) (FlagDetail, error) {
	var out FlagDetail
	err := c.do(ctx, http.MethodGet, "/v1/flags/"+url.PathEscape(key), nil, &out)
	return out, err
}

// CreateFlag creates a flag.
func (c *Client) CreateFlag(ctx context.Context, req CreateFlagRequest) (FlagDetail, error) {
	var out FlagDetail
	err := c.do(ctx, http.MethodPost, "/v1/flags", req, &out)
	return out, err
}

// PutFlag replaces a flag's definition.
func (c *Client) PutFlag(ctx context.Context, key string, req PutFlagRequest) (FlagDetail, error) {
	var out FlagDetail
	err := c.do(ctx, http.MethodPut, "/v1/flags/"+url.PathEscape(key), req, &out)
	return out, err
}

// FlagAction enables, disables or archives a flag: action is "enable",
// "disable" or "archive".
func (c *Client) FlagAction(ctx context.Context, key, action, reason string) (FlagDetail, error) {
	var out FlagDetail
	err := c.do(ctx, http.MethodPost, "/v1/flags/"+url.PathEscape(key)+"/"+action, ReasonRequest{Reason: reason}, &out)
	return out, err
}

// TargetFlag changes who gets a flag.
func (c *Client) TargetFlag(ctx context.Context, key string, req TargetRequest) (FlagDetail, error) {
	var out FlagDetail
	err := c.do(ctx, http.MethodPost, "/v1/flags/"+url.PathEscape(key)+"/target", req, &out)
	return out, err
}

// DeleteFlag deletes a flag; force deletes one evaluated recently.
func (c *Client) DeleteFlag(ctx context.Context, key string, force bool, reason string) error {
	q := url.Values{}
	if force {
		q.Set("force", "true")
	}
	if reason != "" {
		q.Set("reason", reason)
	}
	return c.do(ctx, http.MethodDelete, withQuery("/v1/flags/"+url.PathEscape(key), q), nil, nil)
}

// ImportFlags loads a flagd file.
func (c *Client) ImportFlags(ctx context.Context, file []byte, reason string) (ImportResult, error) {
	q := url.Values{}
	if reason != "" {
		q.Set("reason", reason)
	}
	var out ImportResult
	err := c.do(ctx, http.MethodPost, withQuery("/v1/flags/import", q), json.RawMessage(file), &out)
	return out, err
}

// ExportFlags returns every flag as a flagd file.
func (c *Client) ExportFlags(ctx context.Context) (json.RawMessage, error) {
	var out json.RawMessage
	err := c.do(ctx, http.MethodGet, "/v1/flags/export", nil, &out)
	return out, err
}

// StaleFlags returns the flags that are debt to clean up.
func (c *Client) StaleFlags(ctx context.Context) ([]flags.Debt, error) {
	var out []flags.Debt
	err := c.do(ctx, http.MethodGet, "/v1/flags/stale", nil, &out)
	return out, err
}

// PutSegment sets a shared rule.
func (c *Client) PutSegment(ctx context.Context, name string, req SegmentRequest) (flags.Segment, error) {
	var out flags.Segment
	err := c.do(ctx, http.MethodPut, "/v1/flags/segments/"+url.PathEscape(name), req, &out)
	return out, err
}

// CreateFlagKey creates a flag client key for an app.
func (c *Client) CreateFlagKey(ctx context.Context, name string) (FlagKey, error) {
	var out FlagKey
	err := c.do(ctx, http.MethodPost, "/v1/flags/keys", FlagKeyRequest{Name: name}, &out)
	return out, err
}

// StartGuardedRollout starts a guarded rollout of a flag.
func (c *Client) StartGuardedRollout(ctx context.Context, key string, req GuardRequest) (flags.GuardStatus, error) {
	var out flags.GuardStatus
	err := c.do(ctx, http.MethodPost, "/v1/flags/"+url.PathEscape(key)+"/guarded-rollout", req, &out)
	return out, err
}

// GuardedRollout returns the status of a flag's latest guarded rollout.
func (c *Client) GuardedRollout(ctx context.Context, key string) (flags.GuardStatus, error) {
	var out flags.GuardStatus
	err := c.do(ctx, http.MethodGet, "/v1/flags/"+url.PathEscape(key)+"/guarded-rollout", nil, &out)
	return out, err
}
