package azure

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	"github.com/gopatrol/gopatrol/plugins/sdk"
	"github.com/gopatrol/gopatrol/plugins/sdk/metadata"
)

const (
	endpointEnv = "GOPATROL_AZURE_IMDS_ENDPOINT"
	defaultURL  = "http://169.254.169.254"
	// A pinned api-version: IMDS answers the schema of the version asked.
	instancePath = "/metadata/instance?api-version=2021-02-01"
)

type probe struct {
	md      *metadata.Client
	version string // what Info reports: the build's
}

func (p *probe) Info() sdk.Info {
	return sdk.Info{Name: "azure", Version: p.version,
		Description: "Azure virtual machines through IMDS",
		AttributeKeys: []string{sdk.CloudProvider, sdk.CloudPlatform, sdk.CloudRegion, sdk.CloudAvailabilityZone,
			sdk.CloudAccountID, sdk.CloudResourceID, sdk.HostID, sdk.HostType}}
}

type instance struct {
	Compute struct {
		Location       string `json:"location"`
		Zone           string `json:"zone"`
		SubscriptionID string `json:"subscriptionId"`
		VMID           string `json:"vmId"`
		VMSize         string `json:"vmSize"`
		ResourceID     string `json:"resourceId"`
	} `json:"compute"`
}

// imdsError is the body IMDS sends with its 4xx answers.
type imdsError struct {
	Error string `json:"error"`
}

func (p *probe) Detect(ctx context.Context) (map[string]string, error) {
	base, err := metadata.Endpoint(endpointEnv, defaultURL)
	if err != nil {
		return nil, err
	}
	r, err := p.md.Do(ctx, http.MethodGet, base.String()+instancePath, http.Header{"Metadata": {"true"}})
	if err != nil {
		return nil, err
	}
	if r.Status != http.StatusOK {
		// IMDS explains its refusals in JSON ({"error": "..."}); another
		// cloud's service at the same link-local address (EC2 answers
		// 401 or 404) does not.
		var e imdsError
		if json.Unmarshal(r.Body, &e) == nil && e.Error != "" {
			return nil, fmt.Errorf("GET %s: %d: %s", instancePath, r.Status, e.Error)
		}
		return nil, sdk.NotThisCloudf("GET %s answered %d without an IMDS error: not Azure", instancePath, r.Status)
	}
	var in instance
	if err := json.Unmarshal(r.Body, &in); err != nil {
		return nil, fmt.Errorf("GET %s: not JSON: %w", instancePath, err)
	}
	c := in.Compute
	if strings.TrimSpace(c.VMID) == "" || strings.TrimSpace(c.Location) == "" {
		return nil, fmt.Errorf("GET %s: compute.vmId or compute.location missing", instancePath)
	}
	attrs := map[string]string{
		sdk.CloudProvider: sdk.ProviderAzure,
		sdk.CloudPlatform: sdk.PlatformAzureVM,
		sdk.CloudRegion:   c.Location,
		sdk.HostID:        c.VMID,
	}
	for k, v := range map[string]string{
		sdk.CloudAvailabilityZone: c.Zone, // empty outside availability zones
		sdk.CloudAccountID:        c.SubscriptionID,
		sdk.HostType:              c.VMSize,
		sdk.CloudResourceID:       c.ResourceID,
	} {
		if v != "" {
			attrs[k] = v
		}
	}
	return attrs, nil
}

// New returns the probe that gopatrol-probe-azure serves; version is the
// one Info reports (the build's).
func New(version string) sdk.Probe {
	return &probe{md: metadata.New(nil), version: version}
}
