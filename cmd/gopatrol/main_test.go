package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gopatrol/gopatrol/internal/testgate"
)

// gopatrolBin is the real binary, built once: CLI tests run it as a user
// would, exit codes and all.
var gopatrolBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "gopatrol-cli-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	gopatrolBin = filepath.Join(dir, "gopatrol")
	if out, err := exec.Command("go", "build", "-o", gopatrolBin, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build gopatrol: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// gopatrol runs the binary and returns stdout, stderr and the exit code.
func gopatrol(t *testing.T, env []string, args ...string) (string, string, int) {
	t.Helper()
	// No test waits forever on the binary: the longest run (a slow check
	// interrupted, a probe that hangs) ends well within this.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, gopatrolBin, args...)
	cmd.WaitDelay = 5 * time.Second
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return stdout.String(), stderr.String(), code
}

func TestBadInputExitsTwo(t *testing.T) {
	notDir := filepath.Join(t.TempDir(), "file")
	os.WriteFile(notDir, nil, 0o644)
	tests := []struct {
		args  []string
		names string
	}{
		{[]string{"check", "--only", "no.such-check"}, "no.such-check"},
		{[]string{"check", "--skip", "go.binary,bogus"}, "bogus"},
		{[]string{"check", "--go", "/bin/true"}, "/bin/true"},
		{[]string{"check", "--go", "/no/such/go"}, "/no/such/go"},
		{[]string{"check", "-C", "/no/such/dir"}, "/no/such/dir"},
		{[]string{"check", "-C", notDir}, notDir},
		{[]string{"check", "--as-user", "no-such-user-xyz"}, "no-such-user-xyz"},
		{[]string{"check", "-o", "yaml"}, "yaml"},
		{[]string{"check", "--fail-on", "error"}, "error"},
		{[]string{"check", "--timeout", "-1s"}, "-1s"},
		{[]string{"check", "--no-such-flag"}, "--no-such-flag"},
		{[]string{"no-such-command"}, "no-such-command"},
	}
	for _, tt := range tests {
		stdout, stderr, code := gopatrol(t, nil, tt.args...)
		if code != 2 {
			t.Errorf("%v: exit %d, want 2 (stderr %q)", tt.args, code, stderr)
		}
		lines := strings.Split(strings.TrimSpace(stderr), "\n")
		if !strings.Contains(lines[0], tt.names) {
			t.Errorf("%v: stderr %q does not name %q on its first line", tt.args, stderr, tt.names)
		}
		if len(lines) > 1 || stdout != "" {
			t.Errorf("%v: want one line on stderr and nothing on stdout, got stdout %q stderr %q", tt.args, stdout, stderr)
		}
	}
}

func TestVersion(t *testing.T) {
	stdout, _, code := gopatrol(t, nil, "version")
	if code != 0 || !strings.HasPrefix(stdout, "gopatrol ") {
		t.Errorf("version: %q exit %d", stdout, code)
	}
}

func TestListJSON(t *testing.T) {
	stdout, stderr, code := gopatrol(t, nil, "check", "--list", "-o", "json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var list []struct{ ID, Title, Seed string }
	if err := json.Unmarshal([]byte(stdout), &list); err != nil {
		t.Fatalf("--list -o json: %v\n%s", err, stdout)
	}
}

// openPTY returns a terminal: the text report is coloured only there.
func openPTY(t *testing.T) (master, slave *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		testgate.Missing(t, "no pseudo-terminal: %v", err)
	}
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		testgate.Missing(t, "unlock pty: %v", err)
	}
	n, err := unix.IoctlGetInt(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		testgate.Missing(t, "pty number: %v", err)
	}
	s, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		testgate.Missing(t, "open pty: %v", err)
	}
	t.Cleanup(func() { m.Close(); s.Close() })
	return m, s
}

func TestUseColor(t *testing.T) {
	_, tty := openPTY(t)
	pipeR, pipeW, _ := os.Pipe()
	defer pipeR.Close()
	defer pipeW.Close()
	tests := []struct {
		name    string
		w       *os.File
		noColor string
		want    bool
	}{
		{"terminal", tty, "", true},
		{"terminal with NO_COLOR", tty, "1", false},
		{"pipe", pipeW, "", false},
	}
	for _, tt := range tests {
		t.Setenv("NO_COLOR", tt.noColor)
		t.Setenv("TERM", "xterm")
		if got := useColor(tt.w); got != tt.want {
			t.Errorf("%s: useColor = %v, want %v", tt.name, got, tt.want)
		}
	}
}

// --log-format and --log-level are the root's, for every command; a bad
// value is exit 2 naming it, and json gives one object per record.
func TestLogFlags(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"--log-format", "yaml", "version"}, `log format "yaml"`},
		{[]string{"check", "--log-level", "loud", "--list"}, `log level "loud"`},
		{[]string{"plugins", "list", "--log-level", "chatty"}, `log level "chatty"`},
	} {
		_, stderr, code := gopatrol(t, nil, tt.args...)
		if code != 2 || !strings.Contains(stderr, tt.want) {
			t.Errorf("%v: exit %d, stderr %q; want 2 naming %s", tt.args, code, stderr, tt.want)
		}
	}
	// Overriding service.name is logged at debug by otelcfg, through the
	// one logger: here as JSON.
	_, stderr, _ := gopatrol(t, []string{"OTEL_METRICS_EXPORTER=none", "OTEL_RESOURCE_ATTRIBUTES=service.name=other"},
		"--log-format", "json", "--log-level", "debug", "check", "--export", "--only", "go.binary")
	sawJSON := false
	for _, line := range strings.Split(strings.TrimSpace(stderr), "\n") {
		var rec map[string]any
		if json.Unmarshal([]byte(line), &rec) == nil && rec["level"] == "DEBUG" && rec["msg"] != nil {
			sawJSON = true
		}
	}
	if !sawJSON {
		t.Errorf("--log-format json --log-level debug: no JSON log record on stderr:\n%s", stderr)
	}
}
