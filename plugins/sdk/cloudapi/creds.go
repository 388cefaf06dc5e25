package cloudapi

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// Credentials are an access key, its secret and the session token of a
// temporary key (role credentials). They never leave the probe process:
// every way of printing them shows the key id's first characters only.
type Credentials struct {
	AccessKeyID, Secret, SessionToken string
	// Expires is zero for long-lived keys (from the environment).
	Expires time.Time
}

// String redacts the secret and the token.
func (c Credentials) String() string {
	id := c.AccessKeyID
	if len(id) > 4 {
		id = id[:4]
	}
	return fmt.Sprintf("credentials{key %s…, expires %s}", id, c.Expires.Format(time.RFC3339))
}

// GoString redacts as String does (%#v).
func (c Credentials) GoString() string { return c.String() }

// LogValue redacts as String does (slog).
func (c Credentials) LogValue() slog.Value { return slog.StringValue(c.String()) }

// Refresh is how early before their expiry temporary credentials are
// fetched again: the metadata services rotate them well before (AWS five
// minutes, Alibaba about an hour), so asking earlier costs nothing.
const Refresh = 5 * time.Minute

// CredentialCache holds the credentials Fetch returns until Refresh before
// they expire, or until Invalidate (the API said they expired early).
type CredentialCache struct {
	Fetch func(ctx context.Context) (Credentials, error)
	// Now is the clock (time.Now).
	Now func() time.Time

	mu    sync.Mutex
	creds *Credentials
}

// Get returns valid credentials, fetching them when none are cached or the
// cached ones are about to expire.
func (c *CredentialCache) Get(ctx context.Context) (Credentials, error) {
	now := time.Now
	if c.Now != nil {
		now = c.Now
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.creds != nil && (c.creds.Expires.IsZero() || now().Add(Refresh).Before(c.creds.Expires)) {
		return *c.creds, nil
	}
	cr, err := c.Fetch(ctx)
	if err != nil {
		return Credentials{}, fmt.Errorf("credentials: %w", err)
	}
	if cr.AccessKeyID == "" || cr.Secret == "" {
		return Credentials{}, fmt.Errorf("credentials: the source returned an empty key or secret")
	}
	if !cr.Expires.IsZero() && !now().Before(cr.Expires) {
		return Credentials{}, fmt.Errorf("credentials: the source returned credentials that expired at %s", cr.Expires.Format(time.RFC3339))
	}
	c.creds = &cr
	return cr, nil
}

// Invalidate drops the cached credentials: the API refused them as
// expired, so the next Get fetches new ones.
func (c *CredentialCache) Invalidate() {
	c.mu.Lock()
	c.creds = nil
	c.mu.Unlock()
}
