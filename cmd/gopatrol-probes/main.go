package main

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/gopatrol/gopatrol/plugins/alibaba"
	"github.com/gopatrol/gopatrol/plugins/aws"
	"github.com/gopatrol/gopatrol/plugins/azure"
	"github.com/gopatrol/gopatrol/plugins/gcp"
	"github.com/gopatrol/gopatrol/plugins/openshift"
	"github.com/gopatrol/gopatrol/plugins/sdk"
)

// version is what every probe's Info reports; make build sets it with
// -ldflags '-X main.version=...'.
var version = "v1.0.0"

// prefix starts every plugin's file name (plugins/host.Prefix, not
// imported: the host's packages have no business in the probes' binary).
const prefix = "gopatrol-probe-"

// probes are the built-in probes by the name that follows prefix.
var probes = map[string]func(version string) sdk.Probe{
	"aws":       aws.New,
	"alibaba":   alibaba.New,
	"gcp":       gcp.New,
	"azure":     azure.New,
	"openshift": openshift.New,
}

func main() {
	p, err := pick(os.Args[0])
	if err != nil {
		// stderr only: stdout belongs to go-plugin's handshake, and the
		// host shows a plugin's last stderr lines when it exits early.
		fmt.Fprintln(os.Stderr, "gopatrol-probes:", err)
		os.Exit(2)
	}
	sdk.Serve(p)
}

// pick chooses the probe from the name the binary was started under.
func pick(arg0 string) (sdk.Probe, error) {
	base := filepath.Base(arg0)
	name, ok := strings.CutPrefix(base, prefix)
	newProbe := probes[name]
	if !ok || newProbe == nil {
		names := make([]string, 0, len(probes))
		for n := range probes {
			names = append(names, prefix+n)
		}
		slices.Sort(names)
		return nil, fmt.Errorf("started as %q, which names no built-in probe: install this file under one of the names %s (hard links in the plugin directory, each listed in its SHA256SUMS)",
			base, strings.Join(names, ", "))
	}
	return newProbe(version), nil
}
