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

func mkdir(t *testing.T, p string, mode os.FileMode) string {
	t.Helper()
	if err := os.MkdirAll(p, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
	return p
}

func setfacl(t *testing.T, args ...string) {
	t.Helper()
	testgate.Tool(t, "setfacl", "acl")
	if out, err := exec.Command("setfacl", args...).CombinedOutput(); err != nil {
		t.Fatalf("setfacl %v: %v: %s", args, err, out)
	}
}

func TestAccess(t *testing.T) {
	tests := []struct {
		name   string
		root   bool // the world needs root (mounts, other build users, the exec probe)
		setup  func(t *testing.T, w *checktest.World) []string
		status check.Status
	}{
		{"healthy: GOBIN unset, GOPATH/bin not created yet", false, func(t *testing.T, w *checktest.World) []string {
			return []string{filepath.Join(w.Getenv("GOPATH"), "bin")}
		}, check.Pass},
		{"healthy: GOBIN 0755 with a binary", true, func(t *testing.T, w *checktest.World) []string {
			bin := mkdir(t, filepath.Join(w.Dir, "bin"), 0o755)
			if err := os.WriteFile(filepath.Join(bin, "tool"), []byte("#!/bin/sh\n"), 0o755); err != nil {
				t.Fatal(err)
			}
			w.Setenv("GOBIN=" + bin)
			return []string{bin, "ran as nobody"}
		}, check.Pass},
		{"GOBIN 0700: nobody cannot enter", false, func(t *testing.T, w *checktest.World) []string {
			bin := mkdir(t, filepath.Join(w.Dir, "bin"), 0o700)
			w.Setenv("GOBIN=" + bin)
			return []string{bin, "other::---"}
		}, check.Fail},
		{"parent of GOBIN 0700", false, func(t *testing.T, w *checktest.World) []string {
			parent := mkdir(t, filepath.Join(w.Dir, "private"), 0o700)
			bin := mkdir(t, filepath.Join(parent, "bin"), 0o755)
			w.Setenv("GOBIN=" + bin)
			return []string{parent}
		}, check.Fail},
		{"GOBIN in the build user's private home", false, func(t *testing.T, w *checktest.World) []string {
			home := mkdir(t, filepath.Join(w.Dir, "private-home"), 0o700)
			w.Target.User.Home = home
			bin := mkdir(t, filepath.Join(home, "go", "bin"), 0o755)
			w.Setenv("GOBIN=" + bin)
			return []string{bin, home, "other::---"}
		}, check.Warn},
		{"ACL grants nobody on a 0700 GOBIN", false, func(t *testing.T, w *checktest.World) []string {
			bin := mkdir(t, filepath.Join(w.Dir, "bin"), 0o700)
			setfacl(t, "-m", "u:nobody:rwx", bin)
			w.Setenv("GOBIN=" + bin)
			return []string{bin, "user:nobody:rwx"}
		}, check.Pass},
		{"mask takes nobody's ACL entry away", false, func(t *testing.T, w *checktest.World) []string {
			bin := mkdir(t, filepath.Join(w.Dir, "bin"), 0o700)
			setfacl(t, "-m", "u:nobody:rwx", bin)
			setfacl(t, "-m", "m::---", bin)
			w.Setenv("GOBIN=" + bin)
			return []string{bin, "mask::---", "user:nobody:rwx\t#effective:---"}
		}, check.Fail},
		{"mask r-- leaves nobody read but not search", false, func(t *testing.T, w *checktest.World) []string {
			bin := mkdir(t, filepath.Join(w.Dir, "bin"), 0o700)
			setfacl(t, "-m", "u:nobody:rwx,m::r--", bin)
			w.Setenv("GOBIN=" + bin)
			return []string{bin, "user:nobody:rwx would allow it but mask::r-- takes it away"}
		}, check.Fail},
		{"default ACL denies new binaries to others", false, func(t *testing.T, w *checktest.World) []string {
			bin := mkdir(t, filepath.Join(w.Dir, "bin"), 0o755)
			setfacl(t, "-d", "-m", "u::rwx,g::rx,o::---", bin)
			w.Setenv("GOBIN=" + bin)
			return []string{bin, "default:other::---"}
		}, check.Warn},
		{"installed binary not runnable by others", false, func(t *testing.T, w *checktest.World) []string {
			bin := mkdir(t, filepath.Join(w.Dir, "bin"), 0o755)
			tool := filepath.Join(bin, "tool")
			if err := os.WriteFile(tool, []byte("#!/bin/sh\n"), 0o700); err != nil {
				t.Fatal(err)
			}
			w.Setenv("GOBIN=" + bin)
			return []string{tool}
		}, check.Warn},
		{"GOBIN on a noexec mount", true, func(t *testing.T, w *checktest.World) []string {
			bin := checktest.MountTmpfs(t, filepath.Join(w.Dir, "bin"), "noexec,mode=0755")
			w.Setenv("GOBIN=" + bin)
			return []string{bin, "EACCES"}
		}, check.Fail},
		{"GOBIN the build user cannot write", true, func(t *testing.T, w *checktest.World) []string {
			w.AsUser("nobody")
			// The build user needs a build cache it can use for go env.
			w.Setenv("GOCACHE=" + mkdir(t, filepath.Join(w.Dir, "gocache"), 0o777))
			bin := mkdir(t, filepath.Join(w.Dir, "bin"), 0o755)
			w.Setenv("GOBIN=" + bin)
			return []string{bin, "EACCES", "nobody"}
		}, check.Fail},
		{"GOBIN is a file", false, func(t *testing.T, w *checktest.World) []string {
			bin := filepath.Join(w.Dir, "bin")
			if err := os.WriteFile(bin, nil, 0o644); err != nil {
				t.Fatal(err)
			}
			w.Setenv("GOBIN=" + bin)
			return []string{bin}
		}, check.Fail},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.root {
				checktest.RequireRoot(t)
			}
			w := checktest.New(t)
			if u, err := w.Target.LookupUser(otherUser); err == nil && u.UID == uint32(os.Geteuid()) {
				t.Skip("these worlds judge nobody's view; run them as another user")
			}
			names := tt.setup(t, w)
			res := w.Run(checktest.Find(t, Checks(), "gobin.access"))
			checktest.Expect(t, res, tt.status, names...)
			// Nothing left behind in GOBIN.
			if bin := w.Getenv("GOBIN"); bin != "" {
				ents, _ := os.ReadDir(bin)
				for _, e := range ents {
					if e.Name() != "tool" {
						t.Errorf("left behind: %s", filepath.Join(bin, e.Name()))
					}
				}
			}
		})
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
