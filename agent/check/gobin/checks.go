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
	"github.com/gopatrol/gopatrol/agent/check/access"
	"github.com/gopatrol/gopatrol/agent/check/acl"
)

// Checks returns this package's checks.
func Checks() []check.Check {
	return []check.Check{
		{ID: "gobin.access", Title: "GOBIN is reachable and its binaries runnable by other users", Source: "2.5", Run: runAccess},
	}
}

// maxBinaries bounds how many installed binaries are judged.
const maxBinaries = 200

// otherUser is whose view of GOBIN is judged: the source's `sudo -u nobody`.
const otherUser = "nobody"

// gobinView is what runAccess learns step by step: each step either adds
// evidence and warnings, or ends the check with a result.
type gobinView struct {
	t        *check.Target
	names    acl.Names
	gobin    string
	existing string    // GOBIN, or its nearest existing parent
	file     *acl.File // GOBIN's ACLs, nil when it does not exist yet
	other    *check.User
	sub      acl.Subject
	ev       map[string]string
	warnings []string
	fix      string
}

func (v *gobinView) result(r check.Result) check.Result {
	for k, val := range v.ev {
		r = r.With(k, val)
	}
	return r
}

func runAccess(ctx context.Context, env *check.Env) check.Result {
	gobin, source := env.Toolchain.Get("GOBIN"), "go env GOBIN"
	if gobin == "" {
		gp := check.FirstGOPATH(env.Toolchain.Get("GOPATH"))
		if gp == "" {
			return check.Failf("neither GOBIN nor GOPATH is set: go install has nowhere to put binaries").
				WithFix("set GOBIN to an absolute directory on PATH: %s", setGOBIN(env.Target))
		}
		gobin, source = filepath.Join(gp, "bin"), "GOPATH/bin (GOBIN unset)"
	}
	if !filepath.IsAbs(gobin) {
		return check.Failf("GOBIN %q is not an absolute path; go install refuses it", gobin).With("GOBIN", gobin).
			WithFix("set GOBIN to an absolute path: %s", setGOBIN(env.Target))
	}
	v := &gobinView{t: env.Target, names: newNames(env.Target), gobin: gobin, existing: gobin,
		ev: map[string]string{"GOBIN": gobin + " (" + source + ")"}}
	if r, done := v.locate(); done {
		return v.result(r)
	}
	// go install runs as the build user: it must be able to write there.
	if err := access.Writable(ctx, v.t, v.existing); err != nil {
		var pe *access.Error
		if !errors.As(err, &pe) {
			return v.result(check.Errorf("probe %s: %v", v.existing, err))
		}
		return v.result(check.Failf("go install cannot write GOBIN: %v", err).With("user", pe.User).
			WithFix("give %s write access: chown %s %s, or set GOBIN to a directory that user owns (%s)", pe.User, pe.User, v.existing, setGOBIN(v.t)))
	}
	other, err := v.t.LookupUser(otherUser)
	if err != nil {
		v.ev["other user"] = fmt.Sprintf("no user %q on the target: another user's view was not judged", otherUser)
		return v.result(check.Passf("the build user can install into GOBIN %s", gobin))
	}
	v.other, v.sub = other, acl.Subject{UID: other.UID, GID: other.GID, Groups: other.Groups}
	if r, done := v.searchPath(); done {
		return v.result(r)
	}
	if v.file == nil {
		return v.result(check.Passf("user %s can reach %s; go install will create GOBIN %s", otherUser, v.existing, gobin))
	}
	v.judgeDefaultACL()
	v.judgeInstalled()
	if r, done := v.confirmByRunning(ctx); done {
		return v.result(r)
	}
	if len(v.warnings) > 0 {
		return v.result(check.Warnf("%s", strings.Join(v.warnings, "; ")).WithFix("%s", v.fix))
	}
	return v.result(check.Passf("user %s can enter GOBIN %s and run binaries there", otherUser, gobin))
}

// locate finds the directory go install writes into: GOBIN, or the
// closest existing parent when go install will create it, and reads
// GOBIN's ACLs.
func (v *gobinView) locate() (check.Result, bool) {
	fi, err := os.Stat(v.t.Path(v.gobin))
	switch {
	case errors.Is(err, fs.ErrNotExist):
		v.existing = v.t.NearestExisting(v.gobin)
		v.ev["GOBIN"] += "; does not exist yet, go install creates it in " + v.existing
		return check.Result{}, false
	case err != nil:
		return check.Errorf("stat GOBIN %s: %v", v.gobin, err), true
	case !fi.IsDir():
		return check.Failf("GOBIN %s is not a directory", v.gobin).
			WithFix("point GOBIN at a directory: %s, or remove the file %s", setGOBIN(v.t), v.gobin), true
	}
	if v.file, err = acl.Stat(v.t.Path(v.gobin)); err != nil {
		return check.Errorf("read ACLs of %s: %v", v.gobin, err), true
	}
	v.file.Path = v.gobin
	v.ev["acl"] = v.file.Text(v.names)
	return check.Result{}, false
}

// searchPath checks search permission for the other user on every
// directory from / down to GOBIN, along the path as written and along the
// resolved one (links are walked through both).
func (v *gobinView) searchPath() (check.Result, bool) {
	for _, dir := range chain(v.t, v.existing) {
		f, err := acl.Stat(v.t.Path(dir))
		if err != nil {
			return check.Errorf("read ACLs of %s: %v", dir, err), true
		}
		f.Path = dir
		d := f.Decide(v.sub, acl.Exec)
		if d.Allowed {
			continue
		}
		what := "a parent directory of GOBIN"
		if dir == v.gobin {
			what = "GOBIN"
		}
		v.ev["denied at"] = dir
		v.ev["decision"] = d.Reason(v.names)
		v.ev["acl of "+dir] = f.Text(v.names)
		if home := homeOf(v.t); home != "" && check.Within(v.gobin, home) && check.Within(dir, home) {
			// A private home (0700, or 0750 on many distributions)
			// keeps personal tools personal: say so, do not fail.
			return check.Warnf("GOBIN %s is inside the private home %s: user %s (and sudo -u other users) cannot run the binaries installed there (%s)", v.gobin, home, otherUser, d.Reason(v.names)).
				WithFix("fine for personal tools; for tools others must run, install into a shared directory: GOBIN=/usr/local/bin go install <the tool's package>"), true
		}
		return check.Failf("user %s cannot enter %s %s (%s), so it cannot run binaries installed there", otherUser, what, dir, d.Reason(v.names)).
			WithFix("%s", searchFix(f, d, dir)), true
	}
	return check.Result{}, false
}

// judgeDefaultACL warns when new binaries would not be runnable. What go
// install gives a new binary: it learns the mode the directory's default
// ACL would give a new file (a probe file created 0777) and renames the
// binary into place with that mode, so only the user::, mask (or group::)
// and other:: entries carry over; in a setgid directory it copies instead
// and the whole default ACL applies.
func (v *gobinView) judgeDefaultACL() {
	def := v.file.Default
	if def == nil {
		return
	}
	newACL := def
	if v.file.Mode&fs.ModeSetgid == 0 {
		newACL = acl.FromMode(modeOf(def))
	}
	installer := uint32(os.Geteuid())
	if v.t.User != nil {
		installer = v.t.User.UID
	}
	if d := newACL.Decide(installer, v.file.GID, false, v.sub, acl.Exec); !d.Allowed {
		v.warnings = append(v.warnings, fmt.Sprintf("the default ACL of %s gives new binaries %s: user %s could not run what go install puts there", v.gobin, d.Reason(v.names), otherUser))
		v.fix = fmt.Sprintf("let others run new binaries: setfacl -d -m o::rx %s", v.gobin)
	}
}

// judgeInstalled warns about binaries already installed that the other
// user cannot run.
func (v *gobinView) judgeInstalled() {
	var denied []string
	if ents, err := os.ReadDir(v.t.Path(v.gobin)); err == nil {
		for i, e := range ents {
			if i == maxBinaries {
				break
			}
			if !e.Type().IsRegular() {
				continue
			}
			p := filepath.Join(v.gobin, e.Name())
			f, err := acl.Stat(v.t.Path(p))
			if err != nil || f.Mode&0o111 == 0 {
				continue // not meant to be run
			}
			if d := f.Decide(v.sub, acl.Exec); !d.Allowed {
				denied = append(denied, fmt.Sprintf("%s (%s)", p, d.Reason(v.names)))
			}
		}
	}
	if len(denied) == 0 {
		return
	}
	v.ev["not runnable by "+otherUser] = strings.Join(denied, "\n")
	v.warnings = append(v.warnings, fmt.Sprintf("%d installed binaries are not runnable by %s", len(denied), otherUser))
	if v.fix == "" {
		var paths []string
		for _, d := range denied {
			paths = append(paths, strings.SplitN(d, " ", 2)[0])
		}
		v.fix = "let others run them: chmod o+rx " + strings.Join(paths, " ")
	}
}

// confirmByRunning, as root, confirms by doing: it runs a probe binary in
// GOBIN as the other user. This also catches what ACLs cannot show:
// noexec mounts, LSMs.
func (v *gobinView) confirmByRunning(ctx context.Context) (check.Result, bool) {
	if os.Geteuid() != 0 {
		return check.Result{}, false
	}
	asOther := *v.t
	asOther.User = v.other
	if err := access.Executable(ctx, &asOther, v.gobin); err != nil {
		var pe *access.Error
		if !errors.As(err, &pe) {
			return check.Errorf("probe %s: %v", v.gobin, err), true
		}
		v.ev["probe"] = err.Error()
		return check.Failf("user %s cannot run binaries in GOBIN %s: %v", otherUser, v.gobin, err).
			WithFix("remount <the filesystem of %s> with exec (findmnt -T %s shows its options), or point GOBIN at a directory on an exec mount (%s)", v.gobin, v.gobin, setGOBIN(v.t)), true
	}
	v.ev["probe"] = "a binary placed in GOBIN ran as " + otherUser
	return check.Result{}, false
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
	if r, err := t.Resolve(dir); err == nil && r.Real != "" {
		add(r.Real)
	}
	return out
}

func homeOf(t *check.Target) string {
	if t.User == nil || t.User.Home == "" || t.User.Home == "/" {
		return ""
	}
	return filepath.Clean(t.User.Home)
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

// setGOBIN is the command that moves GOBIN to the go command's default
// place: go env -w cannot override GOBIN set in the environment.
func setGOBIN(t *check.Target) string {
	if _, ok := t.LookupEnv("GOBIN"); ok {
		return "export GOBIN=$HOME/go/bin"
	}
	return "go env -w GOBIN=$HOME/go/bin"
}
