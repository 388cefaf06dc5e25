package cache

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/gopatrol/gopatrol/agent/check"
)

// maxLinks bounds symlink resolution, like the kernel's ELOOP limit.
const maxLinks = 40

// link is one symbolic link and what it points to.
type link struct {
	Path, Target string
}

// String renders l like `stat -c %N`.
func (l link) String() string { return fmt.Sprintf("'%s' -> '%s'", l.Path, l.Target) }

// resolution is what resolving a path on the target found.
type resolution struct {
	Resolved string // the real path, when it exists
	Links    []link // every link followed, in order
	Dangling *link  // the link whose target does not exist
	Missing  string // the first component that does not exist (not a link)
}

// resolve follows p's symlinks component by component inside the target's
// root (an absolute link target is the target's path, not this process's),
// recording each link so that a report can show where a path really goes.
func resolve(t *check.Target, p string) (resolution, error) {
	n := 0
	return resolveN(t, p, &n)
}

func resolveN(t *check.Target, p string, n *int) (resolution, error) {
	var r resolution
	cur := "/"
	for _, name := range strings.Split(strings.TrimPrefix(filepath.Clean(p), "/"), "/") {
		switch name {
		case "", ".":
			continue
		case "..":
			cur = filepath.Dir(cur)
			continue
		}
		next := filepath.Join(cur, name)
		fi, err := os.Lstat(t.Path(next))
		if errors.Is(err, fs.ErrNotExist) {
			r.Missing = next
			return r, nil
		}
		if err != nil {
			return r, err
		}
		if fi.Mode()&fs.ModeSymlink == 0 {
			cur = next
			continue
		}
		if *n++; *n > maxLinks {
			return r, fmt.Errorf("resolve %s: too many levels of symbolic links", p)
		}
		dest, err := os.Readlink(t.Path(next))
		if err != nil {
			return r, err
		}
		l := link{next, dest}
		r.Links = append(r.Links, l)
		if !filepath.IsAbs(dest) {
			dest = filepath.Join(cur, dest)
		}
		sub, err := resolveN(t, dest, n)
		if err != nil {
			return r, err
		}
		r.Links = append(r.Links, sub.Links...)
		switch {
		case sub.Dangling != nil:
			r.Dangling = sub.Dangling
			return r, nil
		case sub.Missing != "":
			r.Dangling = &l
			return r, nil
		}
		cur = sub.Resolved
	}
	r.Resolved = cur
	return r, nil
}

// statN renders p like `stat -c %N`: the link and its target, or the path
// alone, or that it does not exist.
func statN(t *check.Target, p string) string {
	fi, err := os.Lstat(t.Path(p))
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Sprintf("'%s' (does not exist)", p)
	case err != nil:
		return fmt.Sprintf("'%s' (%v)", p, err)
	case fi.Mode()&fs.ModeSymlink != 0:
		dest, err := os.Readlink(t.Path(p))
		if err != nil {
			return fmt.Sprintf("'%s' -> ? (%v)", p, err)
		}
		return link{p, dest}.String()
	}
	return fmt.Sprintf("'%s'", p)
}
