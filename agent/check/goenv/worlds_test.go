package goenv_test

import (
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/gopatrol/gopatrol/agent/check"
	"github.com/gopatrol/gopatrol/agent/check/checktest"
	"github.com/gopatrol/gopatrol/agent/check/goenv"
)

// TestFixesRunWherePrinted builds the worlds where a fix used to point at
// the broken value or could not run, and applies each printed fix there.
func TestFixesRunWherePrinted(t *testing.T) {
	checks := goenv.Checks()
	notHomeGo := func(t *testing.T, w *checktest.World, res check.Result) {
		if strings.Contains(res.Fix, "GOPATH=$HOME/go ") || strings.HasSuffix(res.Fix, "GOPATH=$HOME/go") {
			t.Errorf("fix proposes GOPATH=$HOME/go, which is GOROOT here: %q", res.Fix)
		}
	}
	checktest.RunCases(t, checks, []checktest.Case{
		{
			Name: "Go unpacked in ~/go with GOPATH=$HOME/go",
			ID:   "env.consistency",
			Setup: func(t *testing.T, w *checktest.World) []string {
				root := w.GoInHome()
				return []string{"is GOROOT", root}
			},
			Want:  check.Fail,
			After: notHomeGo,
		},
		{
			Name: "Go unpacked in ~/go, GOPATH unset: it defaults to GOROOT",
			ID:   "env.consistency",
			Setup: func(t *testing.T, w *checktest.World) []string {
				w.GoInHome()
				w.Unsetenv("GOPATH")
				return []string{"is GOROOT"}
			},
			Want:  check.Fail,
			After: notHomeGo,
		},
		{
			// The go command's "go: warning: GOPATH set to GOROOT" is
			// its own word, not a wrapper rewriting output.
			Name: "Go unpacked in ~/go: go run's warning is not a wrapper",
			ID:   "env.functional",
			Setup: func(t *testing.T, w *checktest.World) []string {
				w.GoInHome()
				return []string{"GOPATH and GOROOT are the same directory"}
			},
			Want: check.Pass,
		},
		{
			Name: "GOENV file GOPATH=~/go, which go env -w itself rejects",
			ID:   "env.consistency",
			Setup: func(t *testing.T, w *checktest.World) []string {
				w.Unsetenv("GOPATH")
				checktest.WriteFile(t, w.Getenv("GOENV"), "GOPROXY=off\nGOPATH=~/go\n", 0o644)
				return []string{`"~/go"`}
			},
			Want: check.Fail,
			After: func(t *testing.T, w *checktest.World, res check.Result) {
				if want := "edit " + w.Getenv("GOENV") + " line 2:"; !strings.HasPrefix(res.Fix, want) {
					t.Errorf("fix %q, want it to start with %q", res.Fix, want)
				}
			},
		},
		{
			Name: "empty GOPATH and no HOME",
			ID:   "env.consistency",
			Setup: func(t *testing.T, w *checktest.World) []string {
				w.Unsetenv("HOME")
				w.Setenv("GOPATH=")
				return []string{"GOPATH is empty"}
			},
			Want: check.Warn,
		},
		{
			// GOPATH defaults to $HOME/go, a link; HOME is read-only, so
			// go env -w cannot write the GOENV file there.
			Name: "read-only HOME: an export, not go env -w",
			ID:   "env.consistency",
			Root: true,
			Setup: func(t *testing.T, w *checktest.World) []string {
				home := checktest.MountTmpfs(t, filepath.Join(w.Dir, "rohome"), "mode=0755")
				real := checktest.Mkdir(t, filepath.Join(w.Dir, "realgopath"), 0o755)
				checktest.Symlink(t, real, filepath.Join(home, "go"))
				if err := unix.Mount("", home, "", unix.MS_REMOUNT|unix.MS_RDONLY, ""); err != nil {
					t.Fatalf("remount %s read-only: %v", home, err)
				}
				w.Setenv("HOME=" + home)
				w.Unsetenv("GOPATH")
				w.Unsetenv("GOENV")
				return []string{real}
			},
			Want: check.Warn,
			After: func(t *testing.T, w *checktest.World, res check.Result) {
				if !strings.HasPrefix(res.Fix, "export GOPATH=") {
					t.Errorf("fix %q: want an export where HOME is read-only", res.Fix)
				}
			},
		},
	})
}
