package api

import (
	"context"
	"net/http"
	"net/url"

	"github.com/shipgate/shipgate/internal/auth"
)

// CreateToken makes an API token; the answer holds its secret, which the
// server never shows again.
func (c *Client) CreateToken(ctx context.Context, req TokenRequest) (NewToken, error) {
	var out NewToken
	err := c.do(ctx, http.MethodPost, "/v1/tokens", req, &out)
	return out, err
}

// ListTokens returns every token, by name, without secrets.
func (c *Client) ListTokens(ctx context.Context) ([]auth.Token, error) {
	var out []auth.Token
	err := c.do(ctx, http.MethodGet, "/v1/tokens", nil, &out)
	return out, err
}

// RevokeToken deletes the token named name: its secret stops working at
// once.
func (c *Client) RevokeToken(ctx context.Context, name string) error {
	return c.do(ctx, http.MethodDelete, "/v1/tokens/"+url.PathEscape(name), nil, nil)
}
