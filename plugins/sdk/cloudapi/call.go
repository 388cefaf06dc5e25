package cloudapi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"
)

// MaxBody caps an API answer: a page of metric data is a few KiB; more is
// a wrong endpoint or a hostile one.
const MaxBody = 1 << 20

// ErrTooLarge is returned for an answer beyond the cap.
var ErrTooLarge = errors.New("API answer too large")

// Client calls a cloud API: the environment's proxy (these are public
// endpoints, unlike the metadata services), no redirects, bounded bodies.
type Client struct {
	HTTP    *http.Client
	MaxBody int64
}

// NewClient returns a Client with the defaults.
func NewClient() *Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxResponseHeaderBytes = 64 << 10
	return &Client{
		HTTP: &http.Client{Transport: tr, CheckRedirect: func(req *http.Request, _ []*http.Request) error {
			return fmt.Errorf("API redirected to %s: refusing to follow a signed request", req.URL.Redacted())
		}},
		MaxBody: MaxBody,
	}
}

// Response is an answer with its body read.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// Do sends req and reads its answer, capped.
func (c *Client) Do(req *http.Request) (*Response, error) {
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", req.Method, req.URL.Redacted(), err)
	}
	defer resp.Body.Close()
	limit := c.MaxBody
	if limit <= 0 {
		limit = MaxBody
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, fmt.Errorf("%s %s: reading the answer: %w", req.Method, req.URL.Host, err)
	}
	if int64(len(body)) > limit {
		return nil, fmt.Errorf("%s %s: %w: more than %d bytes", req.Method, req.URL.Host, ErrTooLarge, limit)
	}
	return &Response{Status: resp.StatusCode, Header: resp.Header, Body: body}, nil
}

// ErrRetry marks an attempt worth repeating (throttled, 5xx, expired
// credentials that were just dropped).
var ErrRetry = errors.New("retryable")

// Retry calls attempt up to attempts times while it returns an error
// wrapping ErrRetry, sleeping base, 2·base, 4·base... in between, and
// never past ctx. The last error is returned.
func Retry(ctx context.Context, attempts int, base time.Duration, attempt func() error) error {
	var err error
	for i := range attempts {
		if err = attempt(); err == nil || !errors.Is(err, ErrRetry) {
			return err
		}
		if i == attempts-1 {
			break
		}
		t := time.NewTimer(base << i)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%w (gave up waiting to retry: %v)", err, ctx.Err())
		case <-t.C:
		}
	}
	return fmt.Errorf("after %d attempts: %w", attempts, err)
}
