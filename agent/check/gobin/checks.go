// Package gobin checks GOBIN, where `go install` puts binaries: that it
// exists or can be made, what its POSIX ACLs say (access and default, shown
// as getfacl prints them), and whether another user can reach and run what
// is installed there. Access is decided in-process with package acl, the
// way the kernel does; as root the verdict is confirmed by running a probe
// binary as nobody.
package gobin

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/gopatrol/gopatrol/agent/check"
	"github.com/gopatrol/gopatrol/agent/check/acl"
	"github.com/gopatrol/gopatrol/agent/check/probe"
)

// Checks returns this package's checks.
func Checks() []check.Check {
	return []check.Check{
		{ID: "gobin.access", Title: "GOBIN is reachable and its binaries runnable by other users", Seed: "2.5", Run: access},
	}
}

// maxBinaries bounds how many installed binaries are judged.
const maxBinaries = 200

// otherUser is whose view of GOBIN is judged: the seed's `sudo -u nobody`.
const otherUser = "nobody"

func access(ctx context.Context, env *check.Env) check.Result {
	t := env.Target
	gobin, source := env.Toolchain.Get("GOBIN"), "go env GOBIN"
	if gobin == "" {
		gp := ""
		for _, p := range filepath.SplitList(env.Toolchain.Get("GOPATH")) {
			if p != "" {
				gp = p
				break
			}
		}
		if gp == "" {
			return check.Failf("neither GOBIN nor GOPATH is set: go install has nowhere to put binaries").
				WithFix("set GOBIN to an absolute directory on PATH: go env -w GOBIN=$HOME/go/bin")
		}
		gobin, source = filepath.Join(gp, "bin"), "GOPATH/bin (GOBIN unset)"
	}
	if !filepath.IsAbs(gobin) {
		return check.Failf("GOBIN %q is not an absolute path; go install refuses it", gobin).With("GOBIN", gobin).
			WithFix("set GOBIN to an absolute path: go env -w GOBIN=$HOME/go/bin")
	}
	names := newNames(t)
	ev := map[string]string{"GOBIN": gobin + " (" + source + ")"}
	result := func(r check.Result) check.Result {
		for k, v := range ev {
			r = r.With(k, v)
		}
		return r
	}

	// The directory go install writes into: GOBIN, or the closest
	// existing parent when go install will create it.
	existing := gobin
	fi, err := os.Stat(t.Path(gobin))
	switch {
	case errors.Is(err, fs.ErrNotExist):
		existing = t.NearestExisting(gobin)
		ev["GOBIN"] += "; does not exist yet, go install creates it in " + existing
	case err != nil:
		return result(check.Errorf("stat GOBIN %s: %v", gobin, err))
	case !fi.IsDir():
		return result(check.Failf("GOBIN %s is not a directory", gobin).
			WithFix("remove the file or point GOBIN at a directory: go env -w GOBIN=$HOME/go/bin"))
	}
	var gobinFile *acl.File
	if existing == gobin {
		if gobinFile, err = acl.Stat(t.Path(gobin)); err != nil {
			return result(check.Errorf("read ACLs of %s: %v", gobin, err))
		}
		gobinFile.Path = gobin
		ev["acl"] = gobinFile.Text(names)
	}

	// go install runs as the build user: it must be able to write there.
	if err := probe.Writable(ctx, t, existing); err != nil {
		var pe *probe.Error
		if !errors.As(err, &pe) {
			return result(check.Errorf("probe %s: %v", existing, err))
		}
		return result(check.Failf("go install cannot write GOBIN: %v", err).With("user", pe.User).
			WithFix("give %s write access to %s (chown %s %s), or set GOBIN to a directory that user owns: go env -w GOBIN=$HOME/go/bin", pe.User, existing, pe.User, existing))
	}

	other, err := t.LookupUser(otherUser)
	if err != nil {
		ev["other user"] = fmt.Sprintf("no user %q on the target: another user's view was not judged", otherUser)
		return result(check.Passf("the build user can install into GOBIN %s", gobin))
	}
	sub := acl.Subject{UID: other.UID, GID: other.GID, Groups: other.Groups}

	// Search permission on every directory from / down to GOBIN, along
	// the path as written and along the resolved one (links are walked
	// through both).
	for _, dir := range chain(t, existing) {
		f, err := acl.Stat(t.Path(dir))
		if err != nil {
			return result(check.Errorf("read ACLs of %s: %v", dir, err))
		}
		f.Path = dir
		if d := f.Decide(sub, acl.Exec); !d.Allowed {
			what := "a parent directory of GOBIN"
			if dir == gobin {
				what = "GOBIN"
			}
			ev["denied at"] = dir
			ev["decision"] = d.Reason(names)
			ev["acl of "+dir] = f.Text(names)
			if home := homeOf(t); home != "" && within(gobin, home) && within(dir, home) {
				// A private home (0700, or 0750 on many distributions)
				// keeps personal tools personal: say so, do not fail.
				return result(check.Warnf("GOBIN %s is inside the private home %s: user %s (and sudo -u other users) cannot run the binaries installed there (%s)", gobin, home, otherUser, d.Reason(names)).
					WithFix("fine for personal tools; for tools others must run, install into a shared directory: GOBIN=/usr/local/bin go install ..."))
			}
			return result(check.Failf("user %s cannot enter %s %s (%s), so it cannot run binaries installed there", otherUser, what, dir, d.Reason(names)).
				WithFix("%s", searchFix(f, d, dir)))
		}
	}
	if gobinFile == nil {
		return result(check.Passf("user %s can reach %s; go install will create GOBIN %s", otherUser, existing, gobin))
	}

	var warnings []string
	fix := ""
	// What go install gives a new binary: it learns the mode the
	// directory's default ACL would give a new file (a probe file
	// created 0777) and renames the binary into place with that mode, so
	// only the user::, mask (or group::) and other:: entries carry over;
	// in a setgid directory it copies instead and the whole default ACL
	// applies.
	if def := gobinFile.Default; def != nil {
		newACL := def
		if gobinFile.Mode&fs.ModeSetgid == 0 {
			newACL = acl.FromMode(modeOf(def))
		}
		installer := uint32(os.Geteuid())
		if t.User != nil {
			installer = t.User.UID
		}
		if d := newACL.Decide(installer, gobinFile.GID, false, sub, acl.Exec); !d.Allowed {
			warnings = append(warnings, fmt.Sprintf("the default ACL of %s gives new binaries %s: user %s could not run what go install puts there", gobin, d.Reason(names), otherUser))
			fix = fmt.Sprintf("let others run new binaries: setfacl -d -m o::rx %s", gobin)
		}
	}
	// The binaries already installed.
	var denied []string
	if ents, err := os.ReadDir(t.Path(gobin)); err == nil {
		for i, e := range ents {
			if i == maxBinaries {
				break
			}
			if !e.Type().IsRegular() {
				continue
			}
			p := filepath.Join(gobin, e.Name())
			f, err := acl.Stat(t.Path(p))
			if err != nil || f.Mode&0o111 == 0 {
				continue // not meant to be run
			}
			if d := f.Decide(sub, acl.Exec); !d.Allowed {
				denied = append(denied, fmt.Sprintf("%s (%s)", p, d.Reason(names)))
			}
		}
	}
	if len(denied) > 0 {
		ev["not runnable by "+otherUser] = strings.Join(denied, "\n")
		warnings = append(warnings, fmt.Sprintf("%d installed binaries are not runnable by %s", len(denied), otherUser))
		if fix == "" {
			fix = fmt.Sprintf("chmod o+rx the binaries listed, e.g. chmod o+rx %s", strings.SplitN(denied[0], " ", 2)[0])
		}
	}

	// As root, confirm by doing: run a probe binary in GOBIN as nobody.
	// This also catches what ACLs cannot show: noexec mounts, LSMs.
	if os.Geteuid() == 0 {
		asOther := *t
		asOther.User = other
		if err := probe.Executable(ctx, &asOther, gobin); err != nil {
			var pe *probe.Error
			if !errors.As(err, &pe) {
				return result(check.Errorf("probe %s: %v", gobin, err))
			}
			ev["probe"] = err.Error()
			return result(check.Failf("user %s cannot run binaries in GOBIN %s: %v", otherUser, gobin, err).
				WithFix("check the mount options of %s (findmnt -T %s: noexec?) and its security labels", gobin, gobin))
		}
		ev["probe"] = "a binary placed in GOBIN ran as " + otherUser
	}
	if len(warnings) > 0 {
		return result(check.Warnf("%s", strings.Join(warnings, "; ")).WithFix("%s", fix))
	}
	return result(check.Passf("user %s can enter GOBIN %s and run binaries there", otherUser, gobin))
}

// searchFix words the fix for a directory the other user cannot search.
func searchFix(f *acl.File, d acl.Decision, dir string) string {
	switch {
	case d.Masked || d.MaskIgnored:
		return fmt.Sprintf("widen the mask that takes it away: setfacl -m m::rx %s", dir)
	case f.Access != nil:
		return fmt.Sprintf("grant search permission: setfacl -m u:%s:rx %s (or chmod o+x %s)", otherUser, dir, dir)
	}
	return fmt.Sprintf("grant search permission: chmod o+x %s, or setfacl -m u:%s:rx %s", dir, otherUser, dir)
}

// modeOf is the mode a file created 0777 gets from default ACL def.
func modeOf(def acl.ACL) os.FileMode {
	var user, group, mask, other acl.Perm
	hasMask := false
	for _, e := range def {
		switch e.Tag {
		case acl.UserObj:
			user = e.Perm
		case acl.GroupObj:
			group = e.Perm
		case acl.Mask:
			mask, hasMask = e.Perm, true
		case acl.Other:
			other = e.Perm
		}
	}
	if hasMask {
		group = mask
	}
	return os.FileMode(user)<<6 | os.FileMode(group)<<3 | os.FileMode(other)
}

// chain lists the directories from / down to dir, first along the path as
// written, then along its resolved form when links make it differ.
func chain(t *check.Target, dir string) []string {
	var out []string
	seen := map[string]bool{}
	add := func(p string) {
		var parts []string
		for q := filepath.Clean(p); ; q = filepath.Dir(q) {
			parts = append(parts, q)
			if q == "/" {
				break
			}
		}
		for i := len(parts) - 1; i >= 0; i-- {
			if !seen[parts[i]] {
				seen[parts[i]] = true
				out = append(out, parts[i])
			}
		}
	}
	add(dir)
	if real, err := filepath.EvalSymlinks(t.Path(dir)); err == nil {
		if root := t.Path("/"); root != "/" {
			real = "/" + strings.TrimPrefix(strings.TrimPrefix(real, root), "/")
		}
		add(real)
	}
	return out
}

func homeOf(t *check.Target) string {
	if t.User == nil || t.User.Home == "" || t.User.Home == "/" {
		return ""
	}
	return filepath.Clean(t.User.Home)
}

// within reports whether p is dir or below it.
func within(p, dir string) bool {
	rel, err := filepath.Rel(dir, p)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, "../")
}

// newNames resolves ids with the target's own /etc/passwd and /etc/group,
// as getfacl would on that machine.
func newNames(t *check.Target) acl.Names {
	users := readIDs(t.Path("/etc/passwd"))
	groups := readIDs(t.Path("/etc/group"))
	return acl.Names{
		User:  func(id uint32) (string, bool) { s, ok := users[id]; return s, ok },
		Group: func(id uint32) (string, bool) { s, ok := groups[id]; return s, ok },
	}
}

// readIDs maps the ids of a passwd or group file (name:x:id:...) to names.
func readIDs(path string) map[uint32]string {
	m := map[uint32]string{}
	f, err := os.Open(path)
	if err != nil {
		return m
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.SplitN(sc.Text(), ":", 4)
		if len(fs) < 3 {
			continue
		}
		if id, err := strconv.ParseUint(fs[2], 10, 32); err == nil {
			if _, dup := m[uint32(id)]; !dup {
				m[uint32(id)] = fs[0]
			}
		}
	}
	return m
}
