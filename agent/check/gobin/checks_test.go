package gobin

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/gopatrol/gopatrol/agent/check"
	"github.com/gopatrol/gopatrol/agent/check/checktest"
	"github.com/gopatrol/gopatrol/internal/testgate"
)

func setfacl(t *testing.T, args ...string) {
	t.Helper()
	testgate.Tool(t, "setfacl", "acl")
	if out, err := exec.Command("setfacl", args...).CombinedOutput(); err != nil {
		t.Fatalf("setfacl %v: %v: %s", args, err, out)
	}
}

func TestAccess(t *testing.T) {
	// Root: the world needs root (mounts, other build users, the exec probe).
	cases := []checktest.Case{
		{Name: "healthy: GOBIN unset, GOPATH/bin not created yet", Root: false, Setup: func(t *testing.T, w *checktest.World) []string {
			return []string{filepath.Join(w.Getenv("GOPATH"), "bin")}
		}, Want: check.Pass},
		{Name: "healthy: GOBIN 0755 with a binary", Root: true, Setup: func(t *testing.T, w *checktest.World) []string {
			bin := checktest.Mkdir(t, filepath.Join(w.Dir, "bin"), 0o755)
			if err := os.WriteFile(filepath.Join(bin, "tool"), []byte("#!/bin/sh\n"), 0o755); err != nil {
				t.Fatal(err)
			}
			w.Setenv("GOBIN=" + bin)
			return []string{bin, "ran as nobody"}
		}, Want: check.Pass},
		{Name: "GOBIN 0700: nobody cannot enter", Root: false, Setup: func(t *testing.T, w *checktest.World) []string {
			bin := checktest.Mkdir(t, filepath.Join(w.Dir, "bin"), 0o700)
			w.Setenv("GOBIN=" + bin)
			return []string{bin, "other::---"}
		}, Want: check.Fail},
		{Name: "parent of GOBIN 0700", Root: false, Setup: func(t *testing.T, w *checktest.World) []string {
			parent := checktest.Mkdir(t, filepath.Join(w.Dir, "private"), 0o700)
			bin := checktest.Mkdir(t, filepath.Join(parent, "bin"), 0o755)
			w.Setenv("GOBIN=" + bin)
			return []string{parent}
		}, Want: check.Fail},
		{Name: "GOBIN in the build user's private home", Root: false, Setup: func(t *testing.T, w *checktest.World) []string {
			home := checktest.Mkdir(t, filepath.Join(w.Dir, "private-home"), 0o700)
			w.Target.User.Home = home
			bin := checktest.Mkdir(t, filepath.Join(home, "go", "bin"), 0o755)
			w.Setenv("GOBIN=" + bin)
			return []string{bin, home, "other::---"}
		}, Want: check.Warn},
		{Name: "ACL grants nobody on a 0700 GOBIN", Root: false, Setup: func(t *testing.T, w *checktest.World) []string {
			bin := checktest.Mkdir(t, filepath.Join(w.Dir, "bin"), 0o700)
			setfacl(t, "-m", "u:nobody:rwx", bin)
			w.Setenv("GOBIN=" + bin)
			return []string{bin, "user:nobody:rwx"}
		}, Want: check.Pass},
		{Name: "mask takes nobody's ACL entry away", Root: false, Setup: func(t *testing.T, w *checktest.World) []string {
			bin := checktest.Mkdir(t, filepath.Join(w.Dir, "bin"), 0o700)
			setfacl(t, "-m", "u:nobody:rwx", bin)
			setfacl(t, "-m", "m::---", bin)
			w.Setenv("GOBIN=" + bin)
			return []string{bin, "mask::---", "user:nobody:rwx\t#effective:---"}
		}, Want: check.Fail},
		{Name: "mask r-- leaves nobody read but not search", Root: false, Setup: func(t *testing.T, w *checktest.World) []string {
			bin := checktest.Mkdir(t, filepath.Join(w.Dir, "bin"), 0o700)
			setfacl(t, "-m", "u:nobody:rwx,m::r--", bin)
			w.Setenv("GOBIN=" + bin)
			return []string{bin, "user:nobody:rwx would allow it but mask::r-- takes it away"}
		}, Want: check.Fail},
		{Name: "default ACL denies new binaries to others", Root: false, Setup: func(t *testing.T, w *checktest.World) []string {
			bin := checktest.Mkdir(t, filepath.Join(w.Dir, "bin"), 0o755)
			setfacl(t, "-d", "-m", "u::rwx,g::rx,o::---", bin)
			w.Setenv("GOBIN=" + bin)
			return []string{bin, "default:other::---"}
		}, Want: check.Warn},
		{Name: "installed binary not runnable by others", Root: false, Setup: func(t *testing.T, w *checktest.World) []string {
			bin := checktest.Mkdir(t, filepath.Join(w.Dir, "bin"), 0o755)
			tool := filepath.Join(bin, "tool")
			if err := os.WriteFile(tool, []byte("#!/bin/sh\n"), 0o700); err != nil {
				t.Fatal(err)
			}
			w.Setenv("GOBIN=" + bin)
			return []string{tool}
		}, Want: check.Warn},
		{Name: "GOBIN on a noexec mount", Root: true, Setup: func(t *testing.T, w *checktest.World) []string {
			bin := checktest.MountTmpfs(t, filepath.Join(w.Dir, "bin"), "noexec,mode=0755")
			w.Setenv("GOBIN=" + bin)
			return []string{bin, "EACCES"}
		}, Want: check.Fail},
		{Name: "GOBIN the build user cannot write", Root: true, Setup: func(t *testing.T, w *checktest.World) []string {
			w.AsUser("nobody")
			// The build user needs a build cache it can use for go env.
			w.Setenv("GOCACHE=" + checktest.Mkdir(t, filepath.Join(w.Dir, "gocache"), 0o777))
			bin := checktest.Mkdir(t, filepath.Join(w.Dir, "bin"), 0o755)
			w.Setenv("GOBIN=" + bin)
			return []string{bin, "EACCES", "nobody"}
		}, Want: check.Fail},
		{Name: "GOBIN is a file", Root: false, Setup: func(t *testing.T, w *checktest.World) []string {
			bin := filepath.Join(w.Dir, "bin")
			if err := os.WriteFile(bin, nil, 0o644); err != nil {
				t.Fatal(err)
			}
			w.Setenv("GOBIN=" + bin)
			return []string{bin}
		}, Want: check.Fail},
	}
	for i, c := range cases {
		setup := c.Setup
		cases[i].ID = "gobin.access"
		cases[i].Setup = func(t *testing.T, w *checktest.World) []string {
			if u, err := w.Target.LookupUser(otherUser); err == nil && u.UID == uint32(os.Geteuid()) {
				t.Skip("these worlds judge nobody's view; run them as another user")
			}
			return setup(t, w)
		}
		cases[i].After = leftNothing
	}
	checktest.RunCases(t, Checks(), cases)
}

// leftNothing asserts that the probes removed what they placed in GOBIN.
func leftNothing(t *testing.T, w *checktest.World, _ check.Result) {
	bin := w.Getenv("GOBIN")
	if bin == "" {
		return
	}
	ents, _ := os.ReadDir(bin)
	for _, e := range ents {
		if e.Name() != "tool" {
			t.Errorf("left behind: %s", filepath.Join(bin, e.Name()))
		}
	}
}

func BenchmarkAccess(b *testing.B) {
	w := checktest.New(b)
	env := w.Env()
	c := checktest.Find(b, Checks(), "gobin.access")
	for b.Loop() {
		check.Runner{}.Run(b.Context(), env, []check.Check{c})
	}
}
