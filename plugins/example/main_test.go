package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gopatrol/gopatrol/plugins/host"
	"github.com/gopatrol/gopatrol/plugins/probetest"
	"github.com/gopatrol/gopatrol/plugins/sdk"
)

// built holds gopatrol-probe-example, compiled once.
var built string

func TestMain(m *testing.M) {
	probetest.Main(m, map[string]string{"example": "github.com/gopatrol/gopatrol/plugins/example"}, &built)
}

// TestThroughHost runs the built plugin from a plugin directory with a
// manifest through gopatrol's host: the handshake, AutoMTLS, gRPC and the
// verdicts, as in production.
func TestThroughHost(t *testing.T) {
	dir := probetest.Dir(t, built, "example")
	identity := filepath.Join(t.TempDir(), "identity.json")
	h, err := host.Open(context.Background(), host.Config{Dir: dir, Env: []string{identityEnv + "=" + identity}})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	p := h.Plugins()[0]
	if info, err := p.Info(); err != nil || info.Name != "example" {
		t.Fatalf("Info() = %+v, %v; want the example probe", info, err)
	}

	tests := []struct {
		name, file string
		status     sdk.Status
		region     string
	}{
		{"not this cloud", "", sdk.NotThisCloud, ""},
		{"detected", `{"region": "north-1", "zone": "north-1b", "instance": "vm-42"}`, sdk.Detected, "north-1"},
		{"broken metadata", `{"zone": "north-1b"}`, sdk.Failed, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			os.Remove(identity)
			if tt.file != "" {
				if err := os.WriteFile(identity, []byte(tt.file), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			r := p.Detect(context.Background())
			if r.Status != tt.status || r.Attributes[sdk.CloudRegion] != tt.region {
				t.Fatalf("Detect = %+v; want %s with cloud.region %q", r, tt.status, tt.region)
			}
		})
	}
}

// TestCollectThroughHost asks the built plugin for its points through the
// host: a count read from the file, its unit and attributes on the wire;
// a missing file fails the collection and leaves Detect working.
func TestCollectThroughHost(t *testing.T) {
	dir := probetest.Dir(t, built, "example")
	tmp := t.TempDir()
	identity, drops := filepath.Join(tmp, "identity.json"), filepath.Join(tmp, "drops")
	if err := os.WriteFile(identity, []byte(`{"region": "north-1", "instance": "vm-42"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	h, err := host.Open(context.Background(), host.Config{Dir: dir, Env: []string{identityEnv + "=" + identity, dropsEnv + "=" + drops}})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	p := h.Plugins()[0]
	if _, err := p.Collect(context.Background()); err == nil || !strings.Contains(err.Error(), drops) {
		t.Fatalf("Collect without the file: %v, want an error naming %s", err, drops)
	}
	if r := p.Detect(context.Background()); r.Status != sdk.Detected {
		t.Fatalf("Detect after a failed Collect = %+v", r)
	}
	if err := os.WriteFile(drops, []byte("17\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	pts, err := p.Collect(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(pts) != 1 || pts[0].Value != 17 || pts[0].Unit != "{packet}" || pts[0].Name != "gopatrol.cloud.network.allowance_exceeded" || pts[0].Attributes["gopatrol.cloud.allowance"] != "pps" {
		t.Fatalf("points %+v", pts)
	}
}
