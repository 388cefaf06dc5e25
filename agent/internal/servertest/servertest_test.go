package servertest

import (
	"errors"
	"github.com/gopatrol/gopatrol/internal/testgate"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"

	"github.com/gopatrol/gopatrol/bpf/bpftest"
)

// TestCleanupStops starts Alertmanager in a subtest and checks that when
// the subtest ends, the server is gone and its data directory removed.
func TestCleanupStops(t *testing.T) {
	var s *Server
	t.Run("run", func(t *testing.T) {
		s = Alertmanager(t)
		resp, err := http.Get(s.URL + "/api/v2/status")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET /api/v2/status: %s", resp.Status)
		}
	})
	if s == nil {
		// The subtest above already skipped (or failed under
		// GOPATROL_REQUIRE_BPF=1) for the missing binary.
		testgate.Missing(t, "no Alertmanager started")
	}
	select {
	case <-s.exited:
	default:
		t.Fatal("server still running after its test's cleanup")
	}
	if err := syscall.Kill(-s.cmd.Process.Pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("process group %d still has members: kill 0 = %v", s.cmd.Process.Pid, err)
	}
	if _, err := os.Stat(s.Dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("data directory %s not removed: %v", s.Dir, err)
	}
}

// TestMissingBinary runs Alertmanager in a child whose PATH has no
// servers: it skips naming the package, and fails under
// GOPATROL_REQUIRE_BPF=1.
func TestMissingBinary(t *testing.T) {
	if os.Getenv("SERVERTEST_CHILD") == "1" {
		Alertmanager(t)
		t.Log("STARTED")
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
		cmd := exec.Command(exe, "-test.run=^TestMissingBinary$", "-test.v")
		cmd.Env = append(os.Environ(), "SERVERTEST_CHILD=1", "PATH="+t.TempDir(), bpftest.RequireEnv+"="+tt.require)
		out, err := cmd.CombinedOutput()
		s := string(out)
		if (err != nil) != tt.wantFail || !strings.Contains(s, tt.want) || !strings.Contains(s, "Debian package prometheus-alertmanager") || strings.Contains(s, "STARTED") {
			t.Errorf("%s=%q: err = %v, want failure %v and %q naming the package:\n%s", bpftest.RequireEnv, tt.require, err, tt.wantFail, tt.want, s)
		}
	}
}
