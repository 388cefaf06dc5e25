package cgo

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/gopatrol/gopatrol/agent/check"
	"github.com/gopatrol/gopatrol/agent/check/checktest"
	"github.com/gopatrol/gopatrol/internal/testgate"
)

func script(t *testing.T, path, body string) string {
	t.Helper()
	if err := os.WriteFile(path, []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestToolchain(t *testing.T) {
	testgate.Tool(t, "gcc", "gcc")
	checktest.RunCases(t, Checks(), []checktest.Case{
		{Name: "healthy", ID: "cgo.toolchain", Setup: func(t *testing.T, w *checktest.World) []string {
			return []string{"C program linked by gcc", "/usr/bin/gcc"}
		}, Want: check.Pass},
		{Name: "CGO_ENABLED=1 with CC a missing path", ID: "cgo.toolchain", Setup: func(t *testing.T, w *checktest.World) []string {
			w.Setenv("CGO_ENABLED=1", "CC=/nonexistent/bin/gcc-13")
			return []string{"/nonexistent/bin/gcc-13"}
		}, Want: check.Fail},
		{Name: "CGO_ENABLED=1 with CC not on PATH", ID: "cgo.toolchain", Setup: func(t *testing.T, w *checktest.World) []string {
			w.Setenv("CGO_ENABLED=1", "CC=gopatrol-no-such-cc")
			return []string{"gopatrol-no-such-cc"}
		}, Want: check.Fail},
		{Name: "CGO_ENABLED=0 on purpose", ID: "cgo.toolchain", Setup: func(t *testing.T, w *checktest.World) []string {
			w.Setenv("CGO_ENABLED=0")
			return []string{"CGO_ENABLED=0"}
		}, Want: check.Skip},
		{Name: "no C compiler: cgo silently off", ID: "cgo.toolchain", Setup: func(t *testing.T, w *checktest.World) []string {
			w.Unsetenv("CC")
			w.Unsetenv("CGO_ENABLED")
			goroot := filepath.Dir(filepath.Dir(checktest.RealGo(t)))
			w.Setenv("PATH=" + filepath.Join(goroot, "bin"))
			return []string{"gcc is not on PATH", filepath.Join(goroot, "bin")}
		}, Want: check.Warn},
		{Name: "CC that does not run", ID: "cgo.toolchain", Setup: func(t *testing.T, w *checktest.World) []string {
			cc := script(t, filepath.Join(w.Dir, "brokencc"), "echo 'brokencc: cannot execute cc1' >&2; exit 1")
			w.Setenv("CGO_ENABLED=1", "CC="+cc)
			return []string{cc, "cannot execute cc1"}
		}, Want: check.Fail},
		{Name: "CC that cannot compile", ID: "cgo.toolchain", Setup: func(t *testing.T, w *checktest.World) []string {
			// Answers --version (and the go command's -### probe) like
			// gcc, then fails every compile like a gcc without headers.
			cc := script(t, filepath.Join(w.Dir, "halfcc"), `case "$*" in
*--version*|*-###*) exec gcc "$@" ;;
esac
echo 'halfcc: fatal error: stdlib.h: No such file or directory' >&2
exit 1`)
			w.Setenv("CGO_ENABLED=1", "CC="+cc)
			return []string{cc, "stdlib.h"}
		}, Want: check.Fail},
		{Name: "CC that compiles but cannot link", ID: "cgo.toolchain", Setup: func(t *testing.T, w *checktest.World) []string {
			// A gcc whose C runtime objects are gone: compiling works,
			// every link fails.
			cc := script(t, filepath.Join(w.Dir, "nolinkcc"), `for a in "$@"; do
  case "$a" in -c|-E|--version|-###|-dM) exec gcc "$@" ;; esac
done
echo '/usr/bin/ld: cannot find crt1.o: No such file or directory' >&2
exit 1`)
			w.Setenv("CGO_ENABLED=1", "CC="+cc)
			return []string{cc, "crt1.o"}
		}, Want: check.Fail},
	})
}

// TestPidsLimit puts a process into a real cgroup with a low pids.max and
// reads its limit through /proc/<pid>/cgroup.
func TestPidsLimit(t *testing.T) {
	checktest.RequireRoot(t)
	base := "/sys/fs/cgroup/pids" // v1
	if _, err := os.Stat(filepath.Join(base, "tasks")); err != nil {
		base = "/sys/fs/cgroup" // v2: pids must be enabled for children
		if _, err := os.Stat(filepath.Join(base, "cgroup.controllers")); err != nil {
			testgate.Missing(t, "no pids cgroup controller")
		}
	}
	cg := filepath.Join(base, "gopatrol-test-"+strconv.Itoa(os.Getpid()))
	if err := os.Mkdir(cg, 0o755); err != nil {
		testgate.Missing(t, "cannot create a cgroup: %v", err)
	}
	sleep := exec.Command("sleep", "30")
	t.Cleanup(func() {
		if sleep.Process != nil {
			sleep.Process.Kill()
			sleep.Wait()
		}
		for i := 0; i < 50 && os.Remove(cg) != nil; i++ {
			time.Sleep(10 * time.Millisecond)
		}
	})
	if err := os.WriteFile(filepath.Join(cg, "pids.max"), []byte("40"), 0o644); err != nil {
		testgate.Missing(t, "pids controller not enabled here: %v", err)
	}
	if err := sleep.Start(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(cg, "cgroup.procs"), []byte(strconv.Itoa(sleep.Process.Pid)), 0o644); err != nil {
		t.Fatal(err)
	}
	w := checktest.New(t)
	lim, err := pidsLimit(w.Target, "/proc/"+strconv.Itoa(sleep.Process.Pid)+"/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s", lim)
	if lim.Max != 40 || lim.Current != 1 || lim.Cgroup != cg || lim.headroom() >= minPidsHeadroom {
		t.Errorf("pidsLimit = %+v, want max 40, current 1 in %s", lim, cg)
	}
}

func BenchmarkToolchain(b *testing.B) {
	w := checktest.New(b)
	env := w.Env()
	c := checktest.Find(b, Checks(), "cgo.toolchain")
	for b.Loop() {
		check.Runner{}.Run(b.Context(), env, []check.Check{c})
	}
}
