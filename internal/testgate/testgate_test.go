package testgate

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// The gate is tested from outside: a child test process runs Missing
// with and without the variable, and its verdict is read from its output.
func TestMissing(t *testing.T) {
	if os.Getenv("TESTGATE_CHILD") == "1" {
		Missing(t, "no such thing on this machine")
		return
	}
	for _, tt := range []struct {
		require string
		want    string
		fails   bool
	}{
		{"", "--- SKIP", false},
		{"0", "--- SKIP", false},
		{"1", "--- FAIL", true},
	} {
		cmd := exec.Command(os.Args[0], "-test.run=^TestMissing$", "-test.v")
		cmd.Env = append(os.Environ(), "TESTGATE_CHILD=1", RequireEnv+"="+tt.require)
		out, err := cmd.CombinedOutput()
		if (err != nil) != tt.fails || !strings.Contains(string(out), tt.want) || !strings.Contains(string(out), "no such thing on this machine") {
			t.Errorf("%s=%q: err %v, output:\n%s\nwant %s with the reason", RequireEnv, tt.require, err, out, tt.want)
		}
	}
}

func TestTool(t *testing.T) {
	if p := Tool(t, "sh", "dash"); !strings.HasSuffix(p, "/sh") {
		t.Errorf("Tool(sh) = %q", p)
	}
}

// Slow skips under -short only where tests are not Required.
func TestSlow(t *testing.T) {
	if os.Getenv("TESTGATE_CHILD") == "1" {
		Slow(t, "a costly thing")
		t.Log("ran in full")
		return
	}
	for _, tt := range []struct {
		short, require string
		want           string
	}{
		{"false", "", "ran in full"},
		{"true", "", "--- SKIP"},
		{"true", "1", "ran in full"},
	} {
		cmd := exec.Command(os.Args[0], "-test.run=^TestSlow$", "-test.v", "-test.short="+tt.short)
		cmd.Env = append(os.Environ(), "TESTGATE_CHILD=1", RequireEnv+"="+tt.require)
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), tt.want) {
			t.Errorf("-short=%s %s=%q: err %v, output:\n%s\nwant %q", tt.short, RequireEnv, tt.require, err, out, tt.want)
		}
	}
}
