package cache

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/gopatrol/gopatrol/agent/check"
	"github.com/gopatrol/gopatrol/agent/check/checktest"
)

// modcache.links against a host mounted at a directory of its own (the
// agent's /host): GOMODCACHE is an absolute link that only resolves inside
// the host, and a dangling link there is the host's.
func TestLinksInMountedHost(t *testing.T) {
	host := t.TempDir()
	checktest.Mkdir(t, filepath.Join(host, "ssd", "modcache", "cache", "download"), 0o755)
	checktest.Symlink(t, "/ssd/modcache", filepath.Join(host, "home", "u", "go", "pkg", "mod"))
	checktest.Symlink(t, "/ssd/gone", filepath.Join(host, "ssd", "modcache", "example.com"))
	env := &check.Env{
		Target:    &check.Target{Root: host},
		Toolchain: &check.Toolchain{Env: map[string]string{"GOPATH": "/home/u/go", "GOMODCACHE": "/home/u/go/pkg/mod"}},
	}
	res := links(context.Background(), env, env.Toolchain.Env)
	checktest.Expect(t, res, check.Fail, "/home/u/go/pkg/mod/example.com", "/ssd/gone")
	if got := res.Evidence["GOMODCACHE resolved"]; got != "/ssd/modcache" {
		t.Errorf("GOMODCACHE resolved = %q, want the host's /ssd/modcache", got)
	}

	// The printed fix names the host's paths: it runs inside the host
	// (chroot, as the agent's commands do), with the host's own /usr.
	t.Run("printed fix", func(t *testing.T) {
		withSystem(t, host)
		w := &checktest.World{T: t, Target: env.Target, Dir: host}
		if o := checktest.ApplyFix(t, w, res.Fix); o.Applied == "" {
			t.Fatalf("fix %q was not applied: %s", res.Fix, o.Manual)
		}
		if res := links(context.Background(), env, env.Toolchain.Env); res.Status != check.Pass {
			t.Errorf("after the fix: %s: %s %v", res.Status, res.Summary, res.Evidence)
		}
	})
}

// withSystem gives the mounted host this machine's /usr (bound read-only)
// and its /bin, /lib, ... links into it, so that a shell runs inside it.
func withSystem(t *testing.T, host string) {
	t.Helper()
	checktest.RequireRoot(t)
	usr := checktest.Mkdir(t, filepath.Join(host, "usr"), 0o755)
	if err := unix.Mount("/usr", usr, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		t.Fatalf("bind /usr on %s: %v", usr, err)
	}
	t.Cleanup(func() { _ = unix.Unmount(usr, unix.MNT_DETACH) })
	if err := unix.Mount("", usr, "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY, ""); err != nil {
		t.Fatalf("remount %s read-only: %v", usr, err)
	}
	for _, d := range []string{"bin", "sbin", "lib", "lib64"} {
		if to, err := os.Readlink("/" + d); err == nil {
			checktest.Symlink(t, to, filepath.Join(host, d))
		}
	}
}
