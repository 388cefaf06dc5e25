package main_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gopatrol/gopatrol/agent/check"
	"github.com/gopatrol/gopatrol/plugins/host"
	"github.com/gopatrol/gopatrol/plugins/probetest"
	"github.com/gopatrol/gopatrol/plugins/sdk"
)

// built holds this binary under every built-in name (hard links to one
// file, as make build installs it) and under a name it does not know.
var built string

func TestMain(m *testing.M) {
	probetest.InNetns()
	names := probetest.Builtins()
	names["nosuch"] = probetest.Builtin
	probetest.Main(m, names, &built)
}

// Two names of the one binary, laid out as make build lays them out, each
// answer as its own probe through the plugin host: verified against the
// manifest (the same sum twice), started, and off-cloud "not this cloud".
func TestTwoNamesOneFile(t *testing.T) {
	dir := probetest.Dir(t, built, "aws", "gcp")
	a, err := os.Stat(filepath.Join(dir, host.Prefix+"aws"))
	if err != nil {
		t.Fatal(err)
	}
	g, err := os.Stat(filepath.Join(dir, host.Prefix+"gcp"))
	if err != nil {
		t.Fatal(err)
	}
	if !os.SameFile(a, g) {
		t.Fatalf("%s and %s are two files, want two names of one", host.Prefix+"aws", host.Prefix+"gcp")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	h, err := host.Open(ctx, host.Config{Dir: dir, Env: probetest.OffCloud(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	if n := len(h.Plugins()); n != 2 {
		t.Fatalf("%d plugins, want aws and gcp", n)
	}
	for _, p := range h.Plugins() {
		info, err := p.Info()
		if err != nil {
			t.Fatalf("plugin %s did not start: %v", p.Name, err)
		}
		if info.Name != p.Name {
			t.Errorf("%s%s serves the probe %q", host.Prefix, p.Name, info.Name)
		}
		if r := p.Detect(ctx); r.Status != sdk.NotThisCloud {
			t.Errorf("%s: status %s (%s), want %s off-cloud", p.Name, r.Status, r.Reason, sdk.NotThisCloud)
		}
	}
}

// Under a name it does not serve, the binary exits 2 with nothing on
// stdout (the host's handshake line) and a message that names what it was
// called and every name it answers to.
func TestUnknownNameExit2(t *testing.T) {
	bare := filepath.Join(t.TempDir(), "gopatrol-probes")
	if err := os.Link(filepath.Join(built, host.Prefix+"nosuch"), bare); err != nil {
		t.Fatal(err)
	}
	tests := []struct{ name, path string }{
		{host.Prefix + "nosuch", filepath.Join(built, host.Prefix+"nosuch")},
		{"gopatrol-probes", bare},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := run(t, tt.path)
			if code != 2 {
				t.Errorf("exit %d, want 2; stderr: %s", code, stderr)
			}
			if stdout != "" {
				t.Errorf("stdout %q, want nothing: it belongs to the plugin handshake", stdout)
			}
			want := []string{`started as "` + tt.name + `"`}
			for _, n := range probetest.BuiltinNames {
				want = append(want, host.Prefix+n)
			}
			for _, w := range want {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr %q does not say %q", stderr, w)
				}
			}
		})
	}
}

// run starts path as the host would (go-plugin's magic cookie set, so
// that only the name decides), within a deadline, its process group
// killed at the end and its output capped.
func run(t *testing.T, path string) (code int, stdout, stderr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, path)
	cmd.Env = append(os.Environ(), sdk.Handshake.MagicCookieKey+"="+sdk.Handshake.MagicCookieValue)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	out, errOut := &check.CappedWriter{Max: 64 << 10}, &check.CappedWriter{Max: 64 << 10}
	cmd.Stdout, cmd.Stderr = out, errOut
	err := cmd.Run()
	if cmd.Process != nil {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	if _, ok := err.(*exec.ExitError); err != nil && !ok {
		t.Fatalf("%s: %v", path, err)
	}
	return cmd.ProcessState.ExitCode(), string(out.Bytes()), string(errOut.Bytes())
}
