package seclabel

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/opencontainers/selinux/go-selinux"
	"golang.org/x/sys/unix"

	"github.com/gopatrol/gopatrol/agent/check"
)

// Checks returns this package's checks.
func Checks() []check.Check {
	return []check.Check{{
		ID:     "gocache.selinux",
		Title:  "GOCACHE and GOMODCACHE carry SELinux labels that builds can write",
		Source: "3.3",
		Run:    runSELinux,
	}}
}

// Label types as the targeted policy (Fedora, RHEL) treats them for the
// domains builds run in: confined users (user_t, staff_t) and containers
// (container_t). The lists are deliberately short; a type on neither is
// reported as unknown.
var (
	// writableTypes are types those domains may create files under.
	writableTypes = map[string]bool{
		"user_home_t": true, "user_home_dir_t": true, "cache_home_t": true,
		"xdg_cache_t": true, "container_file_t": true, "svirt_sandbox_file_t": true,
		"tmp_t": true, "user_tmp_t": true, "container_var_lib_t": true,
	}
	// deniedTypes are types they may not write: tmpfs_t is the source's
	// case (a GOCACHE on /dev/shm), the others are system files.
	deniedTypes = map[string]string{
		"tmpfs_t":     "the generic type of tmpfs mounts such as /dev/shm",
		"etc_t":       "system configuration",
		"usr_t":       "system files under /usr",
		"bin_t":       "system executables",
		"lib_t":       "system libraries",
		"root_t":      "the root directory",
		"var_t":       "generic /var",
		"default_t":   "a path no policy rule covers",
		"unlabeled_t": "a file that lost its label",
		"proc_t":      "procfs",
		"sysfs_t":     "sysfs",
		"iso9660_t":   "read-only media",
	}
)

// labelType is the type field of user:role:type:level.
func labelType(label string) string {
	f := strings.SplitN(label, ":", 4)
	if len(f) < 3 {
		return ""
	}
	return f[2]
}

// cacheDir is what the check found about one cache directory.
type cacheDir struct {
	Name, Path string
	Probed     string // the path whose label was read: Path or its nearest existing parent
	Label      string
	Mount      *check.Mount
}

func runSELinux(ctx context.Context, env *check.Env) check.Result {
	mode, domain := selinuxState()
	dirs, errs, mountErr := cacheDirs(env)
	var res check.Result
	switch {
	case len(dirs) == 0 && len(errs) > 0:
		res = check.Errorf("could not read the caches' labels: %s", strings.Join(errs, "; "))
	case len(dirs) == 0:
		res = check.Skipf("neither GOCACHE nor GOMODCACHE is an absolute path to look at (env.consistency reports why)")
	default:
		res = verdict(env.Target, mode, domain, dirs)
	}
	res = res.With("selinux", mode)
	if domain != "" {
		res = res.With("domain", domain)
	}
	for _, d := range dirs {
		res = d.evidence(res)
	}
	if mountErr != nil {
		res = res.With("mountinfo_error", mountErr.Error())
	}
	for i, e := range errs {
		res = res.With(fmt.Sprintf("error.%d", i), e)
	}
	return res
}

// selinuxState is this machine's SELinux mode (enforcing, permissive or
// disabled) and, unless disabled, the type of the domain gopatrol runs in.
func selinuxState() (mode, domain string) {
	mode = "disabled"
	if selinux.GetEnabled() {
		switch selinux.EnforceMode() {
		case selinux.Enforcing:
			mode = "enforcing"
		case selinux.Permissive:
			mode = "permissive"
		}
	}
	if mode != "disabled" {
		if l, err := selinux.CurrentLabel(); err == nil {
			domain = labelType(l)
		}
	}
	return mode, domain
}

// cacheDirs reads the label and mount of GOCACHE and GOMODCACHE (or of
// their nearest existing parents).
func cacheDirs(env *check.Env) (dirs []cacheDir, errs []string, mountErr error) {
	mounts, mountErr := check.ReadMountinfo(env.Target.Path("/proc/self/mountinfo"))
	for _, name := range []string{"GOCACHE", "GOMODCACHE"} {
		p := env.Toolchain.Get(name)
		if p == "" || p == "off" || !filepath.IsAbs(p) {
			continue // env.consistency and gocache.writable report these
		}
		d, err := inspect(env.Target, name, p)
		if err != nil {
			errs = append(errs, err.Error())
			continue
		}
		if mountErr == nil {
			d.Mount = findMount(mounts, env.Target.Path(d.Probed))
		}
		dirs = append(dirs, d)
	}
	return dirs, errs, mountErr
}

// verdict judges the caches' labels under the SELinux mode: a type that
// confined build domains cannot write fails where SELinux enforces, and
// warns where it does not yet.
func verdict(t *check.Target, mode, domain string, dirs []cacheDir) check.Result {
	var bad, unknown []cacheDir
	labelled := 0
	for _, d := range dirs {
		if d.Label == "" {
			continue
		}
		labelled++
		typ := labelType(d.Label)
		if _, ok := deniedTypes[typ]; ok {
			bad = append(bad, d)
		} else if !writableTypes[typ] {
			unknown = append(unknown, d)
		}
	}
	switch {
	case len(bad) > 0:
		d := bad[0]
		typ := labelType(d.Label)
		what := fmt.Sprintf("%s %s is labelled %s, %s, which confined build domains cannot write", d.Name, d.Path, typ, deniedTypes[typ])
		var res check.Result
		switch {
		case mode == "enforcing" && domain == "unconfined_t":
			res = check.Warnf("%s; this session is unconfined_t and may write it, but containers and confined users will be denied", what)
		case mode == "enforcing":
			res = check.Failf("%s: with SELinux enforcing, go build is denied create_dir/write there", what)
		case mode == "permissive":
			res = check.Warnf("%s: SELinux is permissive, so the denials are only logged, and builds will fail once it enforces", what)
		default:
			res = check.Warnf("%s: SELinux is disabled, so nothing enforces the label now, but builds will fail on a host that enforces it", what)
		}
		return res.WithFix("%s", relabelFix(t, d))
	case len(unknown) > 0 && mode == "enforcing":
		d := unknown[0]
		return check.Warnf("%s %s is labelled %s, a type not known to be writable by build domains", d.Name, d.Path, labelType(d.Label)).
			WithFix("look for denials with `ausearch -m AVC -ts recent | grep %s`; if there are any, %s", labelType(d.Label), relabelFix(t, d))
	case labelled == 0 && mode == "disabled":
		return check.Skipf("SELinux is disabled and GOCACHE and GOMODCACHE carry no SELinux labels")
	case mode == "disabled":
		return check.Passf("SELinux is disabled: the caches' labels are writable types, and nothing enforces them anyway")
	}
	return check.Passf("SELinux is %s and GOCACHE and GOMODCACHE carry labels that builds can write", mode)
}

// evidence adds what was seen of d to res.
func (d cacheDir) evidence(res check.Result) check.Result {
	res = res.With(d.Name, d.Path)
	if d.Probed != d.Path {
		res = res.With(d.Name+".label_of", d.Probed+" (nearest existing directory)")
	}
	label := d.Label
	if label == "" {
		label = "(none)"
	}
	res = res.With(d.Name+".label", label)
	if m := d.Mount; m != nil {
		res = res.With(d.Name+".mount", fmt.Sprintf("%s type %s (%s)", m.Point, m.FSType, m.Options()))
		if m.FSType == "tmpfs" {
			res = res.With(d.Name+".tmpfs", fmt.Sprintf("yes, seclabel=%v", m.HasOption("seclabel")))
		}
	}
	return res
}

// containerFile is the label that builds in containers and confined
// users may write, given whole: chcon -t would keep the rest of the old
// label, and fails on a file that has none.
const containerFile = "system_u:object_r:container_file_t:s0"

func relabelFix(t *check.Target, d cacheDir) string {
	var fix string
	if d.Probed != d.Path {
		// The go command creates the cache with the label of its nearest
		// existing parent: that is the directory to relabel.
		fix = fmt.Sprintf("relabel %s, which %s will inherit: `chcon %s %s` (lost on the next relabel), or for good `semanage fcontext -a -t container_file_t '%s(/.*)?' && mkdir -p %s && restorecon -R %s`", d.Probed, d.Path, containerFile, d.Probed, d.Path, d.Path, d.Path)
	} else {
		fix = fmt.Sprintf("relabel it: `chcon -R %s %s` (lost on the next relabel), or for good `semanage fcontext -a -t container_file_t '%s(/.*)?' && restorecon -R %s`", containerFile, d.Path, d.Path, d.Path)
	}
	if d.Mount != nil && d.Mount.FSType == "tmpfs" {
		move := fmt.Sprintf("go env -w %s=$HOME/.cache/%s", d.Name, strings.ToLower(d.Name))
		if _, ok := t.LookupEnv(d.Name); ok {
			// The environment overrides go env -w.
			move = fmt.Sprintf("export %s=$HOME/.cache/%s", d.Name, strings.ToLower(d.Name))
		}
		fix += fmt.Sprintf("; or mount the tmpfs with -o context=%s (remount does not change it), or move the cache off it: %s", containerFile, move)
	}
	return fix
}

// inspect reads the label of a cache directory, or of its nearest existing
// parent when the go command has not created it yet (it will inherit that).
func inspect(t *check.Target, name, p string) (cacheDir, error) {
	d := cacheDir{Name: name, Path: p, Probed: p}
	for {
		host := t.Path(d.Probed)
		if t.Root == "" || t.Root == "/" {
			// The label that matters is the one of the directory the
			// go command ends up writing in, past any symlink.
			if r, err := filepath.EvalSymlinks(host); err == nil {
				host = r
			}
		}
		label, err := getLabel(host)
		if err == nil {
			d.Label = label
			return d, nil
		}
		if !errors.Is(err, unix.ENOENT) || d.Probed == "/" {
			return d, fmt.Errorf("read SELinux label of %s %s: %w", name, d.Probed, err)
		}
		d.Probed = filepath.Dir(d.Probed)
	}
}

// getLabel reads the security.selinux xattr directly: selinux.FileLabel
// answers nothing when SELinux is disabled, yet the label is still on disk
// and will apply on a host that enforces it. "" means no label.
func getLabel(path string) (string, error) {
	buf := make([]byte, 256)
	for {
		n, err := unix.Lgetxattr(path, "security.selinux", buf)
		switch {
		case errors.Is(err, unix.ERANGE):
			buf = make([]byte, 2*len(buf))
			continue
		case errors.Is(err, unix.ENODATA), errors.Is(err, unix.ENOTSUP):
			if _, serr := os.Lstat(path); serr != nil {
				return "", serr
			}
			return "", nil
		case err != nil:
			return "", err
		}
		return strings.TrimRight(string(buf[:n]), "\x00"), nil
	}
}

// findMount returns the mount holding path: the longest mount point that
// is path or a parent of it. Later mounts on the same point hide earlier ones.
func findMount(ms []check.Mount, path string) *check.Mount {
	var best *check.Mount
	for i := range ms {
		m := &ms[i]
		if m.Point != "/" && path != m.Point && !strings.HasPrefix(path, m.Point+"/") {
			continue
		}
		if best == nil || len(m.Point) >= len(best.Point) {
			best = m
		}
	}
	return best
}
