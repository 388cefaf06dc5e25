package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/gopatrol/gopatrol/plugins/sdk"
)

// identityEnv overrides the identity file: tests and other machines.
const identityEnv = "EXAMPLE_CLOUD_IDENTITY_FILE"

const defaultIdentity = "/etc/example-cloud/identity.json"

// version is set at build time: -ldflags "-X main.version=v1.2.3".
var version = "v0.1.0"

type probe struct{}

// Info is asked once per start; AttributeKeys documents what Detect sets.
func (probe) Info() sdk.Info {
	return sdk.Info{
		Name:          "example",
		Version:       version,
		Description:   "Example Cloud, from its identity file",
		AttributeKeys: []string{sdk.CloudProvider, sdk.CloudRegion, sdk.CloudAvailabilityZone, sdk.HostID},
	}
}

// Detect has three outcomes: attributes; "not this cloud" (wrap
// sdk.ErrNotThisCloud, answer fast); or an error when the cloud is there
// but its metadata is broken.
func (probe) Detect(ctx context.Context) (map[string]string, error) {
	path := os.Getenv(identityEnv)
	if path == "" {
		path = defaultIdentity
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, sdk.NotThisCloudf("%s does not exist", path)
	}
	if err != nil {
		return nil, err
	}
	var id struct {
		Region, Zone, Instance string
	}
	if err := json.Unmarshal(b, &id); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if id.Region == "" || id.Instance == "" {
		return nil, fmt.Errorf("%s: region or instance missing", path)
	}
	return map[string]string{
		sdk.CloudProvider:         "example_cloud",
		sdk.CloudRegion:           id.Region,
		sdk.CloudAvailabilityZone: id.Zone,
		sdk.HostID:                id.Instance,
	}, nil
}

func main() {
	// Nothing may be printed to stdout before or after: it carries the
	// handshake. Log with sdk.Logger (hclog JSON on stderr).
	sdk.Serve(probe{})
}
