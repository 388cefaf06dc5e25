package image

import (
	"bufio"
	"bytes"
	"context"
	"debug/elf"
	"encoding/json"
	"github.com/gopatrol/gopatrol/internal/testgate"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

const root = "../.."

// copySources returns the Dockerfile's COPY --from=build lines as source
// (under the build stage's /out) → destination.
func copySources(t *testing.T) map[string]string {
	t.Helper()
	f, err := os.Open(filepath.Join(root, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 3 || fields[0] != "COPY" || !strings.HasPrefix(fields[1], "--from=build") {
			continue
		}
		src, dst := fields[len(fields)-2], fields[len(fields)-1]
		if rel, ok := strings.CutPrefix(src, "/out/"); ok {
			m[rel] = dst
		}
	}
	if len(m) == 0 {
		t.Fatal("the Dockerfile copies nothing from /out of the build stage")
	}
	return m
}

func run(t *testing.T, dir string, name string, args ...string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		b := out.Bytes()
		if len(b) > 8000 {
			b = b[len(b)-8000:]
		}
		t.Fatalf("%s %v: %v\n%s", name, args, err, b)
	}
	return out.Bytes()
}

// static fails unless path is an ELF executable with no interpreter and no
// shared library.
func static(t *testing.T, path string) {
	t.Helper()
	f, err := elf.Open(path)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Errorf("%s has an ELF interpreter: not static, the image has no libc", path)
		}
	}
	if libs, _ := f.ImportedLibraries(); len(libs) > 0 {
		t.Errorf("%s needs %v: not static", path, libs)
	}
}

func TestMakeBuildHoldsTheImage(t *testing.T) {
	testgate.Tool(t, "make", "make")
	out := t.TempDir()
	run(t, root, "make", "build", "BIN="+out, "VERSION=image-test")

	// Every file the Dockerfile copies exists.
	srcs := copySources(t)
	pluginDst := ""
	for src, dst := range srcs {
		if _, err := os.Stat(filepath.Join(out, src)); err != nil {
			t.Errorf("the Dockerfile copies /out/%s, make build did not make it: %v", src, err)
		}
		if strings.HasPrefix(src, "plugins") {
			pluginDst = strings.TrimSuffix(dst, "/")
		}
	}
	static(t, filepath.Join(out, "gopatrol"))

	plugins := filepath.Join(out, "plugins")
	fi, err := os.Stat(plugins)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm()&0o022 != 0 {
		t.Errorf("plugin dir mode %v: writable by group or others", fi.Mode())
	}
	names, _ := filepath.Glob(filepath.Join(plugins, "gopatrol-probe-*"))
	if len(names) == 0 {
		t.Fatal("no gopatrol-probe-* plugin built")
	}
	for _, n := range names {
		static(t, n)
	}
	// The built-in probes are one file under five names (hard links), so
	// that their processes share its pages (docs/benchmarks.md, #11).
	if len(names) != 5 {
		t.Errorf("%d gopatrol-probe-* built, want the five built-in probes: %v", len(names), names)
	}
	first, err := os.Stat(names[0])
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range names[1:] {
		if fi, err := os.Stat(n); err != nil || !os.SameFile(first, fi) {
			t.Errorf("%s is not a hard link to %s (%v): the probes would not share their binary's pages", n, names[0], err)
		}
	}
	// The plugin host's own verification: every plugin in SHA256SUMS,
	// hashes right, nothing writable.
	b := run(t, out, filepath.Join(out, "gopatrol"), "plugins", "list", "--plugin-dir", plugins, "-o", "json")
	var listed any
	if err := json.Unmarshal(b, &listed); err != nil {
		t.Fatalf("plugins list -o json: %v\n%s", err, b)
	}
	for _, n := range names {
		if !bytes.Contains(b, []byte(filepath.Base(n))) {
			t.Errorf("plugins list does not show %s:\n%s", filepath.Base(n), b)
		}
	}
	if bytes.Contains(b, []byte(`"refused"`)) || bytes.Contains(b, []byte(`"verified": false`)) {
		t.Errorf("a plugin is refused:\n%s", b)
	}

	// The DaemonSet's config looks where the image puts the plugins.
	cfgText, err := os.ReadFile(filepath.Join(root, "deploy/kubernetes/base/agent.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		Plugins struct {
			Dir string `yaml:"dir"`
		} `yaml:"plugins"`
	}
	if err := yaml.Unmarshal(cfgText, &cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.Plugins.Dir != pluginDst {
		t.Errorf("DaemonSet config plugins.dir %q, the image puts them at %q", cfg.Plugins.Dir, pluginDst)
	}
}
