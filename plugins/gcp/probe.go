package gcp

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"

	"github.com/gopatrol/gopatrol/plugins/sdk"
	"github.com/gopatrol/gopatrol/plugins/sdk/metadata"
)

const (
	// hostEnv is the Google client libraries' own override: host[:port].
	hostEnv = "GCE_METADATA_HOST"
	// The IP, not metadata.google.internal: off GCP a DNS lookup of that
	// name can take seconds, the dial to the IP fails at once.
	defaultHost = "169.254.169.254"
	prefix      = "/computeMetadata/v1/"
)

type item struct {
	path     string
	optional bool
}

var (
	project     = item{"project/project-id", false}
	zone        = item{"instance/zone", false}
	instanceID  = item{"instance/id", false}
	machineType = item{"instance/machine-type", true}
	clusterName = item{"instance/attributes/cluster-name", true} // GKE only
	items       = []item{project, zone, instanceID, machineType, clusterName}
)

type probe struct {
	md      *metadata.Client
	version string // what Info reports: the build's
}

func (p *probe) Info() sdk.Info {
	return sdk.Info{Name: "gcp", Version: p.version,
		Description: "Google Compute Engine and GKE through the metadata server",
		AttributeKeys: []string{sdk.CloudProvider, sdk.CloudPlatform, sdk.CloudRegion, sdk.CloudAvailabilityZone,
			sdk.CloudAccountID, sdk.HostID, sdk.HostType, sdk.K8sClusterName}}
}

func (p *probe) Detect(ctx context.Context) (map[string]string, error) {
	base, err := metadata.Endpoint(hostEnv, defaultHost)
	if err != nil {
		return nil, err
	}
	vals := make(map[item]string, len(items))
	errs := make([]error, len(items))
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i, it := range items {
		wg.Go(func() {
			v, err := p.get(ctx, base, it)
			mu.Lock()
			vals[it], errs[i] = v, err
			mu.Unlock()
		})
	}
	wg.Wait()
	// "Not this cloud" from any request wins over other errors: it says
	// the server is not Google's.
	for _, err := range errs {
		if errors.Is(err, sdk.ErrNotThisCloud) {
			return nil, err
		}
	}
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	// instance/zone is projects/NUMBER/zones/us-central1-a; a GCE region
	// is the zone without its last dash-separated part.
	z := lastSegment(vals[zone])
	i := strings.LastIndexByte(z, '-')
	if i <= 0 {
		return nil, fmt.Errorf("GET %s%s: %q is not a zone name", prefix, zone.path, vals[zone])
	}
	attrs := map[string]string{
		sdk.CloudProvider:         sdk.ProviderGCP,
		sdk.CloudPlatform:         sdk.PlatformGCPComputeEngine,
		sdk.CloudAccountID:        vals[project],
		sdk.CloudAvailabilityZone: z,
		sdk.CloudRegion:           z[:i],
		sdk.HostID:                vals[instanceID],
	}
	if mt := lastSegment(vals[machineType]); mt != "" {
		attrs[sdk.HostType] = mt
	}
	if c := vals[clusterName]; c != "" {
		attrs[sdk.CloudPlatform] = sdk.PlatformGCPKubernetesEngine
		attrs[sdk.K8sClusterName] = c
	}
	return attrs, nil
}

func lastSegment(s string) string { return s[strings.LastIndexByte(s, '/')+1:] }

func (p *probe) get(ctx context.Context, base *url.URL, it item) (string, error) {
	r, err := p.md.Do(ctx, http.MethodGet, base.String()+prefix+it.path, http.Header{"Metadata-Flavor": {"Google"}})
	if err != nil {
		return "", err
	}
	// Every answer of Google's metadata server, errors included, carries
	// the flavor header; another cloud's service does not.
	if r.Header.Get("Metadata-Flavor") != "Google" {
		return "", sdk.NotThisCloudf("%s answered without Metadata-Flavor: Google: not GCE's metadata server", base.Host)
	}
	v := strings.TrimSpace(string(r.Body))
	switch {
	case r.Status == http.StatusOK && v == "" && !it.optional:
		return "", fmt.Errorf("GET %s%s: empty answer", prefix, it.path)
	case r.Status == http.StatusOK:
		return v, nil
	case r.Status == http.StatusNotFound && it.optional:
		return "", nil
	}
	return "", fmt.Errorf("GET %s%s: %d %s", prefix, it.path, r.Status, http.StatusText(r.Status))
}

// New returns the probe that gopatrol-probe-gcp serves; version is the
// one Info reports (the build's).
func New(version string) sdk.Probe {
	return &probe{md: metadata.New(nil), version: version}
}
