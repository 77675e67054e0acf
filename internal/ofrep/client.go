package ofrep

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Evaluation is one flag of a bulk evaluation, as a client sees it.
type Evaluation struct {
	Key          string         `json:"key"`
	Value        any            `json:"value"`
	Reason       string         `json:"reason"`
	Variant      string         `json:"variant"`
	ErrorCode    string         `json:"errorCode"`
	ErrorDetails string         `json:"errorDetails"`
	Metadata     map[string]any `json:"metadata"`
}

// Client is a client-side OFREP client: it evaluates every flag once
// for a static context, answers from that cache, and refetches (with
// If-None-Match) whenever the server's change stream says so. It is what
// a browser or mobile OFREP provider does, in Go.
type Client struct {
	base   string
	key    string
	hc     *http.Client
	stream *http.Client
	ctx    map[string]any

	mu    sync.RWMutex
	flags map[string]Evaluation
	etag  string
	// refreshed is closed and replaced after every refresh, for tests
	// and callers that wait for one.
	refreshed chan struct{}
}

// NewClient returns a client of the OFREP server at baseURL that
// authenticates with key and evaluates for evalCtx.
func NewClient(baseURL, key string, evalCtx map[string]any) *Client {
	return &Client{
		base:      strings.TrimRight(baseURL, "/"),
		key:       key,
		hc:        &http.Client{Timeout: 10 * time.Second},
		stream:    &http.Client{},
		ctx:       evalCtx,
		flags:     map[string]Evaluation{},
		refreshed: make(chan struct{}),
	}
}

// Refresh fetches the bulk evaluation unless it has not changed.
func (c *Client) Refresh(ctx context.Context) error {
	body, err := json.Marshal(map[string]any{"context": c.ctx})
	if err != nil {
		return fmt.Errorf("encode context: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+PathEvaluate, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+c.key)
	c.mu.RLock()
	if c.etag != "" {
		req.Header.Set("If-None-Match", c.etag)
	}
	c.mu.RUnlock()
	resp, err := c.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusNotModified:
		c.signal()
		return nil
	case http.StatusOK:
	default:
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return fmt.Errorf("bulk evaluation: %s: %s", resp.Status, bytes.TrimSpace(b))
	}
	var bulk struct {
		Flags []Evaluation `json:"flags"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 16<<20)).Decode(&bulk); err != nil {
		return fmt.Errorf("bulk evaluation: decode: %w", err)
	}
	flags := make(map[string]Evaluation, len(bulk.Flags))
	for _, f := range bulk.Flags {
		flags[f.Key] = f
	}
	c.mu.Lock()
	c.flags, c.etag = flags, resp.Header.Get("ETag")
	c.mu.Unlock()
	c.signal()
	return nil
}

func (c *Client) signal() {
	c.mu.Lock()
	close(c.refreshed)
	c.refreshed = make(chan struct{})
	c.mu.Unlock()
}

// Refreshed returns a channel closed at the next refresh.
func (c *Client) Refreshed() <-chan struct{} {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.refreshed
}

// Lookup returns the cached evaluation of a flag.
func (c *Client) Lookup(key string) (Evaluation, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	e, ok := c.flags[key]
	return e, ok
}

// Bool returns a boolean flag's cached value, or def when the flag is
// unknown, disabled, failed or not a boolean.
func (c *Client) Bool(key string, def bool) bool {
	e, ok := c.Lookup(key)
	if !ok || e.ErrorCode != "" {
		return def
	}
	b, ok := e.Value.(bool)
	if !ok {
		return def
	}
	return b
}

// Run keeps the cache fresh until ctx is done: it listens to the change
// stream and refetches on every event, reconnecting (and refetching)
// after a lost connection with a capped backoff.
func (c *Client) Run(ctx context.Context) error {
	backoff := 100 * time.Millisecond
	for {
		// listen returns when the stream breaks; reconnecting refetches.
		_ = c.listen(ctx)
		if ctx.Err() != nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

// listen reads the stream until it ends, refreshing on each event.
func (c *Client) listen(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+PathStream, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Authorization", "Bearer "+c.key)
	resp, err := c.stream.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("change stream: %s", resp.Status)
	}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		data, ok := strings.CutPrefix(line, "data:")
		if !ok {
			continue
		}
		var ev struct {
			Type string `json:"type"`
		}
		if json.Unmarshal([]byte(strings.TrimSpace(data)), &ev) != nil || ev.Type != "refetchEvaluation" {
			continue
		}
		// A failed refetch is tried again at once, a few times: a
		// kill switch must not wait for the next change.
		for attempt := 0; attempt < 3 && ctx.Err() == nil; attempt++ {
			if c.Refresh(ctx) == nil {
				break
			}
			time.Sleep(50 * time.Millisecond << attempt)
		}
	}
	if err := sc.Err(); err != nil {
		return err
	}
	return errors.New("change stream ended")
}
