package feature_test

import (
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/gopatrol/gopatrol/bpf/bpftest"
	"github.com/gopatrol/gopatrol/bpf/feature"
)

// TestCheckCapabilities runs Check in child processes that keep only some
// capabilities (setpriv, as a container would grant them): CAP_BPF and
// CAP_PERFMON are enough, and a missing one is named.
func TestCheckCapabilities(t *testing.T) {
	if os.Getenv("FEATURE_CHILD") == "1" {
		if err := feature.Check(); err != nil {
			t.Logf("CHECK: missing=%v: %v", feature.IsMissing(err), err)
			return
		}
		t.Log("CHECK: ok")
		return
	}
	if os.Geteuid() != 0 {
		bpftest.Need(t, "root, to hand the child a chosen set of capabilities", errors.New("not root"))
	}
	if _, err := exec.LookPath("setpriv"); err != nil {
		bpftest.Need(t, "setpriv (util-linux)", err)
	}
	bpftest.Require(t) // with every capability, Check passes here
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		caps string
		want []string
	}{
		{"+bpf,+perfmon", []string{"CHECK: ok"}},
		{"+bpf", []string{"missing=true", "missing CAP_PERFMON", "setcap"}},
		{"", []string{"missing=true", "missing CAP_BPF+CAP_PERFMON"}},
	}
	for _, tt := range tests {
		t.Run("caps "+tt.caps, func(t *testing.T) {
			args := []string{"--inh-caps=-all", "--bounding-set=-all"}
			if tt.caps != "" {
				args = []string{"--inh-caps=-all," + tt.caps, "--ambient-caps=-all," + tt.caps, "--bounding-set=-all," + tt.caps}
			}
			// A non-root uid with ambient capabilities: exactly those
			// are effective in the test binary.
			args = append(args, "--reuid=65534", "--regid=65534", "--clear-groups", "--",
				exe, "-test.run=^TestCheckCapabilities$", "-test.v")
			cmd := exec.Command("setpriv", args...)
			cmd.Env = append(os.Environ(), "FEATURE_CHILD=1")
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("setpriv %s: %v\n%s", strings.Join(args, " "), err, out)
			}
			for _, w := range tt.want {
				if !strings.Contains(string(out), w) {
					t.Errorf("with %q: output does not say %q:\n%s", tt.caps, w, out)
				}
			}
		})
	}
}
