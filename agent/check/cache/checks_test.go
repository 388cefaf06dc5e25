package cache

import (
	"path/filepath"
	"testing"

	"github.com/gopatrol/gopatrol/agent/check"
	"github.com/gopatrol/gopatrol/agent/check/checktest"
)

func TestModcacheLinks(t *testing.T) {
	checktest.RunCases(t, Checks(), []checktest.Case{
		{Name: "healthy", ID: "modcache.links", Setup: func(t *testing.T, w *checktest.World) []string {
			return []string{w.Getenv("GOMODCACHE")}
		}, Want: check.Pass},
		{Name: "dangling links under GOPATH/pkg/mod", ID: "modcache.links", Setup: func(t *testing.T, w *checktest.World) []string {
			w.Unsetenv("GOMODCACHE") // the default, GOPATH/pkg/mod
			mod := filepath.Join(w.Getenv("GOPATH"), "pkg", "mod")
			checktest.Mkdir(t, filepath.Join(mod, "cache", "download"), 0o755)
			top := checktest.Symlink(t, "/nonexistent/gopatrol-ssd/modcache", filepath.Join(mod, "golang.org"))
			deep := checktest.Symlink(t, "../vanished", filepath.Join(mod, "github.com", "acme"))
			return []string{top, "/nonexistent/gopatrol-ssd/modcache", deep, "../vanished"}
		}, Want: check.Fail},
		{Name: "GOMODCACHE is a dangling link", ID: "modcache.links", Setup: func(t *testing.T, w *checktest.World) []string {
			l := checktest.Symlink(t, filepath.Join(w.Dir, "fast-ssd", "modcache"), filepath.Join(w.Dir, "modcache"))
			w.Setenv("GOMODCACHE=" + l)
			return []string{l, filepath.Join(w.Dir, "fast-ssd", "modcache")}
		}, Want: check.Fail},
		{Name: "GOMODCACHE elsewhere, leftovers in GOPATH/pkg/mod", ID: "modcache.links", Setup: func(t *testing.T, w *checktest.World) []string {
			mc := checktest.Mkdir(t, filepath.Join(w.Dir, "ssd", "modcache"), 0o755)
			w.Setenv("GOMODCACHE=" + mc)
			old := checktest.Mkdir(t, filepath.Join(w.Getenv("GOPATH"), "pkg", "mod", "github.com", "acme"), 0o755)
			return []string{filepath.Dir(filepath.Dir(old)), mc}
		}, Want: check.Warn},
		{Name: "GOPATH/pkg/mod links to GOMODCACHE (the seed's healthy redirect)", ID: "modcache.links", Setup: func(t *testing.T, w *checktest.World) []string {
			mc := checktest.Mkdir(t, filepath.Join(w.Dir, "ssd", "modcache"), 0o755)
			checktest.Mkdir(t, filepath.Join(mc, "cache", "download"), 0o755)
			mod := checktest.Symlink(t, mc, filepath.Join(w.Getenv("GOPATH"), "pkg", "mod"))
			w.Unsetenv("GOMODCACHE")
			return []string{"'" + mod + "' -> '" + mc + "'"}
		}, Want: check.Pass},
	})
}

func TestModcacheWritable(t *testing.T) {
	checktest.RunCases(t, Checks(), []checktest.Case{
		{Name: "healthy", ID: "modcache.writable", Setup: func(t *testing.T, w *checktest.World) []string {
			return []string{w.Getenv("GOMODCACHE")}
		}, Want: check.Pass},
		{Name: "root-owned 0755 GOMODCACHE as nobody", ID: "modcache.writable", Setup: func(t *testing.T, w *checktest.World) []string {
			w.AsUser("nobody")
			mc := checktest.Mkdir(t, filepath.Join(w.Dir, "modcache"), 0o755)
			w.Setenv("GOMODCACHE=" + mc)
			return []string{mc, "EACCES", "nobody"}
		}, Want: check.Fail},
		{Name: "missing GOMODCACHE under a root-owned parent as nobody", ID: "modcache.writable", Setup: func(t *testing.T, w *checktest.World) []string {
			w.AsUser("nobody")
			parent := checktest.Mkdir(t, filepath.Join(w.Dir, "caches"), 0o755)
			w.Setenv("GOMODCACHE=" + filepath.Join(parent, "mod"))
			return []string{parent, "EACCES"}
		}, Want: check.Fail},
		{Name: "writable root but read-only cache/download as nobody", ID: "modcache.writable", Setup: func(t *testing.T, w *checktest.World) []string {
			w.AsUser("nobody")
			mc := checktest.Mkdir(t, filepath.Join(w.Dir, "modcache"), 0o777)
			dl := checktest.Mkdir(t, filepath.Join(mc, "cache", "download"), 0o755)
			w.Setenv("GOMODCACHE=" + mc)
			return []string{dl, "EACCES"}
		}, Want: check.Fail},
		{Name: "missing GOMODCACHE under a directory nobody cannot search", ID: "modcache.writable", Setup: func(t *testing.T, w *checktest.World) []string {
			w.AsUser("nobody")
			private := checktest.Mkdir(t, filepath.Join(w.Dir, "private"), 0o700)
			open := checktest.Mkdir(t, filepath.Join(private, "caches"), 0o777)
			w.Setenv("GOMODCACHE=" + filepath.Join(open, "mod"))
			return []string{private, "not searchable"}
		}, Want: check.Fail},
		{Name: "missing GOMODCACHE the user can create", ID: "modcache.writable", Setup: func(t *testing.T, w *checktest.World) []string {
			mc := filepath.Join(w.Dir, "new", "modcache")
			w.Setenv("GOMODCACHE=" + mc)
			return []string{mc, w.Dir}
		}, Want: check.Pass},
	})
}

func TestGocacheWritable(t *testing.T) {
	checktest.RunCases(t, Checks(), []checktest.Case{
		{Name: "healthy", ID: "gocache.writable", Setup: func(t *testing.T, w *checktest.World) []string {
			return []string{w.Getenv("GOCACHE")}
		}, Want: check.Pass},
		{Name: "HOME unset, no GOCACHE or XDG_CACHE_HOME", ID: "gocache.writable", Setup: func(t *testing.T, w *checktest.World) []string {
			w.Unsetenv("HOME")
			w.Unsetenv("GOCACHE")
			w.Unsetenv("XDG_CACHE_HOME")
			return []string{`"off"`, "HOME and XDG_CACHE_HOME are unset"}
		}, Want: check.Fail},
		{Name: "relative GOCACHE", ID: "gocache.writable", Setup: func(t *testing.T, w *checktest.World) []string {
			w.Setenv("GOCACHE=build/cache")
			return []string{"build/cache"}
		}, Want: check.Fail},
		{Name: "root-owned 0755 GOCACHE as nobody", ID: "gocache.writable", Setup: func(t *testing.T, w *checktest.World) []string {
			w.AsUser("nobody")
			gc := checktest.Mkdir(t, filepath.Join(w.Dir, "gocache"), 0o755)
			w.Setenv("GOCACHE=" + gc)
			return []string{gc, "EACCES", "nobody"}
		}, Want: check.Fail},
		{Name: "writable GOCACHE behind a directory nobody cannot search", ID: "gocache.writable", Setup: func(t *testing.T, w *checktest.World) []string {
			// The cache itself is open to all: handing it to the user
			// (the chown fix of a root-owned cache) would change nothing.
			w.AsUser("nobody")
			private := checktest.Mkdir(t, filepath.Join(w.Dir, "private"), 0o700)
			gc := checktest.Mkdir(t, filepath.Join(private, "gocache"), 0o777)
			w.Setenv("GOCACHE=" + gc)
			return []string{private, "not searchable", "nobody"}
		}, Want: check.Fail},
		{Name: "GOCACHE on tmpfs", ID: "gocache.writable", Setup: func(t *testing.T, w *checktest.World) []string {
			mnt := checktest.MountTmpfs(t, filepath.Join(w.Dir, "tmpfs"), "size=1m")
			w.Setenv("GOCACHE=" + filepath.Join(mnt, "go-build"))
			return []string{mnt, "lost on reboot"}
		}, Want: check.Pass},
	})
}

func BenchmarkChecks(b *testing.B) {
	w := checktest.New(b)
	env := w.Env()
	for _, c := range Checks() {
		b.Run(c.ID, func(b *testing.B) {
			for b.Loop() {
				check.Runner{}.Run(b.Context(), env, []check.Check{c})
			}
		})
	}
}
