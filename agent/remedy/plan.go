package remedy

import (
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/gopatrol/gopatrol/agent/check"
	"github.com/gopatrol/gopatrol/internal/atomicfile"
)

// step is one change: what it does in words, the shell command that
// undoes it, and the change itself.
type step struct {
	change string
	undo   string
	apply  func() error
}

// ErrRefused marks a remedy that the plan will not apply: its target is
// not what the check owns, or the machine changed since the check ran.
var ErrRefused = errors.New("refused")

func refuse(format string, a ...any) error {
	return fmt.Errorf("%w: %s", ErrRefused, fmt.Sprintf(format, a...))
}

// maxGrant bounds how many entries GrantWrite hands over; a bigger tree
// is not a cache a fix should walk (and its undo could not be printed).
const maxGrant = 200000

func plan(t *check.Target, rem check.Remedy) ([]step, error) {
	if !filepath.IsAbs(rem.Root) || filepath.Clean(rem.Root) != rem.Root || rem.Root == "/" {
		return nil, refuse("%s %q: the path the check owns must be a clean absolute path below /", rem.Kind, rem.Root)
	}
	switch rem.Kind {
	case check.CreateDir:
		return planCreateDir(t, rem)
	case check.GrantWrite:
		return planGrant(t, rem)
	case check.PruneCache:
		return planPrune(t, rem)
	case check.RemoveLink:
		return planRemoveLink(t, rem)
	case check.SetGoEnv:
		return planSetGoEnv(t, rem)
	}
	return nil, refuse("unknown remedy kind %q", rem.Kind)
}

// noLinks refuses a host path whose existing part leads through a
// symbolic link: the change would land somewhere the check does not own.
func noLinks(host, what string) error {
	real, err := filepath.EvalSymlinks(host)
	if err != nil {
		return refuse("%s %s: %v", what, host, err)
	}
	if real != host {
		return refuse("%s %s leads through a symbolic link to %s: gopatrol changes only the path the check owns, not what a link points at", what, host, real)
	}
	return nil
}

func lookup(t *check.Target, name string) (*check.User, error) {
	if name == "" {
		return nil, refuse("no build user named")
	}
	u, err := t.LookupUser(name)
	if err != nil {
		return nil, refuse("build user %s: %v", name, err)
	}
	return u, nil
}

func planCreateDir(t *check.Target, rem check.Remedy) ([]step, error) {
	u, err := lookup(t, rem.User)
	if err != nil {
		return nil, err
	}
	leaf := t.Path(rem.Root)
	if _, err := os.Lstat(leaf); err == nil {
		return nil, refuse("%s exists already", rem.Root)
	}
	var missing []string // deepest first
	p := leaf
	for {
		_, err := os.Lstat(p)
		if err == nil {
			break
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return nil, refuse("%s: %v", p, err)
		}
		missing = append(missing, p)
		p = filepath.Dir(p)
	}
	if err := noLinks(p, "the existing parent"); err != nil {
		return nil, err
	}
	if fi, err := os.Stat(p); err != nil || !fi.IsDir() {
		return nil, refuse("the existing parent %s is not a directory", p)
	}
	change := fmt.Sprintf("create %s (mode 0755, owner %s)", leaf, u.Name)
	if len(missing) > 1 {
		change += fmt.Sprintf(" and its missing parents %s (owner root)", strings.Join(missing[1:], ", "))
	}
	return []step{{
		change: change,
		// The directory was empty when created; what is in it at undo
		// is what the go command cached there since, which it rebuilds
		// or downloads again.
		undo: strings.TrimSuffix("rm -rf "+quote(leaf)+" && rmdir "+quoteAll(missing[1:]), " && rmdir "),
		apply: func() error {
			for _, d := range slices.Backward(missing) {
				if err := os.Mkdir(d, 0o755); err != nil {
					return err
				}
				if err := os.Chmod(d, 0o755); err != nil { // the umask does not decide
					return err
				}
			}
			return os.Lchown(leaf, int(u.UID), int(u.GID))
		},
	}}, nil
}

// planGrant hands the directory Root and everything in it to the build
// user; the directories named in Paths (and Root) also get the owner's
// write bit, which the go command needs where it creates files.
func planGrant(t *check.Target, rem check.Remedy) ([]step, error) {
	u, err := lookup(t, rem.User)
	if err != nil {
		return nil, err
	}
	root := t.Path(rem.Root)
	fi, err := os.Lstat(root)
	switch {
	case err != nil:
		return nil, refuse("%s: %v", rem.Root, err)
	case fi.Mode()&fs.ModeSymlink != 0:
		dest, _ := os.Readlink(root)
		return nil, refuse("%s is a symbolic link to %s: gopatrol changes only the directory the check owns, not what a link points at", rem.Root, dest)
	case !fi.IsDir():
		return nil, refuse("%s is not a directory", rem.Root)
	}
	if err := noLinks(root, "the cache directory"); err != nil {
		return nil, err
	}
	owners := map[uint32][]string{} // previous owner -> entries handed over
	n := 0
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if n++; n > maxGrant {
			return refuse("%s holds more than %d entries: too many to hand over and undo; chown it yourself", rem.Root, maxGrant)
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		st := info.Sys().(*syscall.Stat_t)
		if st.Uid != u.UID {
			owners[st.Uid] = append(owners[st.Uid], p)
		}
		return nil
	})
	if err != nil {
		if errors.Is(err, ErrRefused) {
			return nil, err
		}
		return nil, refuse("walk %s: %v", rem.Root, err)
	}
	var steps []step
	if len(owners) > 0 {
		var undo []string
		for _, uid := range slices.Sorted(maps.Keys(owners)) {
			ps := owners[uid]
			if len(owners) == 1 && len(ps) == n {
				undo = append(undo, fmt.Sprintf("chown -hR %d %s", uid, quote(root)))
				break
			}
			undo = append(undo, fmt.Sprintf("chown -h %d %s", uid, quoteAll(ps)))
		}
		var changed []string
		for _, ps := range owners {
			changed = append(changed, ps...)
		}
		steps = append(steps, step{
			change: fmt.Sprintf("chown -hR %s %s (%d of %d entries change owner)", u.Name, root, len(changed), n),
			undo:   strings.Join(undo, " && "),
			apply: func() error {
				for _, p := range changed {
					if err := os.Lchown(p, int(u.UID), -1); err != nil {
						return err
					}
				}
				return nil
			},
		})
	}
	for _, d := range slices.Compact(slices.Sorted(slices.Values(append([]string{rem.Root}, rem.Paths...)))) {
		if !inside(d, rem.Root) {
			return nil, refuse("%s is outside %s", d, rem.Root)
		}
		h := t.Path(d)
		fi, err := os.Lstat(h)
		if err != nil || !fi.IsDir() || fi.Mode().Perm()&0o200 != 0 {
			continue
		}
		old := fi.Mode().Perm()
		steps = append(steps, step{
			change: fmt.Sprintf("chmod u+w %s (was %04o)", h, old),
			undo:   fmt.Sprintf("chmod %04o %s", old, quote(h)),
			apply:  func() error { return os.Chmod(h, old|0o200) },
		})
	}
	if len(steps) == 0 {
		return nil, refuse("%s is owned by %s with write permission already: the cause is elsewhere (ACL, security label, mount)", rem.Root, u.Name)
	}
	return steps, nil
}

// planPrune moves damaged build-cache files into a quarantine directory
// inside GOCACHE: out of the go command's way (it rebuilds them), kept
// for undo and for a look at the damage.
func planPrune(t *check.Target, rem check.Remedy) ([]step, error) {
	root := t.Path(rem.Root)
	if fi, err := os.Lstat(root); err != nil || !fi.IsDir() {
		return nil, refuse("GOCACHE %s is not a directory (a symbolic link or missing)", rem.Root)
	}
	if err := noLinks(root, "GOCACHE"); err != nil {
		return nil, err
	}
	if len(rem.Paths) == 0 {
		return nil, refuse("no damaged entries named")
	}
	q := filepath.Join(root, "gopatrol-quarantine-"+strconv.FormatInt(time.Now().Unix(), 10))
	steps := []step{{
		change: "create the quarantine " + q,
		undo:   fmt.Sprintf("find %s -depth -type d -empty -delete", quote(q)),
		apply: func() error {
			if err := os.Mkdir(q, 0o755); err != nil {
				return err
			}
			fi, err := os.Stat(root)
			if err != nil {
				return err
			}
			st := fi.Sys().(*syscall.Stat_t)
			return os.Lchown(q, int(st.Uid), int(st.Gid)) // the cache's owner can clean it up
		},
	}}
	for _, p := range rem.Paths {
		if !inside(p, rem.Root) || p == rem.Root {
			return nil, refuse("%s is outside GOCACHE %s", p, rem.Root)
		}
		h := t.Path(p)
		fi, err := os.Lstat(h)
		if err != nil {
			return nil, refuse("%s: %v", p, err)
		}
		if !fi.Mode().IsRegular() {
			return nil, refuse("%s is not a regular file", p)
		}
		if err := noLinks(h, "the cache entry"); err != nil {
			return nil, err
		}
		rel, _ := filepath.Rel(root, h)
		dst := filepath.Join(q, rel)
		steps = append(steps, step{
			change: fmt.Sprintf("move the damaged cache file %s to %s", h, dst),
			undo:   fmt.Sprintf("mv %s %s", quote(dst), quote(h)),
			apply: func() error {
				if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
					return err
				}
				return os.Rename(h, dst)
			},
		})
	}
	return steps, nil
}

func planRemoveLink(t *check.Target, rem check.Remedy) ([]step, error) {
	if len(rem.Paths) == 0 {
		return nil, refuse("no links named")
	}
	var steps []step
	for _, p := range rem.Paths {
		if !inside(p, rem.Root) {
			return nil, refuse("%s is outside %s", p, rem.Root)
		}
		h := t.Path(p)
		fi, err := os.Lstat(h)
		if err != nil {
			return nil, refuse("%s: %v", p, err)
		}
		if fi.Mode()&fs.ModeSymlink == 0 {
			return nil, refuse("%s is not a symbolic link: gopatrol removes only dangling links, never files or directories", p)
		}
		if _, err := os.Stat(h); err == nil {
			return nil, refuse("%s resolves again (something was installed at its destination): it is no longer dangling", p)
		}
		if err := noLinks(filepath.Dir(h), "the link's directory"); err != nil {
			return nil, err
		}
		dest, err := os.Readlink(h)
		if err != nil {
			return nil, refuse("%s: %v", p, err)
		}
		steps = append(steps, step{
			change: fmt.Sprintf("remove the dangling link %s -> %s", h, dest),
			undo:   fmt.Sprintf("ln -s %s %s", quote(dest), quote(h)),
			apply:  func() error { return os.Remove(h) },
		})
	}
	return steps, nil
}

// planSetGoEnv edits the GOENV file in place, as `go env -w`/`-u` would,
// keeping its owner and mode. It edits the file itself rather than
// running `go env -w`: the go command refuses to rewrite a file holding
// the very bad value being fixed.
func planSetGoEnv(t *check.Target, rem check.Remedy) ([]step, error) {
	if rem.Key == "" || strings.ContainsAny(rem.Key+rem.Value, "\n\r") || strings.Contains(rem.Key, "=") {
		return nil, refuse("GOENV setting %q=%q is not one line", rem.Key, rem.Value)
	}
	file := t.Path(rem.Root)
	fi, err := os.Lstat(file)
	switch {
	case errors.Is(err, fs.ErrNotExist) && rem.Value != "":
		return planNewGoEnv(t, rem, file)
	case err != nil:
		return nil, refuse("GOENV file %s: %v", rem.Root, err)
	case !fi.Mode().IsRegular():
		return nil, refuse("GOENV file %s is not a regular file (a symbolic link?): gopatrol edits only the file itself", rem.Root)
	}
	if err := noLinks(filepath.Dir(file), "the GOENV file's directory"); err != nil {
		return nil, err
	}
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, refuse("read %s: %v", file, err)
	}
	lines := strings.SplitAfter(string(data), "\n")
	at := slices.IndexFunc(lines, func(l string) bool { return strings.HasPrefix(l, rem.Key+"=") })
	if at < 0 && rem.Value == "" {
		return nil, refuse("%s holds no %s line", rem.Root, rem.Key)
	}
	var kept []string
	var old string
	if at >= 0 {
		old = strings.TrimRight(lines[at], "\n")
		kept = slices.Delete(slices.Clone(lines), at, at+1)
	} else {
		kept = lines
	}
	body := strings.Join(kept, "")
	change, undo := "", ""
	if rem.Value != "" {
		if body != "" && !strings.HasSuffix(body, "\n") {
			body += "\n"
		}
		body += rem.Key + "=" + rem.Value + "\n"
		change = fmt.Sprintf("in %s, set %s=%s", file, rem.Key, rem.Value)
		undo = fmt.Sprintf("sed -i '/^%s=/d' %s", rem.Key, quote(file))
	} else {
		change = fmt.Sprintf("in %s, remove the line %s", file, old)
	}
	if old != "" {
		// Put the old line back where it was (line at+1), byte for byte.
		restore := fmt.Sprintf("sed -i %s %s", quote(fmt.Sprintf("%di\\\n%s", at+1, sedText(old))), quote(file))
		if at >= len(kept) || (at == len(kept)-1 && kept[at] == "") {
			restore = fmt.Sprintf("printf '%%s\\n' %s >> %s", quote(old), quote(file))
		}
		undo = strings.TrimPrefix(undo+" && "+restore, " && ")
	}
	st := fi.Sys().(*syscall.Stat_t)
	return []step{{
		change: change,
		undo:   undo,
		apply: func() error {
			if err := atomicfile.WriteFile(file, []byte(body), fi.Mode().Perm()); err != nil {
				return err
			}
			return os.Chown(file, int(st.Uid), int(st.Gid))
		},
	}}, nil
}

// planNewGoEnv writes the first line of a GOENV file that does not exist
// yet, owned by the build user, as their `go env -w` would.
func planNewGoEnv(t *check.Target, rem check.Remedy, file string) ([]step, error) {
	u, err := lookup(t, rem.User)
	if err != nil {
		return nil, err
	}
	dir := filepath.Dir(file)
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		return nil, refuse("the GOENV file's directory %s does not exist: creating directories in a home is for its owner", dir)
	}
	if err := noLinks(dir, "the GOENV file's directory"); err != nil {
		return nil, err
	}
	line := rem.Key + "=" + rem.Value + "\n"
	return []step{{
		change: fmt.Sprintf("create %s (owner %s) holding %s=%s", file, u.Name, rem.Key, rem.Value),
		undo:   "rm " + quote(file),
		apply: func() error {
			f, err := os.OpenFile(file, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
			if err != nil {
				return err
			}
			_, err = f.WriteString(line)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return err
			}
			return os.Chown(file, int(u.UID), int(u.GID))
		},
	}}, nil
}

// inside reports whether p is root or below it.
func inside(p, root string) bool {
	return filepath.IsAbs(p) && filepath.Clean(p) == p && (p == root || strings.HasPrefix(p, root+"/"))
}

// quote makes s one word for /bin/sh.
func quote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

func quoteAll(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = quote(s)
	}
	return strings.Join(q, " ")
}

// sedText escapes a line for sed's i\ command.
func sedText(s string) string { return strings.ReplaceAll(s, `\`, `\\`) }
