package alibaba

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/gopatrol/gopatrol/plugins/sdk"
	"github.com/gopatrol/gopatrol/plugins/sdk/cloudapi"
	"github.com/gopatrol/gopatrol/plugins/sdk/metadata"
)

const (
	endpointEnv = "GOPATROL_ALIBABA_METADATA_ENDPOINT"
	defaultURL  = "http://100.100.100.200"
	tokenPath   = "/latest/api/token"
	ttlHeader   = "X-aliyun-ecs-metadata-token-ttl-seconds"
	tokenHeader = "X-aliyun-ecs-metadata-token"
	tokenTTL    = 6 * time.Hour // the service's maximum, 21600 s
)

// item is one meta-data path and the attribute it fills.
type item struct {
	path     string
	key      string
	optional bool
}

var items = []item{
	{"/latest/meta-data/region-id", sdk.CloudRegion, false},
	{"/latest/meta-data/zone-id", sdk.CloudAvailabilityZone, false},
	{"/latest/meta-data/instance-id", sdk.HostID, false},
	{"/latest/meta-data/owner-account-id", sdk.CloudAccountID, true},
	{"/latest/meta-data/instance/instance-type", sdk.HostType, true},
}

// probe asks through its token source's client, so one keep-alive pool
// carries the token and the data requests.
type probe struct {
	version string // what Info reports: the build's
	tokens  *metadata.TokenSource
	// CloudMonitor: the bounded HTTP client under the SDK's, the
	// credentials (never outside this process) and the sampler that
	// bounds the calls.
	api   *http.Client
	creds cloudapi.CredentialCache
	cms   cloudapi.Sampler
}

func newProbe() *probe {
	p := &probe{api: cloudapi.NewHTTPClient(nil), tokens: &metadata.TokenSource{
		Client: metadata.New(nil), Path: tokenPath, TTLHeader: ttlHeader, TTL: tokenTTL,
		Service: "ECS's metadata service", NotThisCloud: []int{http.StatusNotFound},
	}}
	p.creds.Fetch = p.fetchCredentials
	return p
}

func (p *probe) Info() sdk.Info {
	keys := []string{sdk.CloudProvider, sdk.CloudPlatform}
	for _, it := range items {
		keys = append(keys, it.key)
	}
	return sdk.Info{Name: "alibaba", Version: p.version,
		Description: "Alibaba Cloud ECS through the metadata service in token mode", AttributeKeys: keys}
}

func (p *probe) Detect(ctx context.Context) (map[string]string, error) {
	base, err := metadata.Endpoint(endpointEnv, defaultURL)
	if err != nil {
		return nil, err
	}
	tok, err := p.tokens.Token(ctx, base)
	if err != nil {
		return nil, err
	}
	// The items are independent: fetch them concurrently over the
	// keep-alive pool so a detection costs one round trip, not five.
	vals := make([]string, len(items))
	errs := make([]error, len(items))
	var wg sync.WaitGroup
	for i, it := range items {
		wg.Go(func() { vals[i], errs[i] = p.get(ctx, base, tok, it) })
	}
	wg.Wait()
	attrs := map[string]string{sdk.CloudProvider: sdk.ProviderAlibaba, sdk.CloudPlatform: sdk.PlatformAlibabaECS}
	for i, it := range items {
		if errs[i] != nil {
			return nil, errs[i]
		}
		if vals[i] != "" {
			attrs[it.key] = vals[i]
		}
	}
	return attrs, nil
}

func (p *probe) get(ctx context.Context, base *url.URL, tok string, it item) (string, error) {
	r, err := p.tokens.Client.Do(ctx, http.MethodGet, base.String()+it.path, http.Header{tokenHeader: {tok}})
	if err != nil {
		return "", err
	}
	v := strings.TrimSpace(string(r.Body))
	switch {
	case r.Status == http.StatusOK && v == "" && !it.optional:
		return "", fmt.Errorf("GET %s: empty answer", it.path)
	case r.Status == http.StatusOK:
		return v, nil
	case r.Status == http.StatusNotFound && it.optional:
		return "", nil
	case r.Status == http.StatusUnauthorized || r.Status == http.StatusForbidden:
		p.tokens.Invalidate() // fetch a new one next time
	}
	return "", fmt.Errorf("GET %s: %d %s", it.path, r.Status, http.StatusText(r.Status))
}

// New returns the probe that gopatrol-probe-alibaba serves; version is the
// one Info reports (the build's).
func New(version string) sdk.Probe {
	p := newProbe()
	p.version = version
	return p
}
