package check

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// maxLinks bounds symbolic link resolution, like the kernel's ELOOP limit.
const maxLinks = 40

// Link is one symbolic link met while resolving a path of the target.
type Link struct {
	Path string // the link, a path of the target
	Dest string // what it says, as readlink prints it
}

// String renders l like `stat -c %N`.
func (l Link) String() string { return fmt.Sprintf("'%s' -> '%s'", l.Path, l.Dest) }

// Resolution is where a path of the target really leads.
type Resolution struct {
	// Real is the real path, when every component exists.
	Real string
	// Links is every link followed, in order, links in the middle of
	// the path included (/usr/local/go -> go1.22.5 in
	// /usr/local/go/bin/go).
	Links []Link
	// Dangling is the link whose destination does not exist.
	Dangling *Link
	// Missing is the first path that does not exist.
	Missing string
	// rest is what of the path was left to walk below Missing.
	rest string
}

// DanglingError is a path that leads through a link whose destination
// does not exist.
type DanglingError struct {
	Link    Link
	Missing string // the path that does not exist
}

func (e *DanglingError) Error() string {
	return fmt.Sprintf("dangling link %s: %s does not exist", e.Link, e.Missing)
}

// Unwrap makes a dangling link an fs.ErrNotExist too.
func (e *DanglingError) Unwrap() error { return fs.ErrNotExist }

// Err is nil for a path that exists, a *DanglingError for one that
// leads through a dangling link, and an fs.ErrNotExist naming the missing
// component otherwise.
func (r Resolution) Err() error {
	switch {
	case r.Dangling != nil:
		return &DanglingError{Link: *r.Dangling, Missing: r.Missing}
	case r.Real == "":
		return fmt.Errorf("%s: %w", r.Missing, fs.ErrNotExist)
	}
	return nil
}

// Resolve follows the symbolic links of p, an absolute path of the target,
// component by component inside Root, as the kernel would for a process
// chrooted there: an absolute link destination is the target's path, not
// this process's, and ".." never climbs above Root. It records each link,
// so that a report can show where a path really goes. A missing component
// is not an error (see Resolution.Err); too many links, a relative p and
// unreadable directories are.
func (t *Target) Resolve(p string) (Resolution, error) {
	if !filepath.IsAbs(p) {
		return Resolution{}, fmt.Errorf("resolve %q: not an absolute path", p)
	}
	n := 0
	return t.resolveFrom("/", p, &n)
}

// resolveFrom resolves p relative to base, a resolved directory; n counts
// the links followed so far.
func (t *Target) resolveFrom(base, p string, n *int) (Resolution, error) {
	var r Resolution
	cur := base
	if filepath.IsAbs(p) {
		cur = "/"
	}
	names := strings.Split(p, "/")
	for i, name := range names {
		switch name {
		case "", ".":
			continue
		case "..":
			cur = filepath.Dir(cur) // cur is resolved, so this is the real parent
			continue
		}
		next := filepath.Join(cur, name)
		fi, err := os.Lstat(t.join(next))
		if errors.Is(err, fs.ErrNotExist) {
			r.Missing, r.rest = next, filepath.Join(names[i+1:]...)
			return r, nil
		}
		if err != nil {
			return r, fmt.Errorf("resolve %s: %w", p, err)
		}
		if fi.Mode()&fs.ModeSymlink == 0 {
			cur = next
			continue
		}
		if *n++; *n > maxLinks {
			return r, fmt.Errorf("resolve %s: too many levels of symbolic links", p)
		}
		dest, err := os.Readlink(t.join(next))
		if err != nil {
			return r, fmt.Errorf("resolve %s: %w", p, err)
		}
		l := Link{Path: next, Dest: dest}
		r.Links = append(r.Links, l)
		sub, err := t.resolveFrom(cur, dest, n)
		r.Links = append(r.Links, sub.Links...)
		if err != nil {
			return r, err
		}
		if sub.Real == "" {
			r.Missing, r.rest = sub.Missing, filepath.Join(append([]string{sub.rest}, names[i+1:]...)...)
			r.Dangling = sub.Dangling
			if r.Dangling == nil {
				r.Dangling = &l
			}
			return r, nil
		}
		cur = sub.Real
	}
	r.Real = cur
	return r, nil
}

// join places p, a path of the target whose links are already resolved,
// under Root.
func (t *Target) join(p string) string {
	if t.Root == "" || t.Root == "/" {
		return p
	}
	return filepath.Join(t.Root, p)
}

// Path turns a path of the target into a path this process can open. With
// a Root other than "/", p's links are resolved inside Root first, so that
// opening the result never leaves the target through an absolute link (a
// path that does not exist yet keeps its missing part, for creating it).
// With Root "/" the kernel resolves them alike, and p is returned as is.
func (t *Target) Path(p string) string {
	if t.Root == "" || t.Root == "/" {
		return p
	}
	if !filepath.IsAbs(p) {
		p = "/" + p
	}
	r, err := t.Resolve(p)
	switch {
	case err != nil:
		return t.join(p) // the open fails the way the kernel would say
	case r.Real != "":
		return t.join(r.Real)
	}
	return t.join(filepath.Join(r.Missing, r.rest))
}

// LinkPath is Path for an operation that must not follow p's last
// component (Lstat, Readlink): only its directory is resolved.
func (t *Target) LinkPath(p string) string {
	if t.Root == "" || t.Root == "/" {
		return p
	}
	return filepath.Join(t.Path(filepath.Dir(p)), filepath.Base(p))
}

// StatN renders p like `stat -c %N`: the link and its destination, or the
// path alone, or that it does not exist.
func (t *Target) StatN(p string) string {
	fi, err := os.Lstat(t.LinkPath(p))
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Sprintf("'%s' (does not exist)", p)
	case err != nil:
		return fmt.Sprintf("'%s' (%v)", p, err)
	case fi.Mode()&fs.ModeSymlink != 0:
		dest, err := os.Readlink(t.LinkPath(p))
		if err != nil {
			return fmt.Sprintf("'%s' -> ? (%v)", p, err)
		}
		return Link{Path: p, Dest: dest}.String()
	}
	return fmt.Sprintf("'%s'", p)
}

// Within reports whether path p is dir or below it, lexically: callers
// resolve both first when links matter.
func Within(p, dir string) bool {
	rel, err := filepath.Rel(dir, p)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, "../")
}
