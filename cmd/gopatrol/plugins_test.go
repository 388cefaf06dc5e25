package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// examplePluginDir builds plugins/example into a fresh plugin directory
// with its manifest, as `make build` lays out bin/plugins.
func examplePluginDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	os.Chmod(dir, 0o755)
	bin := filepath.Join(dir, "gopatrol-probe-example")
	if out, err := exec.Command("go", "build", "-o", bin, "../../plugins/example").CombinedOutput(); err != nil {
		t.Fatalf("go build plugins/example: %v\n%s", err, out)
	}
	out, err := exec.Command("sh", "-c", "cd "+dir+" && sha256sum gopatrol-probe-* > SHA256SUMS").CombinedOutput()
	if err != nil {
		t.Fatalf("sha256sum: %v\n%s", err, out)
	}
	return dir
}

func TestPluginsListAndDetect(t *testing.T) {
	dir := examplePluginDir(t)
	identity := filepath.Join(t.TempDir(), "identity.json")
	os.WriteFile(identity, []byte(`{"region": "north-1", "zone": "north-1b", "instance": "vm-42"}`), 0o644)
	env := []string{"EXAMPLE_CLOUD_IDENTITY_FILE=" + identity}

	out, errOut, code := gopatrol(t, env, "plugins", "list", "--plugin-dir", dir)
	if code != 0 || !strings.Contains(out, "example") || !strings.Contains(out, "yes") || !strings.Contains(out, "v0.1.0") {
		t.Fatalf("plugins list: exit %d\n%s%s", code, out, errOut)
	}

	out, errOut, code = gopatrol(t, env, "plugins", "detect", "--plugin-dir", dir, "-o", "json")
	if code != 0 {
		t.Fatalf("plugins detect: exit %d\n%s%s", code, out, errOut)
	}
	var r struct {
		Schema     string            `json:"schema"`
		Attributes map[string]string `json:"attributes"`
		Sources    map[string]string `json:"sources"`
		Results    []struct {
			Plugin, Status string
			DurationMS     float64 `json:"duration_ms"`
		} `json:"results"`
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("detect -o json: %v\n%s", err, out)
	}
	if r.Schema != "gopatrol.plugins.detect/v1" || r.Attributes["cloud.region"] != "north-1" || r.Sources["cloud.region"] != "example" ||
		len(r.Results) != 1 || r.Results[0].Status != "detected" || r.Results[0].DurationMS <= 0 {
		t.Fatalf("detect -o json = %+v", r)
	}

	out, _, code = gopatrol(t, env, "plugins", "detect", "--plugin-dir", dir)
	if code != 0 || !strings.Contains(out, "cloud.region") || !strings.Contains(out, "north-1") || !strings.Contains(out, "(example)") {
		t.Fatalf("detect text: exit %d\n%s", code, out)
	}
}

func TestPluginsRefusedAndBadInput(t *testing.T) {
	dir := examplePluginDir(t)
	f, err := os.OpenFile(filepath.Join(dir, "gopatrol-probe-example"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte("tampered"))
	f.Close()

	out, _, code := gopatrol(t, nil, "plugins", "list", "--plugin-dir", dir)
	if code != 1 || !strings.Contains(out, "the manifest says") {
		t.Fatalf("list with a tampered plugin: exit %d, want 1 and the refusal\n%s", code, out)
	}
	out, _, code = gopatrol(t, nil, "plugins", "detect", "--plugin-dir", dir)
	if code != 1 || !strings.Contains(out, "refused") {
		t.Fatalf("detect with a tampered plugin: exit %d, want 1\n%s", code, out)
	}

	missing := filepath.Join(t.TempDir(), "nope")
	_, errOut, code := gopatrol(t, nil, "plugins", "detect", "--plugin-dir", missing)
	if code != 2 || !strings.Contains(errOut, missing) {
		t.Fatalf("missing plugin dir: exit %d, want 2 naming %s\n%s", code, missing, errOut)
	}
	_, errOut, code = gopatrol(t, nil, "plugins", "list", "--plugin-dir", dir, "-o", "yaml")
	if code != 2 || !strings.Contains(errOut, `"yaml"`) {
		t.Fatalf("-o yaml: exit %d, want 2\n%s", code, errOut)
	}
}
