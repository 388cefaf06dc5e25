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
		// A go script first on PATH, as an upgrade or a CI image leaves
		// one; the break is that it stops doing what the check runs.
		{"build.pie-aslr", goScriptBreaking("run")},
		{"go.version-skew", goScriptBreaking("tool")},
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
			// The fingerprint holds machine-wide state (mounts, the
			// C toolchain's files) that other tests running beside
			// this one may change; a proof must then be proved again,
			// and the pair is tried again. With the inputs the same
			// throughout, the kept proof must stand.
			for attempt := 1; ; attempt++ {
				before := check.ProofInputsText(w.Env())
				checktest.Expect(t, w.Run(c), check.Pass)
				between := check.ProofInputsText(w.Env())
				second := w.Run(c)
				checktest.Expect(t, second, check.Pass)
				after := check.ProofInputsText(w.Env())
				if second.Evidence["proof"] != "" && strings.Contains(second.Summary, "proved") {
					break
				}
				if before == between && between == after {
					t.Fatalf("the second run proved again although its inputs were unchanged: %s %v", second.Summary, second.Evidence)
				}
				t.Logf("attempt %d: the inputs changed beside the test, so the proof was proved again:\n%s\n%s", attempt, inputsDiff(before, between), inputsDiff(between, after))
				if attempt == 3 {
					t.Fatalf("the inputs changed in each of %d attempts", attempt)
				}
			}
			kept, _ := os.ReadDir(w.Proofs.Dir)
			breakIt()
			broken := w.Run(c)
			if broken.Status != check.Fail || broken.Evidence["proof"] != "" {
				t.Fatalf("after the break: %s %q (proof %q), want a fresh fail", broken.Status, broken.Summary, broken.Evidence["proof"])
			}
			if after, _ := os.ReadDir(w.Proofs.Dir); len(after) != len(kept) {
				t.Errorf("%d proofs kept after the failure, %d before: a failure was kept", len(after), len(kept))
			}
		})
	}
}

// inputsDiff lists the fingerprint's lines that differ, without the
// environment's values (a world's own, but not printed all the same).
func inputsDiff(a, b string) string {
	in := map[string]bool{}
	for _, l := range strings.Split(a, "\n") {
		in[l] = true
	}
	var out []string
	for _, l := range strings.Split(b, "\n") {
		if !in[l] && !strings.HasPrefix(l, "environ ") {
			out = append(out, "+ "+l)
		}
	}
	if a != b && len(out) == 0 {
		out = append(out, "(the environment)")
	}
	return strings.Join(out, "\n")
}

// goScriptBreaking puts a go script that runs the real go first on the
// world's PATH, and breaks it so that `go <subcommand>` fails.
func goScriptBreaking(subcommand string) func(*testing.T, *checktest.World) func() {
	return func(t *testing.T, w *checktest.World) func() {
		real := checktest.RealGo(t)
		script := filepath.Join(w.Dir, "bin", "go")
		checktest.WriteFile(t, script, "#!/bin/sh\nexec "+real+" \"$@\"\n", 0o755)
		w.Setenv("PATH=" + filepath.Dir(script) + ":" + w.Getenv("PATH"))
		return func() {
			checktest.WriteFile(t, script, "#!/bin/sh\n[ \"$1\" = "+subcommand+" ] && { echo 'go: broken' >&2; exit 1; }\nexec "+real+" \"$@\"\n", 0o755)
		}
	}
}
