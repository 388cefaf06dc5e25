package check_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/gopatrol/gopatrol/agent/check"
	"github.com/gopatrol/gopatrol/agent/check/catalog"
	"github.com/gopatrol/gopatrol/agent/check/checktest"
	"github.com/gopatrol/gopatrol/internal/testgate"
)

// A kept proof must never hide a break: the real proving checks pass, let
// their proof stand on the next run, and fail as soon as the world breaks
// under them, as the build would.
func TestKeptProofNeverHidesABreak(t *testing.T) {
	tests := []struct {
		id    string
		setup func(t *testing.T, w *checktest.World) (breakIt func())
	}{
		{"cgo.toolchain", func(t *testing.T, w *checktest.World) func() {
			gcc := testgate.Tool(t, "gcc", "gcc")
			cc := filepath.Join(w.Dir, "bin", "cc")
			checktest.WriteFile(t, cc, "#!/bin/sh\nexec "+gcc+" \"$@\"\n", 0o755)
			w.Setenv("CC=" + cc)
			return func() { checktest.WriteFile(t, cc, "#!/bin/sh\necho 'cc: broken' >&2\nexit 1\n", 0o755) }
		}},
		{"env.functional", func(t *testing.T, w *checktest.World) func() {
			tmp := checktest.MountTmpfs(t, filepath.Join(w.Dir, "tmp"), "mode=1777")
			w.Setenv("TMPDIR=" + tmp)
			return func() {
				if err := unix.Mount("tmpfs", tmp, "tmpfs", unix.MS_REMOUNT|unix.MS_NOEXEC, "mode=1777"); err != nil {
					t.Fatalf("remount %s noexec: %v", tmp, err)
				}
			}
		}},
		{"build.pie-aslr", func(t *testing.T, w *checktest.World) func() {
			// A go script first on PATH, as an upgrade or a CI image leaves
			// one; the break is that it stops building.
			real := checktest.RealGo(t)
			wrapper := filepath.Join(w.Dir, "bin", "go")
			checktest.WriteFile(t, wrapper, "#!/bin/sh\nexec "+real+" \"$@\"\n", 0o755)
			w.Setenv("PATH=" + filepath.Dir(wrapper) + ":" + w.Getenv("PATH"))
			return func() {
				checktest.WriteFile(t, wrapper, "#!/bin/sh\n[ \"$1\" = run ] && { echo 'go: cannot run' >&2; exit 1; }\nexec "+real+" \"$@\"\n", 0o755)
			}
		}},
		{"go.version-skew", func(t *testing.T, w *checktest.World) func() {
			real := checktest.RealGo(t)
			wrapper := filepath.Join(w.Dir, "bin", "go")
			checktest.WriteFile(t, wrapper, "#!/bin/sh\nexec "+real+" \"$@\"\n", 0o755)
			w.Setenv("PATH=" + filepath.Dir(wrapper) + ":" + w.Getenv("PATH"))
			return func() {
				checktest.WriteFile(t, wrapper, "#!/bin/sh\n[ \"$1\" = tool ] && { echo 'go: no tools' >&2; exit 1; }\nexec "+real+" \"$@\"\n", 0o755)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.id, func(t *testing.T) {
			c := checktest.Find(t, catalog.All(), tt.id)
			if !c.Proves {
				t.Fatalf("%s does not prove (Check.Proves)", tt.id)
			}
			w := checktest.New(t)
			w.Proofs = &check.Proofs{Dir: filepath.Join(t.TempDir(), "proofs")}
			breakIt := tt.setup(t, w)
			first := w.Run(c)
			checktest.Expect(t, first, check.Pass)
			second := w.Run(c)
			checktest.Expect(t, second, check.Pass)
			if second.Evidence["proof"] == "" || !strings.Contains(second.Summary, "proved") {
				t.Fatalf("the second run proved again instead of letting the kept proof stand: %s %v", second.Summary, second.Evidence)
			}
			breakIt()
			broken := w.Run(c)
			if broken.Status != check.Fail || broken.Evidence["proof"] != "" {
				t.Fatalf("after the break: %s %q (proof %q), want a fresh fail", broken.Status, broken.Summary, broken.Evidence["proof"])
			}
			entries, _ := os.ReadDir(w.Proofs.Dir)
			if len(entries) != 1 {
				t.Errorf("%d proofs kept, want the one pass", len(entries))
			}
		})
	}
}
