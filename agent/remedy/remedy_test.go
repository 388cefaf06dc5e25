package remedy

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/gopatrol/gopatrol/agent/check"
	"github.com/gopatrol/gopatrol/agent/check/checktest"
)

// snapshot is every file under dir as a person comparing two listings
// would see it: type, mode, owner, and content or link destination.
func snapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	m := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		st := fi.Sys().(*syscall.Stat_t)
		v := fmt.Sprintf("%v %d:%d", fi.Mode(), st.Uid, st.Gid)
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			dest, _ := os.Readlink(p)
			v += " -> " + dest
		case fi.Mode().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			v += fmt.Sprintf(" %x", sha256.Sum256(b))
		}
		m[p] = v
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func sameWorld(t *testing.T, when string, before, after map[string]string) {
	t.Helper()
	for _, p := range slices.Sorted(maps.Keys(before)) {
		if after[p] != before[p] {
			t.Errorf("%s: %s was %q, now %q", when, p, before[p], after[p])
		}
	}
	for p := range after {
		if _, ok := before[p]; !ok {
			t.Errorf("%s: %s is new: %s", when, p, after[p])
		}
	}
}

func mkdirOwned(t *testing.T, dir string, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, mode); err != nil {
		t.Fatal(err)
	}
}

// Every automatable fix in its broken world: a dry run changes nothing,
// the fix makes the check pass, and its printed undo restores the world
// file for file.
func TestFixHoldsAndUndoRestores(t *testing.T) {
	cases := []struct {
		name, id string
		kind     check.RemedyKind
		// build breaks a world and returns the directory to compare.
		build func(t *testing.T, w *checktest.World) string
	}{
		{"gocache owned by root, built by nobody", "gocache.writable", check.GrantWrite, func(t *testing.T, w *checktest.World) string {
			w.AsUser("nobody")
			c := filepath.Join(w.Dir, "gocache")
			checktest.WriteFile(t, filepath.Join(c, "00", "entry-a"), "old\n", 0o644)
			checktest.WriteFile(t, filepath.Join(c, "README"), "cache\n", 0o444)
			w.Setenv("GOCACHE=" + c)
			return w.Dir
		}},
		{"gocache read-only for its owner", "gocache.writable", check.GrantWrite, func(t *testing.T, w *checktest.World) string {
			w.AsUser("nobody")
			c := filepath.Join(w.Dir, "gocache")
			mkdirOwned(t, c, 0o555)
			if err := os.Chown(c, 65534, 65534); err != nil {
				t.Fatal(err)
			}
			w.Setenv("GOCACHE=" + c)
			return w.Dir
		}},
		{"gocache missing under a root-owned parent", "gocache.writable", check.CreateDir, func(t *testing.T, w *checktest.World) string {
			w.AsUser("nobody")
			mkdirOwned(t, filepath.Join(w.Dir, "var"), 0o755)
			w.Setenv("GOCACHE=" + filepath.Join(w.Dir, "var", "cache", "go-build"))
			return w.Dir
		}},
		{"module cache owned by root, built by nobody", "modcache.writable", check.GrantWrite, func(t *testing.T, w *checktest.World) string {
			w.AsUser("nobody")
			c := filepath.Join(w.Dir, "modcache")
			checktest.WriteFile(t, filepath.Join(c, "cache", "download", "example.com", "m", "@v", "list"), "v1.0.0\n", 0o444)
			w.Setenv("GOMODCACHE=" + c)
			return w.Dir
		}},
		{"module cache missing under a root-owned parent", "modcache.writable", check.CreateDir, func(t *testing.T, w *checktest.World) string {
			w.AsUser("nobody")
			mkdirOwned(t, filepath.Join(w.Dir, "srv"), 0o755)
			w.Setenv("GOMODCACHE=" + filepath.Join(w.Dir, "srv", "gomod"))
			return w.Dir
		}},
		{"dangling link in the module cache", "modcache.links", check.RemoveLink, func(t *testing.T, w *checktest.World) string {
			c := filepath.Join(w.Dir, "modcache")
			mkdirOwned(t, filepath.Join(c, "github.com"), 0o755)
			if err := os.Symlink(filepath.Join(w.Dir, "gone", "owner"), filepath.Join(c, "github.com", "owner")); err != nil {
				t.Fatal(err)
			}
			w.Setenv("GOMODCACHE=" + c)
			return w.Dir
		}},
		{"PATH through a link into a removed install", "go.binary", check.RemoveLink, func(t *testing.T, w *checktest.World) string {
			old := filepath.Join(w.Dir, "usr-local-go")
			if err := os.Symlink(filepath.Join(w.Dir, "go1.20"), old); err != nil {
				t.Fatal(err)
			}
			w.Setenv("PATH=" + filepath.Join(old, "bin") + ":" + w.Getenv("PATH"))
			return w.Dir
		}},
		{"GO111MODULE=off in the GOENV file", "env.config", check.SetGoEnv, func(t *testing.T, w *checktest.World) string {
			checktest.WriteFile(t, w.Getenv("GOENV"), "GOPRIVATE=example.com\nGO111MODULE=off\nGONOSUMDB=example.com\n", 0o644)
			return w.Dir
		}},
		{"Go unpacked in ~/go, GOPATH unset: it defaults to GOROOT", "env.consistency", check.SetGoEnv, func(t *testing.T, w *checktest.World) string {
			w.GoInHome()
			w.Unsetenv("GOPATH")
			// The go command's own place for it, with no file yet.
			conf := filepath.Join(w.Getenv("HOME"), ".config")
			w.Setenv("GOENV=" + filepath.Join(conf, "go", "env"))
			return conf
		}},
		{"bad GOFLAGS as the GOENV file's last line", "env.config", check.SetGoEnv, func(t *testing.T, w *checktest.World) string {
			checktest.WriteFile(t, w.Getenv("GOENV"), "GOPRIVATE=example.com\nGOFLAGS=mod=mod\n", 0o600)
			return w.Dir
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w := checktest.New(t)
			dir := tc.build(t, w)
			ctx := context.Background()
			env := w.Env()
			world := snapshot(t, dir)

			plan, err := Fix(ctx, env, tc.id, true)
			if err != nil {
				t.Fatal(err)
			}
			if plan.Refused != "" || len(plan.Changes) == 0 || len(plan.Changes) != len(plan.Undo) {
				t.Fatalf("dry run: refused %q changes %q undo %q; before %s: %s %v fix %q", plan.Refused, plan.Changes, plan.Undo, plan.Before.Status, plan.Before.Summary, plan.Before.Evidence, plan.Before.Fix)
			}
			if plan.Before.Status != check.Fail && plan.Before.Status != check.Warn {
				t.Fatalf("broken world: %s %s", plan.Before.Status, plan.Before.Summary)
			}
			if k := plan.Before.Remedies[0].Kind; k != tc.kind {
				t.Errorf("remedy %s, want %s", k, tc.kind)
			}
			sameWorld(t, "after the dry run", world, snapshot(t, dir))

			o, err := Fix(ctx, w.Env(), tc.id, false)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("changes %q undo %q", o.Changes, o.Undo)
			if !o.Held || o.After.Status != check.Pass {
				t.Fatalf("fix did not hold: %s: %s %v", o.After.Status, o.After.Summary, o.After.Evidence)
			}
			if !slices.Equal(o.Changes, plan.Changes) && tc.kind != check.PruneCache {
				t.Errorf("applied %q, planned %q", o.Changes, plan.Changes)
			}
			if err := Undo(ctx, o); err != nil {
				t.Fatal(err)
			}
			after := snapshot(t, dir)
			// The rerun's go command fills a cache it can now write;
			// what it cached since is not the fix's to undo (a created
			// cache directory goes with its contents).
			if tc.kind == check.GrantWrite {
				cache := o.Before.Remedies[0].Root
				for p := range after {
					if _, ok := world[p]; !ok && strings.HasPrefix(p, cache+"/") {
						delete(after, p)
					}
				}
			}
			sameWorld(t, "after undo", world, after)
			if res := w.Run(checktest.Find(t, allChecks(), tc.id)); res.Status != plan.Before.Status {
				t.Errorf("after undo: %s, want the broken world's %s again", res.Status, plan.Before.Status)
			}
		})
	}
}
