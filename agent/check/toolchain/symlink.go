package toolchain

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/gopatrol/gopatrol/agent/check"
)

var gorootSymlink = check.Check{
	ID:     "goroot.symlink",
	Title:  "the links from the go on PATH to GOROOT resolve and agree",
	Source: "2.1",
	Run:    runGorootSymlink,
}

// versionedDir matches an installation directory named for its version,
// like /usr/local/go1.22.5.
var versionedDir = regexp.MustCompile(`^go1(\.\d+)*([a-z]+\d*)?$`)

func runGorootSymlink(ctx context.Context, env *check.Env) check.Result {
	t, tc := env.Target, env.Toolchain
	goroot := tc.Get("GOROOT")
	ev := map[string]string{}
	var fs []check.Finding

	// Start from the go a shell would run: the first on PATH that exists,
	// plus any dangling one before it (a broken link in the chain).
	entries, _ := scanPath(t)
	if !slices.ContainsFunc(entries, func(e pathEntry) bool { return e.Path == tc.Go }) {
		entries = nil // --go names a go elsewhere: follow that one
	}
	start := tc.Go
	for _, e := range entries {
		if e.Err != nil {
			r, _ := t.Resolve(e.Path)
			addHops(ev, "chain."+e.Path, r.Links)
			if d := r.Dangling; d != nil {
				ev["dangling"] = d.String()
				fs = append(fs, check.Finding{Status: check.Fail, Summary: fmt.Sprintf("%s on PATH leads to a dangling link: %s points to %s, which does not exist", e.Path, d.Path, r.Missing), Fix: fmt.Sprintf("ln -sfn <the Go root you want> %s, or remove %s", d.Path, e.Path)})
			}
			continue
		}
		if !e.NoExec {
			start = e.Path
			break
		}
	}

	goReal, err := resolveInto(t, ev, "go", start)
	if err != nil {
		return check.Combine("", append(fs, danglingFinding(start, err)), ev)
	}
	if w, ok := workingWrapper(t, tc, readBinInfo(t, start)); ok {
		// A wrapper script lives anywhere; the go it runs must be
		// GOROOT's.
		ev["go.wrapper"] = start + " runs " + w.Path
		if goReal, err = resolveInto(t, ev, "go.wrapped", w.Path); err != nil {
			return check.Combine("", append(fs, danglingFinding(w.Path, err)), ev)
		}
	}
	rootReal, err := resolveInto(t, ev, "GOROOT", goroot)
	if err != nil {
		return check.Combine("", append(fs, danglingFinding(goroot, err)), ev)
	}

	// The go on PATH must be GOROOT's own go, after resolving links.
	binRoot := filepath.Dir(filepath.Dir(goReal))
	if filepath.Base(filepath.Dir(goReal)) != "bin" {
		binRoot = filepath.Dir(binRoot) // GOROOT/bin/GOOS_GOARCH/go
	}
	if !sameDir(t, binRoot, rootReal) {
		goVer, _ := readVersionFile(t, binRoot)
		rootVer, _ := readVersionFile(t, rootReal)
		msg := fmt.Sprintf("the go on PATH, %s, lives in %s (%s) but GOROOT is %s (%s)", start, binRoot, orNone(goVer), goroot, orNone(rootVer))
		if goroot != rootReal {
			msg += " -> " + rootReal
		}
		fs = append(fs, check.Finding{Status: check.Fail, Summary: msg, Fix: fmt.Sprintf("put %s first on PATH, or unset GOROOT so that %s uses its own root %s", filepath.Join(goroot, "bin"), start, binRoot)})
	}

	// A PATH entry that names a versioned directory while an unversioned
	// link next to it points elsewhere (PATH=/usr/local/go1.22.5/bin,
	// /usr/local/go -> go1.23.0): upgrades via the link never reach PATH.
	pathRoot := filepath.Dir(filepath.Dir(start))
	if versionedDir.MatchString(filepath.Base(pathRoot)) {
		link := filepath.Join(filepath.Dir(pathRoot), "go")
		if fi, err := os.Lstat(t.LinkPath(link)); err == nil && fi.Mode()&os.ModeSymlink != 0 {
			target, _ := os.Readlink(t.LinkPath(link))
			if lr, err := t.Resolve(link); err == nil && lr.Real != "" && !sameDir(t, lr.Real, pathRoot) {
				ev["link"] = check.Link{Path: link, Dest: target}.String()
				fs = append(fs, check.Finding{Status: check.Warn, Summary: fmt.Sprintf("PATH names the versioned %s while %s points to %s: updating the link does not change the go you run", filepath.Dir(start), link, target), Fix: pathInstead(t, filepath.Dir(start), filepath.Join(link, "bin"))})
			}
		}
	}
	return check.Combine(fmt.Sprintf("%s resolves to %s, GOROOT's own go", start, goReal), fs, ev)
}

// pathInstead is the export that puts to on PATH where from is, the rest
// of PATH kept in its order. A PATH with blanks or quotes would not survive
// an unquoted export: then the person edits it where they set it.
func pathInstead(t *check.Target, from, to string) string {
	entries := filepath.SplitList(t.Getenv("PATH"))
	for i, e := range entries {
		if filepath.Clean(e) == from {
			entries[i] = to
		}
	}
	path := strings.Join(entries, string(filepath.ListSeparator))
	if strings.ContainsAny(path, " \t'\"$`\\") {
		return fmt.Sprintf("put %s on PATH instead of %s in <the shell profile or unit that sets PATH>", to, from)
	}
	return fmt.Sprintf("export PATH=%s (%s instead of %s; where PATH is set for good too)", path, to, from)
}

func addHops(ev map[string]string, prefix string, links []check.Link) {
	for i, l := range links {
		ev[prefix+".link"+strconv.Itoa(i+1)] = l.String()
	}
}

// resolveInto resolves p on the target and records it, its links and its
// real path as evidence under name.
func resolveInto(t *check.Target, ev map[string]string, name, p string) (string, error) {
	r, err := t.Resolve(p)
	addHops(ev, name, r.Links)
	ev[name] = p
	if err == nil {
		err = r.Err()
	}
	if err != nil {
		return "", err
	}
	ev[name+".real"] = r.Real
	return r.Real, nil
}

func danglingFinding(p string, err error) check.Finding {
	var de *check.DanglingError
	if errors.As(err, &de) {
		return check.Finding{Status: check.Fail, Summary: fmt.Sprintf("%s cannot be resolved: %s points to %s, which does not exist", p, de.Link.Path, de.Missing), Fix: fmt.Sprintf("ln -sfn <the Go root you want> %s", de.Link.Path)}
	}
	return check.Finding{Status: check.Fail, Summary: fmt.Sprintf("%s cannot be resolved: %v", p, err), Fix: "reinstall Go or fix the path " + p}
}

func orNone(v string) string {
	if v == "" {
		return "no VERSION"
	}
	return v
}
