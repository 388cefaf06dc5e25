package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/gopatrol/gopatrol/plugins/host"
)

// TestThroughHost builds the plugin for real, installs it in a plugin
// directory with a manifest, and runs it through gopatrol's host: the
// handshake, AutoMTLS, gRPC and the verdicts, as in production.
func TestThroughHost(t *testing.T) {
	dir := t.TempDir()
	os.Chmod(dir, 0o755) // the host refuses directories others can write
	bin := filepath.Join(dir, host.Prefix+"example")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	if err := host.WriteManifest(dir); err != nil {
		t.Fatal(err)
	}

	identity := filepath.Join(t.TempDir(), "identity.json")
	h, err := host.Open(host.Config{Dir: dir, Env: []string{identityEnv + "=" + identity}})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	p := h.Plugins()[0]
	if info, err := p.Info(); err != nil || info.Name != "example" {
		t.Fatalf("Info() = %+v, %v; want the example probe", info, err)
	}

	tests := []struct {
		name, file, status, attr string
	}{
		{"not this cloud", "", "not_this_cloud", ""},
		{"detected", `{"region": "north-1", "zone": "north-1b", "instance": "vm-42"}`, "detected", "north-1"},
		{"broken metadata", `{"zone": "north-1b"}`, "error", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			os.Remove(identity)
			if tt.file != "" {
				os.WriteFile(identity, []byte(tt.file), 0o644)
			}
			r := p.Detect(context.Background())
			if r.Status != tt.status || r.Attributes["cloud.region"] != tt.attr {
				t.Fatalf("Detect = %+v; want %s with cloud.region %q", r, tt.status, tt.attr)
			}
		})
	}
}
