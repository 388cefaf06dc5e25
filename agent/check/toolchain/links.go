package toolchain

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/gopatrol/gopatrol/agent/check"
)

// hop is one symbolic link met while resolving a path.
type hop struct {
	Link   string // the link, a path of the target
	Target string // what it says, as readlink prints it
}

// String is the link as `stat -c %N` prints it.
func (h hop) String() string { return fmt.Sprintf("'%s' -> '%s'", h.Link, h.Target) }

// danglingError is a link whose target does not exist.
type danglingError struct {
	Hop     hop
	Missing string // the path that does not exist
}

func (e *danglingError) Error() string {
	return fmt.Sprintf("dangling link %s: %s does not exist", e.Hop, e.Missing)
}

// resolve follows p component by component in the target's namespace, like
// filepath.EvalSymlinks, and records every link on the way, including links
// in the middle of the path (/usr/local/go -> go1.22.5 in
// /usr/local/go/bin/go). An absolute link target stays inside the target's
// root, as it would for a process chrooted there.
func resolve(t *check.Target, p string) (real string, hops []hop, err error) {
	if !filepath.IsAbs(p) {
		return "", nil, fmt.Errorf("%s is not an absolute path", p)
	}
	rest := strings.Split(strings.TrimPrefix(filepath.Clean(p), "/"), "/")
	cur := "/"
	var last *hop
	for n := 0; len(rest) > 0; {
		c := rest[0]
		rest = rest[1:]
		if c == "" || c == "." {
			continue
		}
		next := filepath.Join(cur, c) // cur is resolved, so ".." is lexical here
		fi, err := os.Lstat(t.Path(next))
		if err != nil {
			if last != nil && errors.Is(err, os.ErrNotExist) {
				return "", hops, &danglingError{Hop: *last, Missing: next}
			}
			return "", hops, err
		}
		if fi.Mode()&os.ModeSymlink == 0 {
			cur = next
			continue
		}
		if n++; n > 255 {
			return "", hops, fmt.Errorf("%s: too many levels of symbolic links", p)
		}
		target, err := os.Readlink(t.Path(next))
		if err != nil {
			return "", hops, err
		}
		h := hop{Link: next, Target: target}
		hops = append(hops, h)
		last = &hops[len(hops)-1]
		var base string
		if filepath.IsAbs(target) {
			base = target
		} else {
			base = filepath.Join(cur, target)
		}
		rest = append(strings.Split(strings.TrimPrefix(filepath.Clean(base), "/"), "/"), rest...)
		cur = "/"
	}
	return cur, hops, nil
}

// Resolve returns the real path of p in the target's namespace, for the
// other check packages; a dangling link is an error naming the link.
func Resolve(t *check.Target, p string) (string, error) {
	real, _, err := resolve(t, p)
	return real, err
}
