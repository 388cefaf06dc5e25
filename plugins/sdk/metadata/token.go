package metadata

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gopatrol/gopatrol/plugins/sdk"
)

// TokenSource caches the session token of a metadata service in token mode
// (EC2's IMDSv2, Alibaba ECS's hardened mode): PUT Path with the TTL
// requested in TTLHeader, then reuse the token until 90% of its TTL, so it
// never expires mid-request. A service that refuses a token (401) is told
// so with Invalidate, and the next Token asks for a new one.
type TokenSource struct {
	Client *Client
	// Path is the token endpoint, e.g. /latest/api/token.
	Path string
	// TTLHeader carries the TTL in seconds, in the request and (EC2)
	// the response; TTL is what we ask for.
	TTLHeader string
	TTL       time.Duration
	// Service names the service in errors ("EC2's IMDSv2").
	Service string
	// NotThisCloud are the PUT statuses by which another cloud's
	// metadata service (or something else at the address) answers.
	NotThisCloud []int
	// Hint is added to the error of any other refusal: what the operator
	// should look at.
	Hint string

	mu      sync.Mutex
	token   string
	expires time.Time
}

// Token returns the cached token or fetches a new one from base. A status
// in NotThisCloud is an sdk.ErrNotThisCloud.
func (s *TokenSource) Token(ctx context.Context, base *url.URL) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.token != "" && time.Now().Before(s.expires) {
		return s.token, nil
	}
	u := base.String() + s.Path
	r, err := s.Client.Do(ctx, http.MethodPut, u, http.Header{s.TTLHeader: {strconv.Itoa(int(s.TTL.Seconds()))}})
	if err != nil {
		return "", err
	}
	switch {
	case slices.Contains(s.NotThisCloud, r.Status):
		return "", sdk.NotThisCloudf("PUT %s answered %d: not %s", u, r.Status, s.Service)
	case r.Status != http.StatusOK:
		msg := fmt.Sprintf("PUT %s: %d %s", u, r.Status, http.StatusText(r.Status))
		if s.Hint != "" {
			msg += " (" + s.Hint + ")"
		}
		return "", fmt.Errorf("%s", msg)
	}
	tok := strings.TrimSpace(string(r.Body))
	if tok == "" {
		return "", fmt.Errorf("PUT %s: empty token", u)
	}
	ttl := s.TTL
	if sec, err := strconv.Atoi(r.Header.Get(s.TTLHeader)); err == nil && sec > 0 {
		ttl = time.Duration(sec) * time.Second
	}
	s.token, s.expires = tok, time.Now().Add(ttl-ttl/10)
	return s.token, nil
}

// Invalidate drops the cached token: the service refused it (expired or
// revoked early).
func (s *TokenSource) Invalidate() {
	s.mu.Lock()
	s.token = ""
	s.mu.Unlock()
}
