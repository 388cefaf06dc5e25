package sdk_test

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/gopatrol/gopatrol/plugins/sdk"
)

// regionFile is a complete probe: its "cloud" is a file naming the region.
// A real probe asks a metadata service (plugins/sdk/metadata).
type regionFile struct{ path string }

// Info names the probe; the host asks once per start.
func (p regionFile) Info() sdk.Info {
	return sdk.Info{Name: "regionfile", Version: "v0.1.0", Description: "the region from a file",
		AttributeKeys: []string{sdk.CloudProvider, sdk.CloudRegion}}
}

// Detect has three outcomes: attributes, "not this cloud" (fast), or an
// error when the cloud is there but its metadata is broken.
func (p regionFile) Detect(ctx context.Context) (map[string]string, error) {
	b, err := os.ReadFile(p.path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, sdk.NotThisCloudf("%s does not exist", p.path)
	}
	if err != nil {
		return nil, err
	}
	region := strings.TrimSpace(string(b))
	if region == "" {
		return nil, fmt.Errorf("%s: no region in it", p.path)
	}
	return map[string]string{sdk.CloudProvider: "region_file", sdk.CloudRegion: region}, nil
}

// main is the whole main function of a plugin, built as
// gopatrol-probe-regionfile: Serve does the go-plugin handshake on stdout
// and serves the probe to the host until the host closes it. Print nothing
// to stdout, before or after.
func main() {
	sdk.Serve(regionFile{path: "/etc/region-file/region"})
}

// Serve blocks while it serves the host, so this example runs the probe it
// would serve (see main) through its three outcomes, as the host reports
// them. plugins/example's test builds a real plugin binary and runs it
// through the host.
func ExampleServe() {
	dir, err := os.MkdirTemp("", "regionfile")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)
	p := regionFile{path: filepath.Join(dir, "region")}
	verdict := func() {
		attrs, err := p.Detect(context.Background())
		switch {
		case errors.Is(err, sdk.ErrNotThisCloud):
			fmt.Println(sdk.NotThisCloud)
		case err != nil:
			fmt.Println(sdk.Failed)
		default:
			fmt.Println(sdk.Detected, attrs[sdk.CloudRegion])
		}
	}
	verdict()
	os.WriteFile(p.path, nil, 0o644)
	verdict()
	os.WriteFile(p.path, []byte("moon-1\n"), 0o644)
	verdict()
	// Output:
	// not_this_cloud
	// error
	// detected moon-1
}
