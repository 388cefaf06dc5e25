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

// NewHTTPClient returns the HTTP client handed to a vendor SDK: base (nil:
// Go's default transport, so the environment's proxy, as these are public
// endpoints unlike the metadata services) with bounded headers, no
// redirects (a signed request is not replayed elsewhere), and every
// answer's body cut at MaxBody with ErrTooLarge, whichever SDK code reads
// it.
func NewHTTPClient(base *http.Transport) *http.Client {
	var tr *http.Transport
	if base != nil {
		tr = base.Clone()
	} else {
		tr = http.DefaultTransport.(*http.Transport).Clone()
	}
	tr.MaxResponseHeaderBytes = 64 << 10
	tr.ResponseHeaderTimeout = 30 * time.Second
	return &http.Client{
		Transport: &BoundedTransport{Base: tr, MaxBody: MaxBody},
	}
}

// BoundedTransport caps the body of every answer Base returns: reading
// past MaxBody fails with ErrTooLarge (naming the host, never the URL,
// whose query may hold a signed request's token). It refuses redirects
// itself, not only through the client's CheckRedirect: an SDK may build
// its own http.Client around the transport (Alibaba's does).
type BoundedTransport struct {
	Base    http.RoundTripper
	MaxBody int64
}

// RoundTrip sends req through Base and wraps the answer's body.
func (t *BoundedTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.Base.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	if loc := resp.Header.Get("Location"); loc != "" && resp.StatusCode >= 300 && resp.StatusCode < 400 {
		resp.Body.Close()
		to := "elsewhere"
		if u, err := req.URL.Parse(loc); err == nil {
			to = u.Host
		}
		return nil, fmt.Errorf("API at %s redirected to %s: refusing to follow a signed request", req.URL.Host, to)
	}
	limit := t.MaxBody
	if limit <= 0 {
		limit = MaxBody
	}
	resp.Body = &boundedBody{rc: resp.Body, left: limit, limit: limit, host: req.URL.Host}
	return resp, nil
}

type boundedBody struct {
	rc          io.ReadCloser
	left, limit int64
	host        string
}

// Read passes the body through until limit bytes were read; a byte more
// is an error, so a reader that reads to EOF learns the body was cut.
func (b *boundedBody) Read(p []byte) (int, error) {
	if b.left < 0 {
		return 0, b.tooLarge()
	}
	if int64(len(p)) > b.left+1 {
		p = p[:b.left+1]
	}
	n, err := b.rc.Read(p)
	b.left -= int64(n)
	if b.left < 0 {
		return n + int(b.left), b.tooLarge()
	}
	return n, err
}

func (b *boundedBody) tooLarge() error {
	return fmt.Errorf("%s: %w: more than %d bytes", b.host, ErrTooLarge, b.limit)
}

func (b *boundedBody) Close() error { return b.rc.Close() }

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
