package cgo

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gopatrol/gopatrol/agent/check"
)

// Checks returns this package's checks.
func Checks() []check.Check {
	return []check.Check{
		{ID: "cgo.toolchain", Title: "cgo is on and the C toolchain builds", Source: "2.4", Timeout: 2 * time.Minute, FillsCache: true, Proves: true, Run: toolchain},
	}
}

// minPidsHeadroom is how many more tasks the cgroup must allow: the go
// command's threads, and per C file gcc, cc1 and as, and collect2 and ld
// when linking, times the build's parallelism.
const minPidsHeadroom = 128

// program is the cgo package that is built: cgo, gcc's -### identification
// and gcc -c of the C code and of cgo's generated C files. The go command
// also links _cgo_.o with gcc there, but tolerates a failure of that link
// (it only marks the package for external linking), so linking is proven
// separately with linkProgram. A main package would prove it through the
// Go linker's external link instead, at some 0.3 s more of the doctor's
// 0.5 s budget on a 2-core machine.
const program = `package cgoprobe

/*
#include <stdlib.h>

static int gopatrol_answer(void) { return abs(-42); }
*/
import "C"

// Answer calls into C.
func Answer() int { return int(C.gopatrol_answer()) }
`

// linkProgram is linked by $CC with the go command's own flags
// (GOGCCFLAGS): the C driver, ld, crt1.o and libc, as an external link
// needs them.
const linkProgram = `#include <stdio.h>
int main(void) { return puts("") < 0; }
`

// setting finds where a go env variable was set: the environment, the
// GOENV file, GOROOT/go.env, or nowhere (the go command's default).
func setting(env *check.Env, key string) (value, source string, ok bool) {
	t := env.Target
	if v, ok := t.LookupEnv(key); ok && v != "" {
		return v, "the environment", true
	}
	if f := env.Toolchain.Get("GOENV"); f != "" {
		if v, ok := check.ReadGoEnvFile(t.Path(f))[key]; ok && v != "" {
			return v, "the GOENV file " + f, true
		}
	}
	goenv := filepath.Join(env.Toolchain.Get("GOROOT"), "go.env")
	if v, ok := check.ReadGoEnvFile(t.Path(goenv))[key]; ok && v != "" {
		return v, goenv, true
	}
	return "", "", false
}

func toolchain(ctx context.Context, env *check.Env) check.Result {
	tc, t := env.Toolchain, env.Target
	cgo := tc.Get("CGO_ENABLED")
	cc := tc.Get("CC")
	ccName := firstWord(cc)
	ev := map[string]string{"CGO_ENABLED": cgo, "CC": cc}
	result := func(r check.Result) check.Result {
		for k, v := range ev {
			r = r.With(k, v)
		}
		return r
	}
	if v, src, ok := setting(env, "CGO_ENABLED"); ok {
		ev["CGO_ENABLED"] += " (set to " + v + " in " + src + ")"
	} else {
		ev["CGO_ENABLED"] += " (default)"
	}

	if cgo != "1" {
		if v, src, ok := setting(env, "CGO_ENABLED"); ok && v == "0" {
			return result(check.Skipf("cgo is disabled on purpose: CGO_ENABLED=0 in %s", src))
		}
		if goos, goarch := tc.Get("GOOS"), tc.Get("GOARCH"); goos != tc.Get("GOHOSTOS") || goarch != tc.Get("GOHOSTARCH") {
			return result(check.Skipf("cross-compiling to %s/%s: the go command turns cgo off unless CGO_ENABLED=1 and a cross C compiler are set", goos, goarch))
		}
		if _, _, ccSet := setting(env, "CC"); !ccSet {
			if _, err := resolveCC(t, ccName); err != nil {
				ev["PATH"] = t.Getenv("PATH")
				return result(check.Warnf("cgo is off because no C compiler was found: %s is not on PATH, and then the go command disables cgo by default", ccName).
					With("why", err.Error()).
					WithFix("export CGO_ENABLED=0 (to make the choice explicit), or install <a C compiler: apt-get install gcc>"))
			}
		}
		return result(check.Skipf("cgo is disabled (CGO_ENABLED=%s)", cgo))
	}

	path, err := resolveCC(t, ccName)
	if err != nil {
		ev["PATH"] = t.Getenv("PATH")
		return result(check.Failf("CGO_ENABLED=1 but the C compiler CC=%s cannot be found: %v", cc, err).
			WithFix("%s, or install <gcc: apt-get install gcc build-essential>", setCC(t)))
	}
	ev["CC path"] = path

	// `$CC --version` as the build user: it exists, but does it run?
	vctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	out, err := check.CombinedOutput(t.Command(vctx, path, "--version"))
	cancel()
	if err != nil {
		return result(check.Failf("C compiler %s does not run: %v", path, err).With("output", lastLines(string(out), 5)).
			WithFix("reinstall <the C compiler: apt-get install --reinstall gcc>, or point CC at a working one"))
	}
	ev["CC version"] = check.FirstLine(string(out))

	var warn check.Result
	if lim, err := pidsLimit(t, "/proc/self/cgroup"); err == nil && lim.limited() {
		ev["pids"] = lim.String()
		if lim.headroom() < minPidsHeadroom {
			warn = check.Warnf("the cgroup allows only %d more tasks (%s): gcc forks cc1, as, collect2 and ld per job, so parallel cgo builds can fail with \"fork: Resource temporarily unavailable\"", lim.headroom(), lim).
				WithFix("raise the pids limit (docker run --pids-limit, Kubernetes podPidsLimit, systemd TasksMax=) or build with fewer jobs: go build -p 1")
		}
	} else if err == nil {
		ev["pids"] = "no pids limit"
	}

	took, bout, err := build(ctx, env, strings.Fields(cc))
	if err != nil {
		if ctx.Err() != nil {
			return result(check.Errorf("cgo build did not finish: %v", ctx.Err()))
		}
		r := check.Failf("a minimal cgo program does not build with CC=%s: %v", cc, err).With("output", lastLines(bout, 12))
		if strings.Contains(bout, "build cache") || strings.Contains(bout, "GOCACHE") {
			return result(r.WithFix("the build cache is unusable for this user: see gocache.writable"))
		}
		return result(r.WithFix("install <what the compiler's error above names> (a missing stdlib.h or crt1.o means the C library headers: apt-get install libc6-dev)"))
	}
	ev["build"] = fmt.Sprintf("go build of a cgo package, and a C program linked by %s with GOGCCFLAGS, in %s", ccName, took.Round(time.Millisecond))
	if warn.Status != "" {
		return result(warn)
	}
	return result(check.Passf("cgo is on; %s compiles a cgo package and links a C program (%s)", ccName, took.Round(time.Millisecond)))
}

// build writes the cgo program into a fresh directory the build user owns
// and runs `go build -trimpath` there. -trimpath keeps the directory out
// of the package's cache key, so cgo and the C compiles of the package run
// once per Go release and C compiler (the go command keys its cache on
// both: it asks $CC for its identity on every build) and are cached after
// that: on two cores the uncached build cost the doctor about a second
// of CPU. The C toolchain itself is proven live on every run by linking
// linkProgram with Go's flags, beside the go command. The directory is
// removed, on timeout too (the go command's process group is killed
// first).
func build(ctx context.Context, env *check.Env, ccWords []string) (time.Duration, string, error) {
	t := env.Target
	scratch, err := t.NewScratch("", "gopatrol-cgo-")
	if err != nil {
		return 0, "", fmt.Errorf("make a build directory: %w", err)
	}
	defer scratch.Remove()
	if err := scratch.Write(map[string]string{
		"go.mod":   "module gopatrol.invalid/cgoprobe\n\ngo 1.20\n",
		"probe.go": program,
		"link.c":   linkProgram,
	}); err != nil {
		return 0, "", err
	}
	dir := scratch.Dir
	in := *t
	in.Dir = dir
	benv := &check.Env{Target: &in, Toolchain: env.Toolchain}
	start := time.Now()
	// The C link does not depend on the package build: run both at once.
	linked := make(chan error, 1)
	go func() {
		args := append(slices.Clone(ccWords[1:]), strings.Fields(env.Toolchain.Get("GOGCCFLAGS"))...)
		args = append(args, "-o", filepath.Join(dir, "link.out"), filepath.Join(dir, "link.c"))
		if out, err := check.CombinedOutput(in.Command(ctx, ccWords[0], args...)); err != nil {
			linked <- fmt.Errorf("%s cannot link a C program: %w: %s", ccWords[0], err, lastLines(string(out), 12))
			return
		}
		linked <- nil
	}()
	// Isolate the C question: the user's GOFLAGS, workspace and toolchain
	// switching are other checks' business.
	out, err := benv.Go(ctx, []string{"CGO_ENABLED=1", "GOFLAGS=", "GOWORK=off", "GO111MODULE=on", "GOTOOLCHAIN=local"},
		"build", "-trimpath", ".")
	lerr := <-linked
	took := time.Since(start)
	if err != nil {
		return took, string(out), err
	}
	if lerr != nil {
		return took, lerr.Error(), lerr
	}
	return took, "", nil
}

// resolveCC finds the compiler as the go command would: a name with a
// slash is a path (relative to the working directory), else PATH is
// searched.
func resolveCC(t *check.Target, name string) (string, error) {
	if name == "" {
		return "", errors.New("CC is empty")
	}
	if strings.Contains(name, "/") {
		p := name
		if !filepath.IsAbs(p) {
			p = filepath.Join(t.Dir, p)
		}
		fi, err := os.Stat(t.Path(p))
		switch {
		case errors.Is(err, fs.ErrNotExist):
			return "", fmt.Errorf("%s does not exist", p)
		case err != nil:
			return "", err
		case fi.IsDir() || fi.Mode()&0o111 == 0:
			return "", fmt.Errorf("%s is not an executable file", p)
		}
		return p, nil
	}
	if found := t.LookPath(name); len(found) > 0 {
		return found[0], nil
	}
	return "", fmt.Errorf("%s not found in PATH", name)
}

// pids is the tightest pids limit among a cgroup and its ancestors.
type pids struct {
	Cgroup       string
	Max, Current int64 // Max < 0: no limit
}

func (p pids) limited() bool   { return p.Max >= 0 }
func (p pids) headroom() int64 { return p.Max - p.Current }
func (p pids) String() string {
	return fmt.Sprintf("pids.max %d, pids.current %d in %s", p.Max, p.Current, p.Cgroup)
}

// pidsLimit reads the pids controller of the cgroup named in procCgroup
// (/proc/<pid>/cgroup), v2 or v1, walking up to the root, and returns the
// level with the least headroom.
func pidsLimit(t *check.Target, procCgroup string) (pids, error) {
	f, err := os.Open(procCgroup)
	if err != nil {
		return pids{}, err
	}
	defer f.Close()
	var dirs []string // candidate controller directories, most specific first
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// hierarchy-id:controllers:path
		parts := strings.SplitN(sc.Text(), ":", 3)
		if len(parts) != 3 {
			continue
		}
		switch {
		case parts[1] == "" && parts[0] == "0":
			dirs = append(dirs, filepath.Join("/sys/fs/cgroup", parts[2]), filepath.Join("/sys/fs/cgroup/unified", parts[2]))
		case hasController(parts[1], "pids"):
			dirs = append([]string{filepath.Join("/sys/fs/cgroup/pids", parts[2])}, dirs...)
		}
	}
	best := pids{Max: -1}
	for _, d := range dirs {
		root := "/sys/fs/cgroup"
		if strings.HasPrefix(d, "/sys/fs/cgroup/pids") {
			root = "/sys/fs/cgroup/pids"
		} else if strings.HasPrefix(d, "/sys/fs/cgroup/unified") {
			root = "/sys/fs/cgroup/unified"
		}
		for dir := d; strings.HasPrefix(dir, root); dir = filepath.Dir(dir) {
			max, err1 := readInt(t.Path(filepath.Join(dir, "pids.max")))
			cur, err2 := readInt(t.Path(filepath.Join(dir, "pids.current")))
			if err1 == nil && err2 == nil && max >= 0 && (!best.limited() || max-cur < best.headroom()) {
				best = pids{Cgroup: dir, Max: max, Current: cur}
			}
			if dir == root {
				break
			}
		}
	}
	return best, nil
}

func hasController(list, name string) bool {
	for c := range strings.SplitSeq(list, ",") {
		if c == name {
			return true
		}
	}
	return false
}

// readInt reads a cgroup value; "max" is -1.
func readInt(path string) (int64, error) {
	b, err := check.ReadFile(path, 64)
	if err != nil {
		return 0, err
	}
	s := strings.TrimSpace(string(b))
	if s == "max" {
		return -1, nil
	}
	return strconv.ParseInt(s, 10, 64)
}

func firstWord(s string) string {
	if fs := strings.Fields(s); len(fs) > 0 {
		return strings.Trim(fs[0], `'"`)
	}
	return ""
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// setCC points CC at an installed compiler where the builds read it:
// go env -w cannot override CC set in the environment.
func setCC(t *check.Target) string {
	cc := "/usr/bin/cc"
	for _, c := range []string{"gcc", "clang", "cc"} {
		if found := t.LookPath(c); len(found) > 0 {
			cc = found[0]
			break
		}
	}
	if _, ok := t.LookupEnv("CC"); ok {
		return "export CC=" + cc
	}
	return "go env -w CC=" + cc
}
