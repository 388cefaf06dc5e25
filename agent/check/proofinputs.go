package check

import (
	"bufio"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// ProofInputs fingerprints what the outcome of a proving check (go run, a
// cgo build, a PIE build, go tool compile) depends on, as cheaply as a few
// hundred stat calls: a change to any of these makes every kept proof
// stale.
//
//   - who and where: the target's root and build user, the environment
//     (without the variables a shell changes on its own, such as PWD or
//     SHLVL), go env (without GOMOD and GOWORK: the probes build their own
//     module), and gopatrol's own binary, whose checks may have changed;
//   - the toolchain's files: the go binary, GOROOT and its bin/go,
//     VERSION and go.env, every tool in GOTOOLDIR, GOROOT/pkg/include,
//     and every directory of the standard library (a file added, removed
//     or renamed changes its directory; an edit inside a file does not,
//     which the TTL bounds);
//   - the build's directories: GOCACHE (which directory, its mode and
//     owner; builds write into it) and its trim.txt, TMPDIR and GOTMPDIR
//     (likewise), the GOENV file;
//   - the C toolchain: $CC, as and ld as PATH finds them, and ld.so.cache;
//   - the mounts at or above all of these (a remount with noexec changes
//     its line), the boot, ASLR, this process's security label, its
//     cgroup and that cgroup's pids.max.
//
// Every value is hashed, never kept: the environment holds secrets.
func ProofInputs(env *Env) [32]byte { return proofInputs(env, nil).all }

// inputs are the digests of a fingerprint: all its inputs, and those of
// the toolchain alone (the go binary, GOROOT and its standard library,
// GOTOOLDIR, the C toolchain, gopatrol, the boot), which environments
// that use the same toolchain files share (see Proofs.lookup).
type inputs struct {
	all, toolchain [32]byte
}

// proofInputs is ProofInputs, reusing the standard library walks kept in
// walks when it is not nil.
func proofInputs(env *Env, walks *stdWalks) inputs {
	h, tool := sha256.New(), sha256.New()
	writeProofInputs(h, tool, env, walks)
	var in inputs
	h.Sum(in.all[:0])
	tool.Sum(in.toolchain[:0])
	return in
}

// writeProofInputs writes the inputs to h, a line each, and those of the
// toolchain alone to tool as well (when not nil); tests print them to see
// what changed.
func writeProofInputs(h, tool io.Writer, env *Env, walks *stdWalks) {
	t, tc := env.Target, env.Toolchain
	toolH := h
	if tool != nil {
		toolH = io.MultiWriter(h, tool)
	}
	putTo := func(w io.Writer, kind string, parts ...string) {
		fmt.Fprintf(w, "%s\x00%s\n", kind, strings.Join(parts, "\x00"))
	}
	put := func(kind string, parts ...string) { putTo(h, kind, parts...) }
	put("root", t.Root)
	if u := t.User; u != nil {
		put("user", u.Name, fmt.Sprint(u.UID, u.GID, u.Groups), u.Home)
	}
	vars := slices.Clone(t.Environ)
	vars = slices.DeleteFunc(vars, func(kv string) bool { k, _, _ := strings.Cut(kv, "="); return volatileVar(k) })
	slices.Sort(vars)
	put("environ", vars...)
	put("toolchain", tc.Go, tc.GOFLAGS, tc.GOTOOLCHAIN)
	for _, k := range slices.Sorted(maps.Keys(tc.Env)) {
		if k != "GOMOD" && k != "GOWORK" {
			// GOGCCFLAGS names the go command's own random work directory.
			put("go env", k, goBuildDir.ReplaceAllString(tc.Env[k], "go-build"))
		}
	}
	if self, err := os.Executable(); err == nil {
		putStat(toolH, "gopatrol", self, self)
	}

	goroot := tc.Get("GOROOT")
	tooldir := tc.Get("GOTOOLDIR")
	files := []string{tc.Go, goroot, filepath.Join(goroot, "bin", "go"), filepath.Join(goroot, "VERSION"), filepath.Join(goroot, "go.env"),
		filepath.Join(goroot, "pkg", "include"), tooldir, "/etc/ld.so.cache"}
	// The environment's own files, not the toolchain's.
	for _, f := range []string{tc.Get("GOENV"), filepath.Join(tc.Get("GOCACHE"), "trim.txt")} {
		if filepath.IsAbs(f) {
			putStat(h, "file", f, t.Path(f))
		}
	}
	// Builds write into these, the doctor's own probes too: what they are
	// and who may write them counts, not when they last changed.
	for _, d := range []string{tc.Get("GOCACHE"), t.TempBase(), tc.Get("GOTMPDIR")} {
		if filepath.IsAbs(d) {
			fi, err := os.Stat(t.Path(d))
			put("written dir", d, ownerLine(fi, err))
		}
	}
	if entries, err := os.ReadDir(t.Path(tooldir)); filepath.IsAbs(tooldir) && err == nil {
		for _, e := range entries {
			files = append(files, filepath.Join(tooldir, e.Name()))
		}
	}
	var ccDir string
	for _, name := range []string{firstField(tc.Get("CC")), "as", "ld"} {
		if name == "" {
			continue
		}
		found := t.LookPath(name)
		if filepath.IsAbs(name) {
			found = []string{name} // CC=/path/to/cc: PATH plays no part
		}
		if len(found) == 0 {
			put("not on PATH", name)
			continue
		}
		files = append(files, found[0])
		if ccDir == "" {
			ccDir = filepath.Dir(found[0])
		}
	}
	for _, f := range files {
		if filepath.IsAbs(f) {
			putStat(toolH, "file", f, t.Path(f))
		}
	}
	if filepath.IsAbs(goroot) {
		walks.put(toolH, t, filepath.Join(goroot, "src"))
	}
	putMounts(h, t, []string{goroot, tooldir, tc.Get("GOCACHE"), t.TempBase(), tc.Get("GOTMPDIR"), ccDir})
	for _, f := range []string{"/proc/sys/kernel/random/boot_id", "/proc/sys/kernel/randomize_va_space", "/proc/self/attr/current"} {
		data, _ := ReadFile(f, 64<<10)
		putTo(toolH, "proc", f, string(data))
	}
	if cg, _ := ReadFile("/proc/self/cgroup", 64<<10); len(cg) > 0 {
		// cgroup v2: "0::/path"; its pids.max bounds cgo's compilers.
		for l := range strings.Lines(string(cg)) {
			if p, ok := strings.CutPrefix(strings.TrimSpace(l), "0::"); ok {
				data, _ := ReadFile(filepath.Join("/sys/fs/cgroup", p, "pids.max"), 64)
				put("cgroup pids.max", p, string(data))
			}
		}
	}
}

// volatileVar names the variables that a shell, a terminal or a login
// changes on its own: they do not change what a build does, and keeping
// them would make every new shell prove again.
func volatileVar(k string) bool {
	switch k {
	case "PWD", "OLDPWD", "SHLVL", "_", "COLUMNS", "LINES", "TERM", "COLORTERM", "TERM_PROGRAM",
		"TERM_PROGRAM_VERSION", "DISPLAY", "WINDOWID", "SSH_AUTH_SOCK", "SSH_AGENT_PID", "SSH_CLIENT",
		"SSH_CONNECTION", "SSH_TTY", "TMUX", "TMUX_PANE", "STY", "WINDOW", "MAIL", "LS_COLORS",
		"HISTFILE", "HISTSIZE", "HISTFILESIZE", "PS1", "PS2", "PROMPT_COMMAND", "INVOCATION_ID",
		"JOURNAL_STREAM", "XDG_SESSION_ID", "XDG_VTNR", "XDG_SESSION_TYPE", "XDG_SESSION_CLASS", "NO_COLOR":
		return true
	}
	return strings.HasPrefix(k, "GOPATROL_") || strings.HasPrefix(k, "VSCODE_") || strings.HasPrefix(k, "KITTY_") ||
		strings.HasPrefix(k, "ITERM_") || strings.HasPrefix(k, "WT_")
}

func firstField(s string) string {
	if f := strings.Fields(s); len(f) > 0 {
		return f[0]
	}
	return ""
}

// putStat writes what changes when a file is replaced, rewritten, moved,
// chmodded or chowned; for a symbolic link, also where it points and what
// is there.
func putStat(h io.Writer, kind, name, host string) {
	fi, err := os.Lstat(host)
	fmt.Fprintf(h, "%s\x00%s\x00%s\n", kind, name, statLine(fi, err))
	if err == nil && fi.Mode()&fs.ModeSymlink != 0 {
		dest, _ := os.Readlink(host)
		fi, err = os.Stat(host)
		fmt.Fprintf(h, "->\x00%s\x00%s\n", dest, statLine(fi, err))
	}
}

func statLine(fi fs.FileInfo, err error) string {
	if err != nil {
		var errno syscall.Errno
		if errors.As(err, &errno) {
			return "error " + strconv.Itoa(int(errno))
		}
		return "error"
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fmt.Sprint(fi.Mode(), fi.Size(), fi.ModTime().UnixNano())
	}
	return fmt.Sprint(st.Dev, st.Ino, st.Mode, st.Uid, st.Gid, st.Size, st.Mtim.Nano(), st.Ctim.Nano())
}

// ownerLine is statLine without the times and size: which directory it
// is, its mode and its owner.
func ownerLine(fi fs.FileInfo, err error) string {
	if err != nil {
		return statLine(fi, err)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fmt.Sprint(fi.Mode())
	}
	return fmt.Sprint(st.Dev, st.Ino, st.Mode, st.Uid, st.Gid)
}

// stdWalks keeps the digests of standard library walks for a while
// (Proofs.WalkReuse). The walk (some 470 directories) is the
// fingerprint's largest cost, and an agent patrolling 50 environments that
// share one GOROOT would walk it 50 times a round.
type stdWalks struct {
	reuse time.Duration
	mu    sync.Mutex
	kept  map[[2]uint64]stdWalk // by the src directory's device and inode
}

type stdWalk struct {
	sum [32]byte
	at  time.Time
}

// put writes the inputs of the standard library's source, src in t: every
// directory that `go list std` reads, without testdata and cmd, with its
// stat line. Paths are written as the target sees them, so that the same
// GOROOT entered through another process's /proc/PID/root is the same
// input, and as one digest, whether walked now or kept: with w nil or its
// reuse zero it walks every time; otherwise one digest stands for reuse
// for the same directory (by device and inode).
func (w *stdWalks) put(h io.Writer, t *Target, src string) {
	root := t.Path(src)
	if w == nil || w.reuse <= 0 {
		d := sha256.New()
		walkStdDirs(d, root, src)
		fmt.Fprintf(h, "std dirs\x00%s\x00%x\n", src, d.Sum(nil))
		return
	}
	var st syscall.Stat_t
	if err := syscall.Stat(root, &st); err != nil {
		fmt.Fprintf(h, "std\x00%s\x00%v\n", src, err)
		return
	}
	key := [2]uint64{st.Dev, st.Ino}
	w.mu.Lock()
	m, ok := w.kept[key]
	w.mu.Unlock()
	if !ok || time.Since(m.at) > w.reuse {
		d := sha256.New()
		walkStdDirs(d, root, src)
		m = stdWalk{at: time.Now()}
		d.Sum(m.sum[:0])
		w.mu.Lock()
		if w.kept == nil || len(w.kept) >= 64 {
			w.kept = map[[2]uint64]stdWalk{}
		}
		w.kept[key] = m
		w.mu.Unlock()
	}
	fmt.Fprintf(h, "std dirs\x00%s\x00%x\n", src, m.sum)
}

func walkStdDirs(h io.Writer, root, src string) {
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		rel := src + strings.TrimPrefix(p, root)
		if err != nil {
			fmt.Fprintf(h, "walk\x00%s\x00%v\n", rel, err)
			return nil
		}
		if !d.IsDir() {
			return nil
		}
		name := d.Name()
		if p != root && (name == "testdata" || strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_") || p == filepath.Join(root, "cmd")) {
			return filepath.SkipDir
		}
		fi, err := d.Info()
		fmt.Fprintf(h, "dir\x00%s\x00%s\n", rel, statLine(fi, err))
		return nil
	})
}

// goBuildDir matches a go command's work directory, go-build and digits.
var goBuildDir = regexp.MustCompile(`go-build[0-9]+`)

// procRoot matches the root of another process's mount namespace.
var procRoot = regexp.MustCompile(`^/proc/([0-9]+)/root/?$`)

// putMounts writes the mountinfo lines of every mount at or above the
// given target paths: their options (noexec, ro), filesystems and
// sources.
func putMounts(h io.Writer, t *Target, paths []string) {
	info, under := "/proc/self/mountinfo", t.Path
	if m := procRoot.FindStringSubmatch(t.Root); m != nil {
		info, under = "/proc/"+m[1]+"/mountinfo", func(p string) string { return p }
	}
	var hosts []string
	for _, p := range paths {
		if filepath.IsAbs(p) {
			hosts = append(hosts, filepath.Clean(under(p)))
		}
	}
	f, err := os.Open(info)
	if err != nil {
		fmt.Fprintf(h, "mountinfo\x00%v\n", err)
		return
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 {
			continue
		}
		mp := UnescapeMountinfo(fields[4])
		if slices.ContainsFunc(hosts, func(p string) bool { return Within(p, mp) }) {
			fmt.Fprintf(h, "mount\x00%s\n", sc.Text())
		}
	}
}
