package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gopatrol/gopatrol/agent/preflight"
	"github.com/gopatrol/gopatrol/internal/testgate"
)

// TestPreflightDroppedCaps runs the real binary under setpriv with a
// bounding set that holds only the listed capabilities: what preflight
// reports is what the kernel gave the process, not an injected mask.
func TestPreflightDroppedCaps(t *testing.T) {
	testgate.Root(t, "drop capabilities with setpriv")
	setpriv := testgate.Tool(t, "setpriv", "util-linux")
	for _, tt := range []struct {
		name    string
		caps    string
		extra   []string
		code    int
		missing []string
	}{
		{"the DaemonSet's set", "+bpf,+perfmon,+sys_chroot", nil, 0, nil},
		{"without CAP_BPF", "+perfmon,+sys_chroot", nil, 0, []string{"CAP_BPF"}},
		{"without CAP_BPF, sensors required", "+perfmon,+sys_chroot", []string{"--require-sensors"}, 1, []string{"CAP_BPF"}},
		{"nothing", "", nil, 1, []string{"CAP_BPF", "CAP_PERFMON", "CAP_SYS_CHROOT"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			state := t.TempDir()
			// A host root other than / is what needs CAP_SYS_CHROOT.
			host := t.TempDir()
			for _, d := range []string{"etc", "usr"} {
				if err := os.Mkdir(filepath.Join(host, d), 0o755); err != nil {
					t.Fatal(err)
				}
			}
			args := append([]string{"--bounding-set=-all" + prefixComma(tt.caps), "--", gopatrolBin,
				"preflight", "-o", "json", "--host-root", host, "--state-dir", state}, tt.extra...)
			out, stderr, code := runTool(t, setpriv, args...)
			if code != tt.code {
				t.Fatalf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tt.code, out, stderr)
			}
			var r preflight.Report
			if err := json.Unmarshal([]byte(out), &r); err != nil {
				t.Fatalf("-o json: %v\n%s", err, out)
			}
			var got []string
			for _, it := range r.Missing() {
				if strings.HasPrefix(it.Name, "CAP_") {
					got = append(got, it.Name)
				}
			}
			if strings.Join(got, ",") != strings.Join(tt.missing, ",") {
				t.Errorf("missing capabilities %v, want %v", got, tt.missing)
			}
		})
	}
}

func prefixComma(s string) string {
	if s == "" {
		return ""
	}
	return "," + s
}

func TestPreflightTextNamesCost(t *testing.T) {
	testgate.Root(t, "drop capabilities with setpriv")
	setpriv := testgate.Tool(t, "setpriv", "util-linux")
	out, stderr, code := runTool(t, setpriv, "--bounding-set=-all,+perfmon", "--", gopatrolBin, "preflight", "--state-dir", t.TempDir())
	if code != 0 {
		t.Fatalf("exit %d, want 0 (degraded)\n%s\n%s", code, out, stderr)
	}
	for _, want := range []string{"missing  CAP_BPF", "fix: grant CAP_BPF", "cost: eBPF sensors off", "preflight: degraded"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

func TestPreflightBadConfig(t *testing.T) {
	_, stderr, code := gopatrol(t, nil, "preflight", "--state-dir", "relative")
	if code != 2 || !strings.Contains(stderr, "state_dir") {
		t.Errorf("exit %d, stderr %q; want 2 naming state_dir", code, stderr)
	}
}

// runTool runs name with a deadline, in its own process group (killed at
// the end), and returns stdout, stderr and the exit code.
func runTool(t *testing.T, name string, args ...string) (string, string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		return stdout.String(), stderr.String(), ee.ExitCode()
	case err != nil:
		t.Fatal(err)
	}
	return stdout.String(), stderr.String(), 0
}
