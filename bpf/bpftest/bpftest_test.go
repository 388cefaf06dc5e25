package bpftest

import (
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
		t.Skip("needs root to drop privileges for the child")
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

func TestRequireRoot(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("not root")
	}
	Require(t) // as root on a BTF kernel this must pass, or fail loudly in CI
}
