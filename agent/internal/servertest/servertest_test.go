package servertest

import (
	"errors"
	"net/http"
	"os"
	"syscall"
	"testing"
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
		t.Skip("no server started")
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
