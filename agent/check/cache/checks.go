package cache

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/gopatrol/gopatrol/agent/check"
	"github.com/gopatrol/gopatrol/agent/check/access"
	"github.com/gopatrol/gopatrol/agent/check/toolchain"
)

// Checks returns this package's checks.
func Checks() []check.Check {
	return []check.Check{
		{ID: "modcache.links", Title: "module cache links resolve", Source: "2.3", NoToolchain: true, Run: withEnv(links)},
		{ID: "modcache.writable", Title: "module cache is writable by the build user", Source: "1", NoToolchain: true, Run: withEnv(modcacheWritable)},
		{ID: "gocache.writable", Title: "build cache is set, absolute and writable", Source: "1", NoToolchain: true, Run: withEnv(gocacheWritable)},
	}
}

// goenvKeys are the variables these checks read.
var goenvKeys = []string{"GOCACHE", "GOMODCACHE", "GOPATH", "GOENV"}

// withEnv lets the cache checks run when the runner's `go env -json`
// failed: that happens precisely when the build cache is unusable (the go
// command initializes it to print the cgo flags), which is what
// gocache.writable diagnoses. `go env -json GOCACHE ...` with named,
// cheap variables does not touch the cache, so the go command still says
// where its caches are, in its own words.
func withEnv(run func(ctx context.Context, env *check.Env, goenv map[string]string) check.Result) func(context.Context, *check.Env) check.Result {
	return func(ctx context.Context, env *check.Env) check.Result {
		tc := env.Toolchain
		if tc.Err == nil {
			return run(ctx, env, tc.Env)
		}
		switch {
		case tc.Go == "":
			return check.Skipf("no go binary, see go.binary").With("error", tc.Err.Error())
		case errors.Is(tc.Err, check.ErrNoAnswer):
			return check.Skipf("the go command does not answer, see go.binary").With("error", tc.Err.Error())
		}
		cmd := env.Target.WithEnv("GOTOOLCHAIN=local", "GOFLAGS=").Command(ctx, tc.Go, append([]string{"env", "-json"}, goenvKeys...)...)
		out, err := check.Run(cmd)
		m := map[string]string{}
		if err != nil || json.Unmarshal(out.Stdout, &m) != nil {
			// The go command answers nothing (an unknown GOEXPERIMENT
			// stops it before it reads a variable): judge the caches
			// where it would put them, as docs/checks.md promises.
			return run(ctx, env, configured(env.Target)).With("go env", "`go env` failed ("+tc.Err.Error()+"); caches located from the environment and the GOENV file, as the go command would")
		}
		return run(ctx, env, m).With("go env", "`go env -json` failed ("+tc.Err.Error()+"); read "+strings.Join(goenvKeys, ", ")+" alone")
	}
}

// configured is where the go command would put its caches, worked out as
// cmd/go/internal/cfg does when it cannot be asked: the environment, else
// the GOENV file, else the defaults under HOME (GOCACHE in
// $XDG_CACHE_HOME or $HOME/.cache, GOPATH $HOME/go, GOMODCACHE in the
// first GOPATH element).
func configured(t *check.Target) map[string]string {
	goenv := toolchain.DefaultGOENV(t)
	var file map[string]string
	if goenv != "" && goenv != "off" {
		file = check.ReadGoEnvFile(t.Path(goenv))
	}
	get := func(k string) string {
		if v := t.Getenv(k); v != "" {
			return v
		}
		return file[k]
	}
	m := map[string]string{"GOENV": goenv, "GOCACHE": get("GOCACHE"), "GOPATH": get("GOPATH"), "GOMODCACHE": get("GOMODCACHE")}
	home := t.Getenv("HOME")
	if m["GOCACHE"] == "" {
		if x := t.Getenv("XDG_CACHE_HOME"); x != "" {
			m["GOCACHE"] = filepath.Join(x, "go-build")
		} else if home != "" {
			m["GOCACHE"] = filepath.Join(home, ".cache", "go-build")
		}
	}
	if m["GOPATH"] == "" && home != "" {
		m["GOPATH"] = filepath.Join(home, "go")
	}
	if first := check.FirstGOPATH(m["GOPATH"]); m["GOMODCACHE"] == "" && first != "" {
		m["GOMODCACHE"] = filepath.Join(first, "pkg", "mod")
	}
	return m
}

// maxScan bounds how many directory entries modcache.links looks at: a
// module cache can hold millions of files, the check must stay instant.
const maxScan = 20000

// scan looks for dangling links in root and its subdirectories, two levels
// deep (the depth of `find -L $GOPATH/pkg/mod -maxdepth 1` and one more,
// where module path prefixes such as github.com/<owner> live). It reads
// directories (d_type says which entries are links) and stats links only.
func scan(t *check.Target, root string, budget *int) (dangling []check.Link, truncated bool) {
	var walk func(dir string, depth int)
	walk = func(dir string, depth int) {
		// Read through the target's root: dir may lead through a link
		// that is absolute in the target's namespace.
		hdir, err := t.HostPath(dir)
		if err != nil {
			return
		}
		ents, err := os.ReadDir(hdir)
		if err != nil {
			return
		}
		for _, e := range ents {
			if *budget <= 0 {
				truncated = true
				return
			}
			*budget--
			p := filepath.Join(dir, e.Name())
			switch {
			case e.Type()&fs.ModeSymlink != 0:
				if r, err := t.Resolve(p); err == nil && (r.Dangling != nil || r.Missing != "") {
					dest, _ := os.Readlink(filepath.Join(hdir, e.Name()))
					dangling = append(dangling, check.Link{Path: p, Dest: dest})
				}
			case e.IsDir() && depth < 2:
				walk(p, depth+1)
			}
		}
	}
	walk(root, 1)
	return dangling, truncated
}

func links(ctx context.Context, env *check.Env, goenv map[string]string) check.Result {
	t := env.Target
	modcache := goenv["GOMODCACHE"]
	gp := check.FirstGOPATH(goenv["GOPATH"])
	if modcache == "" {
		return check.Failf("GOMODCACHE is empty: neither GOMODCACHE nor GOPATH is set").
			WithFix("set GOPATH or GOMODCACHE to an absolute directory, for example: go env -w GOMODCACHE=$HOME/go/pkg/mod")
	}
	ev := map[string]string{"GOMODCACHE": t.StatN(modcache)}
	var dangling []check.Link
	res, err := t.Resolve(modcache)
	if err != nil {
		return check.Errorf("resolve GOMODCACHE %s: %v", modcache, err).With("GOMODCACHE", ev["GOMODCACHE"])
	}
	switch {
	case res.Dangling != nil:
		dangling = append(dangling, *res.Dangling)
	case res.Real != "" && res.Real != modcache:
		ev["GOMODCACHE resolved"] = res.Real
	case res.Missing != "":
		ev["GOMODCACHE resolved"] = "does not exist yet (" + res.Missing + " is missing); the go command creates it on the first download"
	}
	if len(res.Links) > 1 || (len(res.Links) == 1 && res.Links[0].Path != modcache) {
		var chain []string
		for _, l := range res.Links {
			chain = append(chain, l.String())
		}
		ev["GOMODCACHE links"] = strings.Join(chain, "\n")
	}

	budget := maxScan
	var truncated bool
	scanned := map[string]bool{}
	scanRoot := func(p string) {
		r, err := t.Resolve(p)
		if err != nil || r.Real == "" || scanned[r.Real] {
			return
		}
		scanned[r.Real] = true
		d, tr := scan(t, p, &budget)
		dangling = append(dangling, d...)
		truncated = truncated || tr
	}
	var leftover string
	if gp != "" {
		defaultMod := filepath.Join(gp, "pkg", "mod")
		if defaultMod != modcache {
			ev["GOPATH/pkg/mod"] = t.StatN(defaultMod)
			dr, err := t.Resolve(defaultMod)
			switch {
			case err != nil:
			case dr.Dangling != nil:
				dangling = append(dangling, *dr.Dangling)
			case dr.Real != "" && dr.Real != res.Real:
				if ents, err := os.ReadDir(t.Path(dr.Real)); err == nil && len(ents) > 0 {
					leftover = defaultMod
					ev["leftover"] = fmt.Sprintf("%s holds %d entries but GOMODCACHE is %s", defaultMod, len(ents), modcache)
				}
			}
		}
		if res.Real != "" {
			scanRoot(modcache)
		}
		scanRoot(defaultMod)
	} else if res.Real != "" {
		scanRoot(modcache)
	}
	ev["scanned"] = fmt.Sprintf("%d entries, 2 levels deep", maxScan-budget)
	if truncated {
		ev["scanned"] += fmt.Sprintf(" (stopped at the limit of %d)", maxScan)
	}
	if ctx.Err() != nil {
		return check.Errorf("scan interrupted: %v", ctx.Err())
	}

	var r check.Result
	switch {
	case len(dangling) > 0:
		var names, targets []string
		for _, l := range dangling {
			names = append(names, l.String())
			targets = append(targets, l.Path)
		}
		r = check.Failf("%d dangling link(s) in the module cache: %s", len(dangling), names[0]).
			With("dangling", strings.Join(names, "\n")).
			WithFix("remove or repoint the dangling link(s): rm %s (then `go mod download` refills the cache)", strings.Join(targets, " "))
		// Removing is automated only inside GOMODCACHE, the path this
		// check owns; a dangling GOPATH/pkg/mod elsewhere needs a person.
		if !slices.ContainsFunc(targets, func(p string) bool { return p != modcache && !strings.HasPrefix(p, modcache+"/") }) {
			r = r.WithRemedy(check.Remedy{Kind: check.RemoveLink, Root: modcache, Paths: targets})
		}
	case leftover != "":
		r = check.Warnf("GOMODCACHE is %s but %s still holds an old module cache", modcache, leftover).
			WithFix("remove the stale cache (it is read-only, so use the go command): GOMODCACHE=%s go clean -modcache", leftover)
	case res.Missing != "":
		r = check.Passf("GOMODCACHE %s does not exist yet; no dangling links", modcache)
	default:
		r = check.Passf("GOMODCACHE %s resolves, no dangling links", modcache)
	}
	for k, v := range ev {
		r = r.With(k, v)
	}
	return r
}

func modcacheWritable(ctx context.Context, env *check.Env, goenv map[string]string) check.Result {
	t := env.Target
	modcache := goenv["GOMODCACHE"]
	switch {
	case modcache == "":
		return check.Failf("GOMODCACHE is empty: neither GOMODCACHE nor GOPATH is set").
			WithFix("set GOPATH or GOMODCACHE to an absolute directory, for example: go env -w GOMODCACHE=$HOME/go/pkg/mod")
	case !filepath.IsAbs(modcache):
		return check.Failf("GOMODCACHE %q is not an absolute path", modcache).With("GOMODCACHE", modcache).
			WithFix("set GOMODCACHE to an absolute path: go env -w GOMODCACHE=$HOME/go/pkg/mod")
	}
	// The cache's insides are read-only by design (files 0444, dirs
	// 0555): probe only where the go command creates things, the root
	// and cache/download.
	dirs := []string{t.NearestExisting(modcache)}
	if dl := filepath.Join(modcache, "cache", "download"); dirs[0] == modcache && exists(t, dl) {
		dirs = append(dirs, dl)
	}
	r, ok := probeDirs(ctx, t, dirs, modcache, "GOMODCACHE")
	if !ok {
		return r.With("GOMODCACHE", modcache)
	}
	if dirs[0] != modcache {
		return check.Passf("GOMODCACHE %s does not exist yet; user %s can create it in %s", modcache, t.UserName(), dirs[0]).
			With("GOMODCACHE", modcache).With("probed", strings.Join(dirs, "\n"))
	}
	return check.Passf("user %s can write GOMODCACHE %s", t.UserName(), modcache).
		With("GOMODCACHE", modcache).With("probed", strings.Join(dirs, "\n"))
}

func gocacheWritable(ctx context.Context, env *check.Env, goenv map[string]string) check.Result {
	t := env.Target
	gocache := goenv["GOCACHE"]
	explicit, set := t.LookupEnv("GOCACHE")
	if !set {
		explicit, set = check.ReadGoEnvFile(t.Path(goenv["GOENV"]))["GOCACHE"]
	}
	switch {
	case set && explicit != "" && explicit != "off" && !filepath.IsAbs(explicit):
		// go env reports "off" for a relative GOCACHE; say why.
		gocache = explicit
		fallthrough
	case gocache != "off" && gocache != "" && !filepath.IsAbs(gocache):
		return check.Failf("GOCACHE %q is not an absolute path; the go command refuses it", gocache).With("GOCACHE", gocache).
			WithFix("set GOCACHE to an absolute path: export GOCACHE=$HOME/.cache/go-build")
	case gocache == "off" || gocache == "":
		r := check.Failf("GOCACHE is %q: the go command has no build cache and every build fails", gocache).
			With("GOCACHE", gocache)
		if set && explicit == "off" {
			return r.With("why", "GOCACHE=off is set explicitly; Go 1.12 and later refuse to build without a cache").
				WithFix("unset GOCACHE, or set it to a writable directory: export GOCACHE=$HOME/.cache/go-build")
		}
		for _, k := range []string{"HOME", "XDG_CACHE_HOME"} {
			v, ok := t.LookupEnv(k)
			if !ok {
				v = "(unset)"
			}
			r = r.With(k, v)
		}
		return r.With("why", "HOME and XDG_CACHE_HOME are unset (a HOME-less container?), so there is no default cache directory").
			WithFix("set GOCACHE to a directory the build user can write: export GOCACHE=/tmp/go-build (or set HOME)")
	}
	dir := t.NearestExisting(gocache)
	r, ok := probeDirs(ctx, t, []string{dir}, gocache, "GOCACHE")
	if !ok {
		return r.With("GOCACHE", gocache)
	}
	if dir != gocache {
		r = check.Passf("GOCACHE %s does not exist yet; user %s can create it in %s", gocache, t.UserName(), dir)
	} else {
		r = check.Passf("user %s can write GOCACHE %s", t.UserName(), gocache)
	}
	r = r.With("GOCACHE", gocache).With("probed", dir)
	fsType, err := filesystem(t, dir)
	if err != nil {
		return r.With("filesystem", err.Error())
	}
	r = r.With("filesystem", fsType.name)
	switch {
	case fsType.network:
		r.Status = check.Warn
		r.Summary = fmt.Sprintf("GOCACHE %s is on %s, a network filesystem: cache locking and many small files make builds slow or flaky", gocache, fsType.name)
		r = r.WithFix("put the build cache on a local disk: export GOCACHE=/var/tmp/go-build-$USER")
	case fsType.name == "tmpfs":
		r = r.With("note", "tmpfs: the cache is lost on reboot, so the first build after one is cold")
	case fsType.name == "overlay":
		r = r.With("note", "overlay: a container layer; the cache dies with the container unless GOCACHE is a volume")
	}
	return r
}

func exists(t *check.Target, p string) bool {
	_, err := os.Stat(t.Path(p))
	return err == nil
}

// probeDirs runs access.Writable on each dir as the build user; cache is
// the cache directory itself (dirs[0] is its nearest existing parent when
// it does not exist yet). On failure it returns the result to report and
// false.
func probeDirs(ctx context.Context, t *check.Target, dirs []string, cache, variable string) (check.Result, bool) {
	for _, d := range dirs {
		err := access.Writable(ctx, t, d)
		if err == nil {
			continue
		}
		var pe *access.Error
		if !errors.As(err, &pe) {
			return check.Errorf("could not probe %s: %v", d, err).With("path", d), false
		}
		summary := fmt.Sprintf("%s is not writable by user %s: %v", variable, pe.User, err)
		switch {
		case pe.Blocked != "":
			summary = fmt.Sprintf("user %s cannot reach %s %s: %s is not searchable for that user (no x permission), so every build fails to open the cache", pe.User, variable, cache, pe.Blocked)
		case d != cache && !strings.HasPrefix(d, cache+"/"):
			summary = fmt.Sprintf("%s %s does not exist and user %s cannot create it: %v", variable, cache, pe.User, err)
		}
		r := check.Failf("%s", summary).
			With("path", d).With("user", pe.User).With("errno", pe.Errno())
		if pe.Blocked != "" {
			r = r.With("not searchable", pe.Blocked)
		}
		r = r.WithFix("%s", fixFor(pe, d, cache, variable))
		if rem := remedyFor(pe, d, dirs, cache); rem != nil {
			r = r.WithRemedy(*rem)
		}
		return r, false
	}
	return check.Result{}, true
}

// fixFor words the fix for a failed write probe of dir by its cause.
func fixFor(pe *access.Error, dir, cache, variable string) string {
	switch pe.Errno() {
	case "EROFS":
		return fmt.Sprintf("%s is on a read-only filesystem: mount it read-write, or point %s at a writable directory (go env -w %s=/path/you/own)", dir, variable, variable)
	case "ENOSPC", "EDQUOT":
		clean := "go clean -cache"
		if variable == "GOMODCACHE" {
			clean = "go clean -modcache"
		}
		return fmt.Sprintf("the filesystem of %s is full or over quota: free space (%s) or move %s to a larger disk", dir, clean, variable)
	case "EACCES", "EPERM":
		if pe.Blocked != "" {
			// The cache may be fine: the user cannot get to it.
			return fmt.Sprintf("let %s pass through %s: setfacl -m u:%s:x %s, or chmod o+x %s (as its owner), or point %s at a directory %s can reach (go env -w %s=/path/you/own)", pe.User, pe.Blocked, pe.User, pe.Blocked, pe.Blocked, variable, pe.User, variable)
		}
		if dir != cache && !strings.HasPrefix(dir, cache+"/") {
			// Never suggest handing a parent (possibly / or /home) over.
			return fmt.Sprintf("create it for the user: mkdir -p %s && chown %s %s; or point %s at a directory %s can write (for a HOME-less user: %s=/tmp/%s)", cache, pe.User, cache, variable, pe.User, variable, defaultName(variable, pe.User))
		}
		return fmt.Sprintf("give %s write access: chown -R %s %s, or point %s at a directory that user owns (go env -w %s=/path/you/own)", pe.User, pe.User, cache, variable, variable)
	}
	return fmt.Sprintf("make %s writable for %s, or point %s elsewhere (go env -w %s=/path/you/own)", dir, pe.User, variable, variable)
}

// remedyFor is the part of fixFor that gopatrol applies itself (check
// --fix): creating the missing cache for the user, or handing the cache
// to the user. A read-only or full filesystem needs a person.
func remedyFor(pe *access.Error, dir string, dirs []string, cache string) *check.Remedy {
	if e := pe.Errno(); e != "EACCES" && e != "EPERM" {
		return nil
	}
	if pe.Blocked != "" {
		// Opening a directory above the cache to the user is a person's
		// decision: it is not the cache's, and not gopatrol's to own.
		return nil
	}
	if dir != cache && !strings.HasPrefix(dir, cache+"/") {
		return &check.Remedy{Kind: check.CreateDir, Root: cache, User: pe.User}
	}
	return &check.Remedy{Kind: check.GrantWrite, Root: cache, User: pe.User, Paths: dirs}
}

func defaultName(variable, user string) string {
	if variable == "GOMODCACHE" {
		return "go-mod-" + user
	}
	return "go-build-" + user
}

type fsKind struct {
	name    string
	network bool
}

// Magic numbers of statfs(2) f_type.
var filesystems = map[int64]fsKind{
	unix.NFS_SUPER_MAGIC:       {"nfs", true},
	unix.CIFS_SUPER_MAGIC:      {"cifs", true},
	unix.SMB2_SUPER_MAGIC:      {"smb2", true},
	unix.SMB_SUPER_MAGIC:       {"smb", true},
	0x6e667364:                 {"nfsd", true},
	unix.TMPFS_MAGIC:           {"tmpfs", false},
	unix.OVERLAYFS_SUPER_MAGIC: {"overlay", false},
	unix.EXT4_SUPER_MAGIC:      {"ext4", false},
	unix.XFS_SUPER_MAGIC:       {"xfs", false},
	unix.BTRFS_SUPER_MAGIC:     {"btrfs", false},
	0x2fc12fc1:                 {"zfs", false},
	unix.FUSE_SUPER_MAGIC:      {"fuse", false},
	unix.V9FS_MAGIC:            {"9p", true},
	unix.CEPH_SUPER_MAGIC:      {"ceph", true},
}

func filesystem(t *check.Target, p string) (fsKind, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(t.Path(p), &st); err != nil {
		return fsKind{}, fmt.Errorf("statfs %s: %w", p, err)
	}
	if k, ok := filesystems[int64(st.Type)]; ok {
		return k, nil
	}
	return fsKind{name: fmt.Sprintf("%#x", st.Type)}, nil
}
