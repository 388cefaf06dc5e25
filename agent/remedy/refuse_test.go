package remedy

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gopatrol/gopatrol/agent/check"
	"github.com/gopatrol/gopatrol/agent/check/checktest"
)

// A fix is refused, and nothing changes, when what it would touch is not
// what the check owns.
func TestRefusedOutsideOwnership(t *testing.T) {
	cases := []struct {
		name string
		// build returns the check to fix and the result it saw (a real
		// check's, or one naming a path outside ownership, as a
		// compromised or buggy check could).
		build func(t *testing.T, w *checktest.World) (id string, res *check.Result)
		want  string
	}{
		{"GOCACHE is a link to a root-owned directory elsewhere", func(t *testing.T, w *checktest.World) (string, *check.Result) {
			w.AsUser("nobody")
			elsewhere := filepath.Join(w.Dir, "etc-like")
			checktest.WriteFile(t, filepath.Join(elsewhere, "config"), "keep\n", 0o644)
			link := filepath.Join(w.Dir, "gocache")
			if err := os.Symlink(elsewhere, link); err != nil {
				t.Fatal(err)
			}
			w.Setenv("GOCACHE=" + link)
			return "gocache.writable", nil
		}, "symbolic link"},
		{"a cache entry outside GOCACHE", func(t *testing.T, w *checktest.World) (string, *check.Result) {
			c := filepath.Join(w.Dir, "gocache")
			outside := filepath.Join(w.Dir, "work", "main.go")
			checktest.WriteFile(t, outside, "package main\n", 0o644)
			checktest.WriteFile(t, filepath.Join(c, "00", "x-d"), "x", 0o644)
			return "build.cacheverify", &check.Result{Status: check.Fail, Fix: "go clean -cache", Remedies: []check.Remedy{{Kind: check.PruneCache, Root: c, Paths: []string{filepath.Join(c, "00", "x-d"), outside}}}}
		}, "outside GOCACHE"},
		{"a cache entry that climbs out with ..", func(t *testing.T, w *checktest.World) (string, *check.Result) {
			c := filepath.Join(w.Dir, "gocache")
			checktest.WriteFile(t, filepath.Join(w.Dir, "secret"), "s\n", 0o600)
			checktest.WriteFile(t, filepath.Join(c, "README"), "r\n", 0o644)
			return "build.cacheverify", &check.Result{Status: check.Fail, Fix: "go clean -cache", Remedies: []check.Remedy{{Kind: check.PruneCache, Root: c, Paths: []string{c + "/../secret"}}}}
		}, "outside GOCACHE"},
		{"a cache entry that is a link out of GOCACHE", func(t *testing.T, w *checktest.World) (string, *check.Result) {
			c := filepath.Join(w.Dir, "gocache")
			target := filepath.Join(w.Dir, "data")
			checktest.WriteFile(t, target, "user data\n", 0o644)
			checktest.WriteFile(t, filepath.Join(c, "README"), "r\n", 0o644)
			if err := os.Symlink(target, filepath.Join(c, "ab")); err != nil {
				t.Fatal(err)
			}
			return "build.cacheverify", &check.Result{Status: check.Fail, Fix: "go clean -cache", Remedies: []check.Remedy{{Kind: check.PruneCache, Root: c, Paths: []string{filepath.Join(c, "ab")}}}}
		}, "not a regular file"},
		{"a link that resolves again", func(t *testing.T, w *checktest.World) (string, *check.Result) {
			dest := filepath.Join(w.Dir, "go1.22")
			checktest.WriteFile(t, filepath.Join(dest, "VERSION"), "go1.22\n", 0o644)
			link := filepath.Join(w.Dir, "usr-local-go")
			if err := os.Symlink(dest, link); err != nil {
				t.Fatal(err)
			}
			return "go.binary", &check.Result{Status: check.Warn, Fix: "rm " + link, Remedies: []check.Remedy{{Kind: check.RemoveLink, Root: link, Paths: []string{link}}}}
		}, "resolves again"},
		{"a directory named as a dangling link", func(t *testing.T, w *checktest.World) (string, *check.Result) {
			c := filepath.Join(w.Dir, "modcache")
			checktest.WriteFile(t, filepath.Join(c, "github.com", "x", "go.mod"), "module x\n", 0o444)
			return "modcache.links", &check.Result{Status: check.Fail, Fix: "rm", Remedies: []check.Remedy{{Kind: check.RemoveLink, Root: c, Paths: []string{filepath.Join(c, "github.com")}}}}
		}, "never files or directories"},
		{"a GOENV file that is a link", func(t *testing.T, w *checktest.World) (string, *check.Result) {
			real := filepath.Join(w.Dir, "shared-goenv")
			checktest.WriteFile(t, real, "GO111MODULE=off\n", 0o644)
			if err := os.Symlink(real, w.Getenv("GOENV")); err != nil {
				t.Fatal(err)
			}
			return "env.config", nil
		}, "not a regular file"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w := checktest.New(t)
			id, res := tc.build(t, w)
			world := snapshot(t, w.Dir)
			var o Outcome
			var err error
			if res == nil {
				o, err = Fix(context.Background(), w.Env(), id, false)
			} else {
				res.ID = id
				o, err = FixResult(context.Background(), w.Env(), checktest.Find(t, allChecks(), id), *res, false)
			}
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(o.Refused, tc.want) || len(o.Changes) != 0 || o.Held {
				t.Errorf("refused %q (want it to say %q), changes %q, held %v; before %s %s %v", o.Refused, tc.want, o.Changes, o.Held, o.Before.Status, o.Before.Summary, o.Before.Remedies)
			}
			sameWorld(t, "after a refused fix", world, snapshot(t, w.Dir))
		})
	}
}

// A fix that needs a person is refused with its printed fix, and one that
// follows from another check points there.
func TestManualFixIsRefused(t *testing.T) {
	w := checktest.New(t)
	w.Setenv("GOCACHE=off")
	o, err := Fix(context.Background(), w.Env(), "gocache.writable", false)
	if err != nil {
		t.Fatal(err)
	}
	if o.Before.Status != check.Fail || !strings.Contains(o.Refused, "needs a person") || !strings.Contains(o.Refused, o.Before.Fix) {
		t.Errorf("GOCACHE=off: %s, refused %q", o.Before.Status, o.Refused)
	}
	if _, err := Fix(context.Background(), w.Env(), "no.such-check", true); err == nil || !strings.Contains(err.Error(), "no.such-check") {
		t.Errorf("unknown check: %v", err)
	}
}
