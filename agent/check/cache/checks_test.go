package cache

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gopatrol/gopatrol/agent/check"
	"github.com/gopatrol/gopatrol/agent/check/checktest"
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

func symlink(t *testing.T, target, link string) string {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(link), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	return link
}

type testCase struct {
	name   string
	id     string
	setup  func(t *testing.T, w *checktest.World) []string // returns what the evidence must name
	status check.Status
}

func run(t *testing.T, tests []testCase) {
	t.Helper()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := checktest.New(t)
			names := tt.setup(t, w)
			res := w.Run(checktest.Find(t, Checks(), tt.id))
			checktest.Expect(t, res, tt.status, names...)
		})
	}
}

func TestModcacheLinks(t *testing.T) {
	run(t, []testCase{
		{"healthy", "modcache.links", func(t *testing.T, w *checktest.World) []string {
			return []string{w.Getenv("GOMODCACHE")}
		}, check.Pass},
		{"dangling links under GOPATH/pkg/mod", "modcache.links", func(t *testing.T, w *checktest.World) []string {
			w.Unsetenv("GOMODCACHE") // the default, GOPATH/pkg/mod
			mod := filepath.Join(w.Getenv("GOPATH"), "pkg", "mod")
			mkdir(t, filepath.Join(mod, "cache", "download"), 0o755)
			top := symlink(t, "/nonexistent/gopatrol-ssd/modcache", filepath.Join(mod, "golang.org"))
			deep := symlink(t, "../vanished", filepath.Join(mod, "github.com", "acme"))
			return []string{top, "/nonexistent/gopatrol-ssd/modcache", deep, "../vanished"}
		}, check.Fail},
		{"GOMODCACHE is a dangling link", "modcache.links", func(t *testing.T, w *checktest.World) []string {
			l := symlink(t, filepath.Join(w.Dir, "fast-ssd", "modcache"), filepath.Join(w.Dir, "modcache"))
			w.Setenv("GOMODCACHE=" + l)
			return []string{l, filepath.Join(w.Dir, "fast-ssd", "modcache")}
		}, check.Fail},
		{"GOMODCACHE elsewhere, leftovers in GOPATH/pkg/mod", "modcache.links", func(t *testing.T, w *checktest.World) []string {
			mc := mkdir(t, filepath.Join(w.Dir, "ssd", "modcache"), 0o755)
			w.Setenv("GOMODCACHE=" + mc)
			old := mkdir(t, filepath.Join(w.Getenv("GOPATH"), "pkg", "mod", "github.com", "acme"), 0o755)
			return []string{filepath.Dir(filepath.Dir(old)), mc}
		}, check.Warn},
		{"GOPATH/pkg/mod links to GOMODCACHE (the seed's healthy redirect)", "modcache.links", func(t *testing.T, w *checktest.World) []string {
			mc := mkdir(t, filepath.Join(w.Dir, "ssd", "modcache"), 0o755)
			mkdir(t, filepath.Join(mc, "cache", "download"), 0o755)
			mod := symlink(t, mc, filepath.Join(w.Getenv("GOPATH"), "pkg", "mod"))
			w.Unsetenv("GOMODCACHE")
			return []string{"'" + mod + "' -> '" + mc + "'"}
		}, check.Pass},
	})
}

func TestModcacheWritable(t *testing.T) {
	run(t, []testCase{
		{"healthy", "modcache.writable", func(t *testing.T, w *checktest.World) []string {
			return []string{w.Getenv("GOMODCACHE")}
		}, check.Pass},
		{"root-owned 0755 GOMODCACHE as nobody", "modcache.writable", func(t *testing.T, w *checktest.World) []string {
			w.AsUser("nobody")
			mc := mkdir(t, filepath.Join(w.Dir, "modcache"), 0o755)
			w.Setenv("GOMODCACHE=" + mc)
			return []string{mc, "EACCES", "nobody"}
		}, check.Fail},
		{"missing GOMODCACHE under a root-owned parent as nobody", "modcache.writable", func(t *testing.T, w *checktest.World) []string {
			w.AsUser("nobody")
			parent := mkdir(t, filepath.Join(w.Dir, "caches"), 0o755)
			w.Setenv("GOMODCACHE=" + filepath.Join(parent, "mod"))
			return []string{parent, "EACCES"}
		}, check.Fail},
		{"writable root but read-only cache/download as nobody", "modcache.writable", func(t *testing.T, w *checktest.World) []string {
			w.AsUser("nobody")
			mc := mkdir(t, filepath.Join(w.Dir, "modcache"), 0o777)
			dl := mkdir(t, filepath.Join(mc, "cache", "download"), 0o755)
			w.Setenv("GOMODCACHE=" + mc)
			return []string{dl, "EACCES"}
		}, check.Fail},
		{"missing GOMODCACHE the user can create", "modcache.writable", func(t *testing.T, w *checktest.World) []string {
			mc := filepath.Join(w.Dir, "new", "modcache")
			w.Setenv("GOMODCACHE=" + mc)
			return []string{mc, w.Dir}
		}, check.Pass},
	})
}

func TestGocacheWritable(t *testing.T) {
	run(t, []testCase{
		{"healthy", "gocache.writable", func(t *testing.T, w *checktest.World) []string {
			return []string{w.Getenv("GOCACHE")}
		}, check.Pass},
		{"HOME unset, no GOCACHE or XDG_CACHE_HOME", "gocache.writable", func(t *testing.T, w *checktest.World) []string {
			w.Unsetenv("HOME")
			w.Unsetenv("GOCACHE")
			w.Unsetenv("XDG_CACHE_HOME")
			return []string{`"off"`, "HOME and XDG_CACHE_HOME are unset"}
		}, check.Fail},
		{"relative GOCACHE", "gocache.writable", func(t *testing.T, w *checktest.World) []string {
			w.Setenv("GOCACHE=build/cache")
			return []string{"build/cache"}
		}, check.Fail},
		{"root-owned 0755 GOCACHE as nobody", "gocache.writable", func(t *testing.T, w *checktest.World) []string {
			w.AsUser("nobody")
			gc := mkdir(t, filepath.Join(w.Dir, "gocache"), 0o755)
			w.Setenv("GOCACHE=" + gc)
			return []string{gc, "EACCES", "nobody"}
		}, check.Fail},
		{"GOCACHE on tmpfs", "gocache.writable", func(t *testing.T, w *checktest.World) []string {
			mnt := checktest.MountTmpfs(t, filepath.Join(w.Dir, "tmpfs"), "size=1m")
			w.Setenv("GOCACHE=" + filepath.Join(mnt, "go-build"))
			return []string{mnt, "lost on reboot"}
		}, check.Pass},
	})
}

// TestResolve checks the %N rendering and resolution the evidence relies on.
func TestResolve(t *testing.T) {
	w := checktest.New(t)
	real := mkdir(t, filepath.Join(w.Dir, "real"), 0o755)
	l1 := symlink(t, "real", filepath.Join(w.Dir, "l1"))
	l2 := symlink(t, l1, filepath.Join(w.Dir, "l2"))
	r, err := resolve(w.Target, filepath.Join(l2, "sub"))
	if err != nil {
		t.Fatal(err)
	}
	if r.Missing != filepath.Join(real, "sub") || len(r.Links) != 2 {
		t.Errorf("resolve = %+v", r)
	}
	if got := statN(w.Target, l1); got != "'"+l1+"' -> 'real'" {
		t.Errorf("statN = %s", got)
	}
	if !strings.Contains(statN(w.Target, filepath.Join(w.Dir, "nope")), "does not exist") {
		t.Error("statN of a missing path")
	}

	// A host mounted elsewhere (the agent's /host): absolute links are
	// the target's paths.
	host := mkdir(t, filepath.Join(w.Dir, "host"), 0o755)
	mkdir(t, filepath.Join(host, "gopatrol-ssd", "modcache"), 0o755)
	symlink(t, "/gopatrol-ssd/modcache", filepath.Join(host, "mod"))
	symlink(t, "/gopatrol-gone", filepath.Join(host, "gone"))
	ht := *w.Target
	ht.Root = host
	if r, err := resolve(&ht, "/mod"); err != nil || r.Resolved != "/gopatrol-ssd/modcache" {
		t.Errorf("resolve in a mounted root = %+v, %v", r, err)
	}
	if r, err := resolve(&ht, "/gone/x"); err != nil || r.Dangling == nil || r.Dangling.Path != "/gone" {
		t.Errorf("dangling in a mounted root = %+v, %v", r, err)
	}
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
