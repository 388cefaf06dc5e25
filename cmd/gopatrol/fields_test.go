package main

import (
	"encoding/json"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// The JSON outputs are contracts that scripts parse: these golden field
// names (not values) must not change when code moves. Each entry lists the
// fields always present, then the ones that may be left out (omitempty).
var goldenFields = map[string]struct{ always, optional []string }{
	"check":           {[]string{"schema", "toolchain", "results", "summary"}, nil},
	"check.toolchain": {[]string{"go", "goroot", "version", "goflags", "gotoolchain"}, []string{"error"}},
	"check.result":    {[]string{"id", "title", "status", "summary", "evidence", "duration_ms", "seed"}, []string{"fix", "remedies", "proved_at"}},
	"check.summary":   {[]string{"pass", "warn", "fail", "skip", "error"}, nil},

	"plugins.detect":         {[]string{"schema", "dir", "attributes", "sources", "results", "duration_ms", "total_ms"}, []string{"refused"}},
	"plugins.detect.result":  {[]string{"plugin", "status", "duration_ms"}, []string{"attributes", "reason"}},
	"plugins.detect.refused": {[]string{"name", "path", "verified"}, []string{"sha256", "version", "description", "error"}},

	"trace.exec":         {[]string{"type", "time", "pid", "tid", "root_pid", "ktime_ns", "ppid", "uid", "cgroup_id", "start_ns", "comm", "filename", "args"}, []string{"args_truncated"}},
	"trace.exit":         {[]string{"type", "time", "pid", "tid", "root_pid", "ktime_ns", "ppid", "uid", "cgroup_id", "start_ns", "duration_ns", "comm", "wait_status"}, nil},
	"trace.file_failure": {[]string{"type", "time", "pid", "tid", "root_pid", "ktime_ns", "errno", "class", "path"}, []string{"syscall"}},
	"trace.stats":        {[]string{"type", "events", "decode_errors", "unknown_events", "drops", "file_failures", "programs"}, nil},
}

// checkFields fails when obj's keys are not the golden fields of what.
func checkFields(t *testing.T, what string, obj map[string]any) {
	t.Helper()
	g, ok := goldenFields[what]
	if !ok {
		t.Fatalf("no golden fields for %s", what)
	}
	for _, k := range g.always {
		if _, ok := obj[k]; !ok {
			t.Errorf("%s: field %q is gone (fields %v)", what, k, slices.Sorted(maps.Keys(obj)))
		}
	}
	for k := range obj {
		if !slices.Contains(g.always, k) && !slices.Contains(g.optional, k) {
			t.Errorf("%s: new field %q: add it to the golden fields if it is meant", what, k)
		}
	}
}

func objects(t *testing.T, what string, v any) []map[string]any {
	t.Helper()
	list, ok := v.([]any)
	if !ok {
		t.Fatalf("%s: %T, want a list", what, v)
	}
	var out []map[string]any
	for _, e := range list {
		m, ok := e.(map[string]any)
		if !ok {
			t.Fatalf("%s: element %T, want an object", what, e)
		}
		out = append(out, m)
	}
	return out
}

// `gopatrol check -o json` over a world where go.binary fails (so a fix is
// printed) and the rest of the default set runs.
func TestCheckJSONFields(t *testing.T) {
	stdout, stderr, code := gopatrol(t, []string{shadowPATH(t)}, "check", "-o", "json", "--only", "go.binary,goroot.valid,env.consistency")
	if code != 1 {
		t.Fatalf("exit %d, want 1 (the shadowing script fails go.binary): %s", code, stderr)
	}
	var rep map[string]any
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
		t.Fatalf("%v\n%s", err, stdout)
	}
	checkFields(t, "check", rep)
	checkFields(t, "check.toolchain", rep["toolchain"].(map[string]any))
	checkFields(t, "check.summary", rep["summary"].(map[string]any))
	results := objects(t, "results", rep["results"])
	sawFix := false
	for _, r := range results {
		checkFields(t, "check.result", r)
		_, fix := r["fix"]
		sawFix = sawFix || fix
	}
	if len(results) != 3 || !sawFix {
		t.Errorf("%d results, a fix printed: %v; want 3 and a fix for go.binary", len(results), sawFix)
	}
}

// `gopatrol plugins detect -o json` with one plugin that answers and one
// refused.
func TestPluginsDetectJSONFields(t *testing.T) {
	dir := examplePluginDir(t)
	// A second plugin the manifest does not list: refused.
	if err := os.WriteFile(filepath.Join(dir, "gopatrol-probe-stray"), []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	identity := filepath.Join(t.TempDir(), "identity.json")
	os.WriteFile(identity, []byte(`{"region": "north-1", "zone": "north-1b", "instance": "vm-42"}`), 0o644)
	stdout, stderr, code := gopatrol(t, []string{"EXAMPLE_CLOUD_IDENTITY_FILE=" + identity}, "plugins", "detect", "--plugin-dir", dir, "-o", "json")
	if code != 1 || !strings.Contains(stdout, "stray") {
		t.Fatalf("exit %d, want 1 with the stray plugin refused: %s%s", code, stdout, stderr)
	}
	var out map[string]any
	if err := json.Unmarshal([]byte(stdout), &out); err != nil {
		t.Fatalf("%v\n%s", err, stdout)
	}
	checkFields(t, "plugins.detect", out)
	for _, r := range objects(t, "results", out["results"]) {
		checkFields(t, "plugins.detect.result", r)
	}
	refused := objects(t, "refused", out["refused"])
	if len(refused) != 1 {
		t.Errorf("refused %v, want the stray plugin", refused)
	}
	for _, r := range refused {
		checkFields(t, "plugins.detect.refused", r)
	}
}
