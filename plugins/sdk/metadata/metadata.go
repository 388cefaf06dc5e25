package metadata

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/gopatrol/gopatrol/plugins/sdk"
)

const (
	// DialTimeout bounds the one dial that decides "not this cloud": a
	// metadata service is a hop away and answers a SYN in well under a
	// millisecond; off-cloud the address is unrouted or silent.
	DialTimeout = 150 * time.Millisecond
	// MaxBody caps every response body: the largest document we read,
	// Azure's instance metadata, is a few KiB.
	MaxBody = 256 << 10
	// DefaultTimeout bounds a request whose context has no deadline.
	DefaultTimeout = 5 * time.Second
)

// Client talks to one metadata service.
type Client struct {
	HTTP    *http.Client
	MaxBody int64
}

// New returns a client without proxy, with the short dial timeout. tlsConf
// may be nil (plain HTTP metadata services).
func New(tlsConf *tls.Config) *Client {
	d := &net.Dialer{Timeout: DialTimeout}
	tr := &http.Transport{
		Proxy:                  nil, // never HTTP(S)_PROXY for metadata
		DialContext:            d.DialContext,
		TLSClientConfig:        tlsConf,
		ForceAttemptHTTP2:      tlsConf != nil,
		MaxIdleConnsPerHost:    4,
		IdleConnTimeout:        30 * time.Second,
		TLSHandshakeTimeout:    2 * time.Second,
		ResponseHeaderTimeout:  DefaultTimeout,
		MaxResponseHeaderBytes: 64 << 10,
	}
	return &Client{HTTP: &http.Client{Transport: tr, CheckRedirect: noRedirect}, MaxBody: MaxBody}
}

// A metadata service does not redirect; following one could leave the
// link-local network.
func noRedirect(req *http.Request, _ []*http.Request) error {
	return fmt.Errorf("metadata service redirected to %s: refusing to follow", req.URL.Redacted())
}

// Response is a metadata answer with its body already read (capped).
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// ErrTooLarge is returned when a body exceeds MaxBody.
var ErrTooLarge = errors.New("response body too large")

// Do sends one request. A failed dial is reported as sdk.ErrNotThisCloud:
// nothing listens at the metadata address. Everything after a connection
// (status codes included) is for the caller to judge.
func (c *Client) Do(ctx context.Context, method, rawURL string, header http.Header) (*Response, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultTimeout)
		defer cancel()
	}
	req, err := http.NewRequestWithContext(ctx, method, rawURL, nil)
	if err != nil {
		return nil, fmt.Errorf("metadata request %s %s: %w", method, rawURL, err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		if isDialError(err) {
			return nil, sdk.NotThisCloudf("no metadata service at %s: %v", req.URL.Host, err)
		}
		return nil, fmt.Errorf("%s %s: %w", method, req.URL.Redacted(), err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, c.MaxBody+1))
	if err != nil {
		return nil, fmt.Errorf("%s %s: reading body: %w", method, req.URL.Redacted(), err)
	}
	if int64(len(body)) > c.MaxBody {
		return nil, fmt.Errorf("%s %s: %w: more than %d bytes", method, req.URL.Redacted(), ErrTooLarge, c.MaxBody)
	}
	return &Response{Status: resp.StatusCode, Header: resp.Header, Body: body}, nil
}

func isDialError(err error) bool {
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return true
	}
	var dns *net.DNSError
	return errors.As(err, &dns)
}

// Endpoint returns the base URL of a metadata service: the value of the
// environment variable env if set (a URL, or host[:port] meaning http),
// else def. A bad override is a configuration error naming the variable.
func Endpoint(env, def string) (*url.URL, error) {
	raw := os.Getenv(env)
	if raw == "" {
		raw = def
	}
	if !strings.Contains(raw, "://") {
		raw = "http://" + raw
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return nil, fmt.Errorf("%s=%q: want http://host[:port] or host[:port]", env, os.Getenv(env))
	}
	u.Path = strings.TrimRight(u.Path, "/")
	return u, nil
}

// Join appends path (with its query) to the endpoint.
func Join(base *url.URL, path string) string {
	return base.String() + path
}
