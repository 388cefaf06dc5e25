package toolchain_test

import (
	"path/filepath"
	"testing"

	"github.com/gopatrol/gopatrol/agent/check"
	"github.com/gopatrol/gopatrol/agent/check/checktest"
	"github.com/gopatrol/gopatrol/agent/check/toolchain"
)

// TestLeftoversAndMessages builds worlds of issue 14: an upgrade's leftover
// on PATH, and a go env failure that go.binary must not contradict.
func TestLeftoversAndMessages(t *testing.T) {
	checktest.RunCases(t, toolchain.Checks(), []checktest.Case{
		{
			// /opt/go -> go1.20, and go1.20 was removed; a later PATH
			// entry supplies the real go.
			Name: "PATH entry through a link into a removed Go install",
			ID:   "go.binary",
			Setup: func(t *testing.T, w *checktest.World) []string {
				link := checktest.Symlink(t, filepath.Join(w.Dir, "opt", "go1.20"), filepath.Join(w.Dir, "opt", "go"))
				entry := filepath.Join(link, "bin")
				w.Setenv("PATH=" + entry + ":" + w.Getenv("PATH"))
				return []string{entry, link}
			},
			Want: check.Warn,
		},
		{
			Name: "go env fails under an unknown GOEXPERIMENT",
			ID:   "go.binary",
			Setup: func(t *testing.T, w *checktest.World) []string {
				w.Setenv("GOEXPERIMENT=bogusexp")
				return []string{"bogusexp"}
			},
			Want: check.Fail,
			After: func(t *testing.T, w *checktest.World, res check.Result) {
				if checktest.EvidenceContains(res, "not a Go toolchain binary") {
					t.Errorf("go.binary contradicts itself: %s", res.Summary)
				}
			},
		},
	})
}
