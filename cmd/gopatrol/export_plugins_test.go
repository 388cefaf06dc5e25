package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gopatrol/gopatrol/metricdef"
	"github.com/gopatrol/gopatrol/otelcfg/otlptest"
	"github.com/gopatrol/gopatrol/plugins/host"
)

// examplePluginExport puts the example plugin, built for real, in dir with
// dir's manifest (after any plugin already there), and returns a running
// OTLP receiver and the environment that exports to it with the example
// cloud's identity (region moon-1).
func examplePluginExport(t *testing.T, dir string) (*otlptest.Receiver, []string) {
	t.Helper()
	if out, err := exec.Command("go", "build", "-o", filepath.Join(dir, "gopatrol-probe-example"), "../../plugins/example").CombinedOutput(); err != nil {
		t.Fatalf("build the example plugin: %v\n%s", err, out)
	}
	if err := host.WriteManifest(dir); err != nil {
		t.Fatal(err)
	}
	identity := filepath.Join(t.TempDir(), "identity.json")
	os.WriteFile(identity, []byte(`{"Region": "moon-1", "Zone": "moon-1a", "Instance": "i-42"}`), 0o644)
	recv := otlptest.Start(t, otlptest.Options{})
	return recv, []string{"OTEL_EXPORTER_OTLP_PROTOCOL=grpc", "OTEL_EXPORTER_OTLP_ENDPOINT=" + recv.GRPCEndpoint,
		"EXAMPLE_CLOUD_IDENTITY_FILE=" + identity}
}

// The probe plugins' answer becomes the exported resource: a real plugin
// binary, verified against its manifest, run by the real CLI, received by a
// real OTLP receiver.
func TestCheckExportCloudFromPlugins(t *testing.T) {
	dir := t.TempDir()
	recv, env := examplePluginExport(t, dir)
	_, stderr, code := gopatrol(t, env, "check", "--export", "--plugin-dir", dir, "--only", "go.binary")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	res, _ := otlptest.Resource(recv.Wait(t, 1, 5*time.Second))
	for k, want := range map[string]string{"cloud.provider": "example_cloud", "cloud.region": "moon-1", "cloud.availability_zone": "moon-1a"} {
		if res[k] != want {
			t.Errorf("resource %s = %q, want %q (resource %v)", k, res[k], want, res)
		}
	}

	// A plugin whose binary no longer matches the manifest is refused: the
	// export goes on without its attributes, and says why on stderr.
	os.WriteFile(filepath.Join(dir, "SHA256SUMS"), []byte("0000000000000000000000000000000000000000000000000000000000000000  gopatrol-probe-example\n"), 0o644)
	_, stderr, code = gopatrol(t, env, "check", "--export", "--plugin-dir", dir, "--only", "go.binary")
	if code != 0 || !strings.Contains(stderr, "sha256 differs from the manifest") {
		t.Errorf("tampered plugin: exit %d, stderr %q; want 0 and the refusal", code, stderr)
	}
	if res, _ := otlptest.Resource(recv.Wait(t, 2, 5*time.Second)[1:]); res["cloud.provider"] != "" {
		t.Errorf("a refused plugin's attributes were exported: %v", res)
	}
	if _, stderr, code := gopatrol(t, nil, "check", "--plugin-dir", dir, "--only", "go.binary"); code != 2 {
		t.Errorf("--plugin-dir without --export: exit %d, want 2 (%s)", code, stderr)
	}
}

// A probe plugin that cannot start is not silent (issue 15): stderr names
// it, and the export carries gopatrol.probe.up 0 for it beside 1 for the
// plugin that answered.
func TestCheckExportProbeDown(t *testing.T) {
	dir := t.TempDir()
	// A real binary that dies before the go-plugin handshake.
	src := filepath.Join(t.TempDir(), "broken.go")
	os.WriteFile(src, []byte("package main\n\nimport (\n\t\"fmt\"\n\t\"os\"\n)\n\nfunc main() {\n\tfmt.Fprintln(os.Stderr, \"broken probe: no credentials\")\n\tos.Exit(3)\n}\n"), 0o644)
	build := exec.Command("go", "build", "-o", filepath.Join(dir, "gopatrol-probe-broken"), src)
	build.Dir = filepath.Dir(src)
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build the broken plugin: %v\n%s", err, out)
	}
	recv, env := examplePluginExport(t, dir)
	_, stderr, code := gopatrol(t, env, "check", "--export", "--plugin-dir", dir, "--only", "go.binary")
	if code != 0 {
		t.Fatalf("exit %d, want 0 (a probe down is reported, not a check failure): %s", code, stderr)
	}
	if !strings.Contains(stderr, "probe broken is down") || strings.Contains(stderr, "probe example is down") {
		t.Errorf("stderr %q: want the broken probe named as down, and only it", stderr)
	}
	up := map[string]float64{}
	for _, p := range otlptest.Points(recv.Wait(t, 1, 5*time.Second)) {
		if p.Metric == metricdef.SpecProbeUp.Name {
			up[p.Attrs[string(metricdef.AttrProbePlugin)]] = p.Value
		}
	}
	if v, ok := up["broken"]; !ok || v != 0 {
		t.Errorf("gopatrol.probe.up{broken} = %v (present %v), want 0; all %v", v, ok, up)
	}
	if v, ok := up["example"]; !ok || v != 1 {
		t.Errorf("gopatrol.probe.up{example} = %v (present %v), want 1; all %v", v, ok, up)
	}
	if res, _ := otlptest.Resource(recv.Requests()); res["cloud.region"] != "moon-1" {
		t.Errorf("the working probe's attributes are missing: %v", res)
	}
}
