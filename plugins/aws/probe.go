package aws

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/gopatrol/gopatrol/plugins/sdk"
	"github.com/gopatrol/gopatrol/plugins/sdk/cloudapi"
	"github.com/gopatrol/gopatrol/plugins/sdk/metadata"
)

const (
	endpointEnv = "AWS_EC2_METADATA_SERVICE_ENDPOINT" // the AWS SDKs' own override
	defaultURL  = "http://169.254.169.254"
	tokenPath   = "/latest/api/token"
	docPath     = "/latest/dynamic/instance-identity/document"
	ttlHeader   = "X-aws-ec2-metadata-token-ttl-seconds"
	tokenHeader = "X-aws-ec2-metadata-token"
	tokenTTL    = 6 * time.Hour // IMDSv2's maximum
)

// probe asks through its token source's client, so one keep-alive pool
// carries the token and the data requests.
type probe struct {
	version string // what Info reports: the build's
	tokens  *metadata.TokenSource
	// CloudWatch: the SDK's client (made at the first call; it holds
	// the credentials, which never leave this process) and the sampler
	// that calls it at most once per interval (and serializes the calls).
	cwc *cwClient
	cw  cloudapi.Sampler
}

func newProbe() *probe {
	return &probe{tokens: &metadata.TokenSource{
		Client: metadata.New(nil), Path: tokenPath, TTLHeader: ttlHeader, TTL: tokenTTL,
		Service: "EC2's IMDSv2",
		// Something listens at the link-local address but does not
		// speak IMDSv2: another cloud's metadata service.
		NotThisCloud: []int{http.StatusNotFound, http.StatusMethodNotAllowed, http.StatusBadRequest},
		Hint:         "is IMDS enabled with tokens allowed, and the hop limit high enough for containers?",
	}}
}

func (p *probe) Info() sdk.Info {
	return sdk.Info{
		Name: "aws", Version: p.version,
		Description: "Amazon EC2 through IMDSv2 (token, then the instance identity document)",
		AttributeKeys: []string{sdk.CloudProvider, sdk.CloudPlatform, sdk.CloudRegion, sdk.CloudAvailabilityZone,
			sdk.CloudAccountID, sdk.HostID, sdk.HostType},
	}
}

// The identity document's fields we use.
type identity struct {
	AccountID        string `json:"accountId"`
	AvailabilityZone string `json:"availabilityZone"`
	InstanceID       string `json:"instanceId"`
	InstanceType     string `json:"instanceType"`
	Region           string `json:"region"`
}

func (p *probe) Detect(ctx context.Context) (map[string]string, error) {
	base, err := metadata.Endpoint(endpointEnv, defaultURL)
	if err != nil {
		return nil, err
	}
	id, err := p.identity(ctx, base)
	if err != nil {
		return nil, err
	}
	attrs := map[string]string{
		sdk.CloudProvider: sdk.ProviderAWS,
		sdk.CloudPlatform: sdk.PlatformAWSEC2,
		sdk.CloudRegion:   id.Region,
		sdk.HostID:        id.InstanceID,
	}
	put(attrs, sdk.CloudAvailabilityZone, id.AvailabilityZone)
	put(attrs, sdk.CloudAccountID, id.AccountID)
	put(attrs, sdk.HostType, id.InstanceType)
	return attrs, nil
}

func put(m map[string]string, k, v string) {
	if v != "" {
		m[k] = v
	}
}

func (p *probe) identity(ctx context.Context, base *url.URL) (identity, error) {
	doc, err := p.get(ctx, base, docPath, true)
	if err != nil {
		return identity{}, err
	}
	var id identity
	if err := json.Unmarshal(doc, &id); err != nil {
		return identity{}, fmt.Errorf("GET %s: instance identity document is not JSON: %w", docPath, err)
	}
	if strings.TrimSpace(id.Region) == "" || strings.TrimSpace(id.InstanceID) == "" {
		return identity{}, fmt.Errorf("GET %s: identity document lacks region or instanceId", docPath)
	}
	return id, nil
}

// get fetches path with a cached token; a 401 means the token expired or
// was revoked early: drop it and retry once.
func (p *probe) get(ctx context.Context, base *url.URL, path string, retry bool) ([]byte, error) {
	tok, err := p.tokens.Token(ctx, base)
	if err != nil {
		return nil, err
	}
	r, err := p.tokens.Client.Do(ctx, http.MethodGet, base.String()+path, http.Header{tokenHeader: {tok}})
	if err != nil {
		return nil, err
	}
	switch {
	case r.Status == http.StatusOK:
		return r.Body, nil
	case r.Status == http.StatusUnauthorized && retry:
		p.tokens.Invalidate()
		return p.get(ctx, base, path, false)
	case r.Status == http.StatusUnauthorized:
		return nil, fmt.Errorf("GET %s: %s (IMDSv2 refused the session token)", path, http.StatusText(r.Status))
	}
	return nil, fmt.Errorf("GET %s: %s", path, http.StatusText(r.Status))
}

// New returns the probe that gopatrol-probe-aws serves; version is the
// one Info reports (the build's).
func New(version string) sdk.Probe {
	p := newProbe()
	p.version = version
	return p
}
