package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
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
	cmd := exec.Command(gopatrolBin, args...)
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
		t.Skipf("no pseudo-terminal: %v", err)
	}
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Skipf("unlock pty: %v", err)
	}
	n, err := unix.IoctlGetInt(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Skipf("pty number: %v", err)
	}
	s, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("open pty: %v", err)
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
