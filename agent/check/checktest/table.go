package checktest

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/gopatrol/gopatrol/agent/check"
)

// Case is one world of a table test: Setup breaks one thing in a fresh
// world and returns what the result must name; the check ID must then
// report Want.
type Case struct {
	Name  string
	ID    string
	Root  bool // the world needs root (mounts, other users); skipped without
	Setup func(t *testing.T, w *World) []string
	Want  check.Status
	// After, when set, asserts more about the result or the world.
	After func(t *testing.T, w *World, res check.Result)
}

// RunCases runs every case as a subtest in its own world, through the real
// runner, and checks it with Expect. Then the printed fix of every failed
// or warned case is applied in its world and the check run again
// (FixRerun): it must pass, or the fix must say it cannot be automated
// (issue 14's bar: every printed fix is tested).
func RunCases(t *testing.T, checks []check.Check, cases []Case) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.Name, func(t *testing.T) {
			if c.Root {
				RequireRoot(t)
			}
			w := New(t)
			names := c.Setup(t, w)
			res := w.Run(Find(t, checks, c.ID))
			Expect(t, res, c.Want, names...)
			if c.After != nil {
				c.After(t, w, res)
			}
			FixRerun(t, w, Find(t, checks, c.ID), res)
		})
	}
}

// Mkdir creates p and its parents and gives p exactly mode (the umask
// does not apply).
func Mkdir(t testing.TB, p string, mode os.FileMode) string {
	t.Helper()
	if err := os.MkdirAll(p, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
	return p
}

// Symlink makes link point to target, creating link's directory.
func Symlink(t testing.TB, target, link string) string {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(link), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	return link
}
