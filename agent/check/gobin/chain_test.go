package gobin

import (
	"path/filepath"
	"slices"
	"testing"

	"github.com/gopatrol/gopatrol/agent/check"
	"github.com/gopatrol/gopatrol/agent/check/checktest"
)

// In a host mounted at a directory of its own, GOBIN's resolved path is
// the host's: an absolute link points inside the host, and the directories
// searched are the host's.
func TestChainInMountedHost(t *testing.T) {
	host := t.TempDir()
	checktest.Mkdir(t, filepath.Join(host, "srv", "tools", "bin"), 0o755)
	checktest.Symlink(t, "/srv/tools", filepath.Join(host, "opt", "tools"))
	got := chain(&check.Target{Root: host}, "/opt/tools/bin")
	want := []string{"/", "/opt", "/opt/tools", "/opt/tools/bin", "/srv", "/srv/tools", "/srv/tools/bin"}
	if !slices.Equal(got, want) {
		t.Errorf("chain = %v, want %v", got, want)
	}
}
