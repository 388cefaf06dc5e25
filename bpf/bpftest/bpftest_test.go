package bpftest

import (
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestRequireUnprivileged runs Require in a child process without
// privileges and checks it skips by default and fails under
// GOPATROL_REQUIRE_BPF=1, naming what is missing.
func TestRequireUnprivileged(t *testing.T) {
	if os.Getenv("BPFTEST_CHILD") == "1" {
		Require(t)
		t.Log("REQUIRE-PASSED")
		return
	}
	if os.Geteuid() != 0 {
		Need(t, "root, to drop privileges for the child", errors.New("not root"))
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		require  string
		wantFail bool
		want     string
	}{
		{"", false, "SKIP"},
		{"1", true, "FAIL"},
	}
	for _, tt := range tests {
		// setpriv drops every capability while staying uid 0, the case a
		// container without CAP_BPF presents.
		cmd := exec.Command("setpriv", "--inh-caps=-all", "--bounding-set=-all", "--",
			exe, "-test.run=^TestRequireUnprivileged$", "-test.v")
		cmd.Env = append(os.Environ(), "BPFTEST_CHILD=1", RequireEnv+"="+tt.require)
		out, err := cmd.CombinedOutput()
		if (err != nil) != tt.wantFail {
			t.Errorf("%s=%q: err = %v, want failure %v\n%s", RequireEnv, tt.require, err, tt.wantFail, out)
		}
		s := string(out)
		if !strings.Contains(s, tt.want) || !strings.Contains(s, "CAP_BPF") {
			t.Errorf("%s=%q: output does not say %s and name CAP_BPF:\n%s", RequireEnv, tt.require, tt.want, s)
		}
		if strings.Contains(s, "REQUIRE-PASSED") {
			t.Errorf("Require passed without capabilities:\n%s", s)
		}
	}
}

// TestRequireHere: on a machine that can load the sensors this passes; on
// one that cannot it skips, or fails loudly in CI.
func TestRequireHere(t *testing.T) {
	Require(t)
}

// TestNeed runs Need in a child process: nothing happens without an
// error; with one it skips by default and fails under
// GOPATROL_REQUIRE_BPF=1, naming what is missing.
func TestNeed(t *testing.T) {
	if os.Getenv("BPFTEST_CHILD") == "need" {
		Need(t, "nothing", nil)
		t.Log("NOTHING-PASSED")
		Need(t, "curl on PATH", errors.New("exec: \"curl\": executable file not found in $PATH"))
		t.Log("NEED-PASSED")
		return
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		require  string
		wantFail bool
		want     string
	}{
		{"", false, "--- SKIP"},
		{"1", true, "--- FAIL"},
	} {
		cmd := exec.Command(exe, "-test.run=^TestNeed$", "-test.v")
		cmd.Env = append(os.Environ(), "BPFTEST_CHILD=need", RequireEnv+"="+tt.require)
		out, err := cmd.CombinedOutput()
		s := string(out)
		if (err != nil) != tt.wantFail || !strings.Contains(s, tt.want) || !strings.Contains(s, "curl on PATH") ||
			!strings.Contains(s, "NOTHING-PASSED") || strings.Contains(s, "NEED-PASSED") {
			t.Errorf("%s=%q: err = %v, want failure %v and %q naming curl:\n%s", RequireEnv, tt.require, err, tt.wantFail, tt.want, s)
		}
	}
}
