package check

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gopatrol/gopatrol/internal/testgate"
)

// proofWorld is a toolchain laid out for real on disk (a GOROOT with a
// standard library of three directories, its tools, a C compiler on PATH,
// a build cache and a TMPDIR), described as ResolveToolchain would: the
// fingerprint reads files, it never runs them.
type proofWorld struct {
	dir string
	env *Env
}

func newProofWorld(t *testing.T) *proofWorld {
	t.Helper()
	dir := t.TempDir()
	goroot := filepath.Join(dir, "go")
	files := map[string]string{
		"go/bin/go":                       "#!/bin/sh\n",
		"go/VERSION":                      "go1.26.8\n",
		"go/go.env":                       "GOPROXY=off\n",
		"go/src/fmt/print.go":             "package fmt\n",
		"go/src/net/http/server.go":       "package http\n",
		"go/src/net/http/testdata/x.txt":  "data\n",
		"go/src/cmd/go/main.go":           "package main\n",
		"go/pkg/tool/linux_amd64/compile": "compiler\n",
		"go/pkg/tool/linux_amd64/link":    "linker\n",
		"go/pkg/include/textflag.h":       "\n",
		"bin/gcc":                         "#!/bin/sh\nexec /usr/bin/gcc \"$@\"\n",
		"cache/trim.txt":                  "1\n",
		"cache/00/entry":                  "x\n",
		"home/.config/go/env":             "",
	}
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []string{"tmp", "gotmp"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	target := &Target{Root: "/", Dir: dir, User: &User{Name: "builder", UID: 1000, GID: 1000, Groups: []uint32{1000}, Home: filepath.Join(dir, "home")},
		Environ: []string{"PATH=" + filepath.Join(dir, "bin") + ":/usr/bin:/bin", "TMPDIR=" + filepath.Join(dir, "tmp"), "HOME=" + filepath.Join(dir, "home"), "PWD=" + dir, "SHLVL=1"}}
	tc := &Toolchain{Go: filepath.Join(goroot, "bin", "go"), Env: map[string]string{
		"GOROOT":     goroot,
		"GOTOOLDIR":  filepath.Join(goroot, "pkg", "tool", "linux_amd64"),
		"GOCACHE":    filepath.Join(dir, "cache"),
		"GOTMPDIR":   filepath.Join(dir, "gotmp"),
		"GOENV":      filepath.Join(dir, "home", ".config", "go", "env"),
		"CC":         "gcc",
		"GOGCCFLAGS": "-fPIC -m64 -ffile-prefix-map=/tmp/go-build123=/tmp/go-build",
		"GOMOD":      filepath.Join(dir, "go.mod"),
		"GOVERSION":  "go1.26.8",
	}}
	return &proofWorld{dir: dir, env: &Env{Target: target, Toolchain: tc}}
}

func (w *proofWorld) path(name string) string { return filepath.Join(w.dir, name) }

// A kept proof must go stale with every change that can make the proving
// checks fail, and must survive what does not change a build, or it would
// never be used.
func TestProofInputs(t *testing.T) {
	tests := []struct {
		name    string
		change  func(t *testing.T, w *proofWorld)
		changes bool
	}{
		{"nothing", func(*testing.T, *proofWorld) {}, false},
		{"a shell's own variables", func(_ *testing.T, w *proofWorld) {
			w.env.Target.Environ = append(w.env.Target.Environ, "PWD=/elsewhere", "SHLVL=3", "OLDPWD=/x", "TERM=xterm")
		}, false},
		{"the go command's random work directory in GOGCCFLAGS", func(_ *testing.T, w *proofWorld) {
			w.env.Toolchain.Env["GOGCCFLAGS"] = "-fPIC -m64 -ffile-prefix-map=/tmp/go-build98765=/tmp/go-build"
		}, false},
		{"another module (GOMOD)", func(_ *testing.T, w *proofWorld) { w.env.Toolchain.Env["GOMOD"] = "/other/go.mod" }, false},
		{"files written into TMPDIR, GOTMPDIR and GOCACHE", func(t *testing.T, w *proofWorld) {
			for _, f := range []string{"tmp/gopatrol-run-1", "gotmp/go-build1", "cache/ab/new-entry"} {
				mustWrite(t, w.path(f), "x")
			}
		}, false},

		{"an environment variable", func(_ *testing.T, w *proofWorld) {
			w.env.Target.Environ = append(w.env.Target.Environ, "CGO_CFLAGS=-O0")
		}, true},
		{"a go env value", func(_ *testing.T, w *proofWorld) { w.env.Toolchain.Env["CC"] = "clang" }, true},
		{"the build user", func(_ *testing.T, w *proofWorld) { w.env.Target.User.UID = 1001 }, true},
		{"the go binary rewritten", func(t *testing.T, w *proofWorld) { mustWrite(t, w.path("go/bin/go"), "#!/bin/sh\nexit 1\n") }, true},
		{"the go binary's mode", func(t *testing.T, w *proofWorld) { mustChmod(t, w.path("go/bin/go"), 0o644) }, true},
		{"GOROOT/bin/go behind a wrapper", func(t *testing.T, w *proofWorld) {
			w.env.Toolchain.Go = w.path("bin/go-wrapper")
			mustWrite(t, w.env.Toolchain.Go, "#!/bin/sh\nexec "+w.path("go/bin/go")+" \"$@\"\n")
			before := ProofInputs(w.env)
			mustWrite(t, w.path("go/bin/go"), "#!/bin/sh\necho go1.27.0\n")
			if ProofInputs(w.env) == before {
				t.Errorf("GOROOT/bin/go replaced behind an unchanged wrapper, fingerprint unchanged")
			}
		}, true},
		{"GOROOT/VERSION", func(t *testing.T, w *proofWorld) { mustWrite(t, w.path("go/VERSION"), "go1.26.9\n") }, true},
		{"a tool of GOTOOLDIR", func(t *testing.T, w *proofWorld) {
			mustWrite(t, w.path("go/pkg/tool/linux_amd64/link"), "other linker\n")
		}, true},
		{"a tool removed", func(t *testing.T, w *proofWorld) { mustRemove(t, w.path("go/pkg/tool/linux_amd64/compile")) }, true},
		{"a standard package removed", func(t *testing.T, w *proofWorld) { mustRemove(t, w.path("go/src/net/http")) }, true},
		{"a file added to a standard package", func(t *testing.T, w *proofWorld) { mustWrite(t, w.path("go/src/net/http/extra.go"), "package http\n") }, true},
		{"a file removed from a standard package", func(t *testing.T, w *proofWorld) { mustRemove(t, w.path("go/src/fmt/print.go")) }, true},
		{"the C compiler on PATH rewritten", func(t *testing.T, w *proofWorld) { mustWrite(t, w.path("bin/gcc"), "#!/bin/sh\nexit 1\n") }, true},
		{"the C compiler removed", func(t *testing.T, w *proofWorld) { mustRemove(t, w.path("bin/gcc")) }, true},
		{"the build cache trimmed", func(t *testing.T, w *proofWorld) { mustWrite(t, w.path("cache/trim.txt"), "2\n") }, true},
		{"TMPDIR made unwritable", func(t *testing.T, w *proofWorld) { mustChmod(t, w.path("tmp"), 0o555) }, true},
		{"TMPDIR removed", func(t *testing.T, w *proofWorld) { mustRemove(t, w.path("tmp")) }, true},
		{"TMPDIR owned by another user", func(t *testing.T, w *proofWorld) {
			testgate.Root(t, "chown a directory")
			if err := os.Chown(w.path("tmp"), 65534, 65534); err != nil {
				t.Fatal(err)
			}
		}, true},
		{"the GOENV file", func(t *testing.T, w *proofWorld) {
			mustWrite(t, w.path("home/.config/go/env"), "GOFLAGS=-mod=vendor\n")
		}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newProofWorld(t)
			var before bytes.Buffer
			writeProofInputs(&before, nil, w.env, nil)
			sum := ProofInputs(w.env)
			tt.change(t, w)
			var after bytes.Buffer
			writeProofInputs(&after, nil, w.env, nil)
			if changed := ProofInputs(w.env) != sum; changed != tt.changes {
				t.Errorf("fingerprint changed: %v, want %v; differing inputs:\n%s", changed, tt.changes, lineDiff(before.String(), after.String()))
			}
		})
	}
}

// A remount with noexec under TMPDIR makes go run fail (its work directory
// cannot hold programs): the fingerprint sees the mount's new options.
func TestProofInputsSeeRemounts(t *testing.T) {
	testgate.Root(t, "mount a tmpfs")
	w := newProofWorld(t)
	tmp := w.path("tmp")
	if err := unix.Mount("tmpfs", tmp, "tmpfs", 0, "mode=0755"); err != nil {
		t.Fatalf("mount tmpfs on %s: %v", tmp, err)
	}
	t.Cleanup(func() { unix.Unmount(tmp, unix.MNT_DETACH) })
	sum := ProofInputs(w.env)
	if err := unix.Mount("tmpfs", tmp, "tmpfs", unix.MS_REMOUNT|unix.MS_NOEXEC, "mode=0755"); err != nil {
		t.Fatalf("remount %s noexec: %v", tmp, err)
	}
	if ProofInputs(w.env) == sum {
		t.Fatalf("remounting TMPDIR %s noexec left the fingerprint unchanged", tmp)
	}
}

// The runner lets a kept pass stand while the inputs are unchanged and for
// TTL, says so in the result, and never keeps anything but a pass.
func TestRunnerKeepsProofs(t *testing.T) {
	w := newProofWorld(t)
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	proofs := &Proofs{Dir: filepath.Join(t.TempDir(), "proofs"), TTL: 10 * time.Minute, Now: func() time.Time { return now }}
	runs := map[string]int{}
	status := Pass
	proving := func(id string, proves bool) Check {
		return Check{ID: id, Proves: proves, Run: func(context.Context, *Env) Result {
			runs[id]++
			return Result{Status: status, Summary: "built and ran"}.With("go run", "ok in 80ms")
		}}
	}
	run := func(r Runner, c Check) Result {
		t.Helper()
		return r.Run(context.Background(), w.env, []Check{c})[0]
	}
	r := Runner{Proofs: proofs}

	first := run(r, proving("p", true))
	second := run(r, proving("p", true))
	if runs["p"] != 1 {
		t.Fatalf("the check ran %d times, want once: its proof did not stand", runs["p"])
	}
	if second.Status != Pass || !strings.Contains(second.Summary, "proved 0s ago") || second.Evidence["proof"] == "" || second.Evidence["go run"] != first.Evidence["go run"] {
		t.Fatalf("a kept proof must say so and keep its evidence: %+v", second)
	}
	if !second.ProvedAt.Equal(now) || !first.ProvedAt.IsZero() {
		t.Fatalf("ProvedAt: first run %v, kept proof %v, want zero and %v", first.ProvedAt, second.ProvedAt, now)
	}
	data, err := json.Marshal(second)
	if err != nil || !strings.Contains(string(data), `"proved_at":"2026-11-30T12:00:00Z"`) {
		t.Fatalf("JSON of a kept proof: %s %v", data, err)
	}
	var back Result
	if err := json.Unmarshal(data, &back); err != nil || !back.ProvedAt.Equal(now) {
		t.Fatalf("JSON round trip lost proved_at: %+v %v", back, err)
	}
	if data, _ := json.Marshal(first); strings.Contains(string(data), "proved_at") {
		t.Fatalf("a check that ran has proved_at: %s", data)
	}

	run(Runner{}, proving("p", true)) // --fresh
	run(r, proving("q", false))
	run(r, proving("q", false))
	if runs["p"] != 2 || runs["q"] != 2 {
		t.Fatalf("runs %v: a runner without Proofs and a check that does not prove must run every time", runs)
	}

	now = now.Add(10 * time.Minute)
	run(r, proving("p", true))
	if runs["p"] != 3 {
		t.Fatalf("a proof past its TTL stood")
	}

	w.env.Target.Environ = append(w.env.Target.Environ, "CC=clang")
	run(r, proving("p", true))
	if runs["p"] != 4 {
		t.Fatalf("a proof stood after its inputs changed")
	}

	for _, s := range []Status{Fail, Warn, Error} {
		status = s
		run(r, proving("bad-"+string(s), true))
		if res := run(r, proving("bad-"+string(s), true)); res.Status != s || runs["bad-"+string(s)] != 2 {
			t.Fatalf("a %s was kept: ran %d times, then %s", s, runs["bad-"+string(s)], res.Status)
		}
	}

	if n := len(proofFiles(t, proofs.Dir)); n != 2 {
		t.Fatalf("%d proof files, want the two kept", n)
	}
	// Expired proofs are forgotten when a new one is kept: once past the
	// longest any proof stands.
	now = now.Add(WitnessedFor*10*time.Minute + time.Minute)
	status = Pass
	run(r, proving("later", true))
	if n := len(proofFiles(t, proofs.Dir)); n != 1 {
		t.Fatalf("%d proof files, want only the one that stands", n)
	}
}

// proofFiles are the proofs in dir, without the toolchains' witnesses.
func proofFiles(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), "w-") {
			names = append(names, e.Name())
		}
	}
	return names
}

// Environments that share a toolchain's files witness for each other:
// past its TTL, a proof stands while the same check passed on the same
// toolchain within the TTL in another environment, up to WitnessedFor
// TTLs; never on another toolchain's pass, nor after a failure.
func TestProofsWitnessedByAnotherEnvironment(t *testing.T) {
	const ttl = 10 * time.Minute
	w, other := newProofWorld(t), newProofWorld(t)
	t0 := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	now := t0
	proofs := &Proofs{Dir: filepath.Join(t.TempDir(), "proofs"), TTL: ttl, Now: func() time.Time { return now }}
	r := Runner{Proofs: proofs}
	// a and b: one toolchain, two environments (their own GOPATH); c:
	// another toolchain.
	a := w.env
	b := &Env{Target: &Target{Root: "/", Dir: a.Target.Dir, User: a.Target.User, Environ: append(slices.Clone(a.Target.Environ), "GOPATH="+w.path("gopath-b"))}, Toolchain: a.Toolchain}
	c := other.env
	runs := map[*Env]int{}
	status := Pass
	check := func(env *Env) Check {
		return Check{ID: "p", Proves: true, Run: func(context.Context, *Env) Result {
			runs[env]++
			return Result{Status: status, Summary: "built and ran"}
		}}
	}
	run := func(env *Env) Result { return r.Run(context.Background(), env, []Check{check(env)})[0] }
	if ProofInputs(a) == ProofInputs(b) || proofInputs(a, nil).toolchain != proofInputs(b, nil).toolchain || proofInputs(a, nil).toolchain == proofInputs(c, nil).toolchain {
		t.Fatal("a and b must differ in their inputs and share a toolchain, c have another")
	}
	expect := func(step string, env *Env, want int) Result {
		t.Helper()
		res := run(env)
		if runs[env] != want {
			t.Fatalf("%s: the check ran %d times, want %d", step, runs[env], want)
		}
		return res
	}
	expect("first proofs", a, 1)
	expect("first proofs", b, 1)
	expect("first proofs", c, 1)

	now = t0.Add(ttl)
	expect("past every TTL, with no newer pass", b, 2)
	res := expect("past its TTL, b's pass on the same toolchain witnesses", a, 1)
	if res.Status != Pass || !strings.Contains(res.Evidence["proof"], "passed this check again 0s ago (in this or another environment)") {
		t.Fatalf("a witnessed proof must say so: %+v", res)
	}
	expect("another toolchain's pass does not witness", c, 2)

	now = t0.Add(2 * ttl)
	status = Fail
	expect("a failure", b, 3)
	status = Pass
	expect("b's pass is past the TTL and its failure witnesses nothing", a, 2)

	// a's own proof (2 TTLs) stands on witnesses until at most
	// WitnessedFor TTLs after it was made.
	for now = t0.Add(3 * ttl); !now.After(t0.Add((2 + WitnessedFor) * ttl)); now = now.Add(ttl) {
		b.Target.Environ = append(b.Target.Environ, "X"+strconv.Itoa(runs[b])+"=1") // b proves again
		expect("b proves", b, runs[b]+1)
		run(a)
	}
	if runs[a] != 3 {
		t.Fatalf("a proof witnessed every TTL ran %d times over %d TTLs, want once again, at WitnessedFor/2 to WitnessedFor TTLs", runs[a]-2, WitnessedFor)
	}
}

// A proof is trusted only in this user's own private directory: a proof
// that another user could write would let them make the doctor pass a
// toolchain it never ran.
func TestProofsTrustOnlyPrivateDirectories(t *testing.T) {
	w := newProofWorld(t)
	dir := filepath.Join(t.TempDir(), "proofs")
	ran := 0
	c := Check{ID: "p", Proves: true, Run: func(context.Context, *Env) Result { ran++; return Passf("built") }}
	r := Runner{Proofs: &Proofs{Dir: dir}}
	r.Run(context.Background(), w.env, []Check{c})
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	r.Run(context.Background(), w.env, []Check{c})
	if ran != 2 {
		t.Fatalf("a proof in world-writable %s stood", dir)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if err := os.Chmod(filepath.Join(dir, e.Name()), 0o666); err != nil {
			t.Fatal(err)
		}
	}
	r.Run(context.Background(), w.env, []Check{c})
	if ran != 3 {
		t.Fatalf("a world-writable proof file stood")
	}
}

func mustWrite(t *testing.T, p, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	// A rewrite within the same clock tick must still be seen: the size or
	// the inode changes with these contents, and ctime with the write.
	if err := os.WriteFile(p, []byte(content), 0o755); err != nil {
		t.Fatal(err)
	}
}

func mustChmod(t *testing.T, p string, mode os.FileMode) {
	t.Helper()
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
}

func mustRemove(t *testing.T, p string) {
	t.Helper()
	if err := os.RemoveAll(p); err != nil {
		t.Fatal(err)
	}
}

func lineDiff(a, b string) string {
	in := map[string]bool{}
	for l := range strings.Lines(a) {
		in[l] = true
	}
	var out strings.Builder
	for l := range strings.Lines(b) {
		if !in[l] {
			out.WriteString("+ " + strings.ReplaceAll(l, "\x00", " "))
		}
	}
	return out.String()
}

// BenchmarkProofInputs fingerprints the machine's own toolchain, as every
// run that lets a proof stand does once.
func BenchmarkProofInputs(b *testing.B) {
	target, err := LocalTarget()
	if err != nil {
		b.Fatal(err)
	}
	tc, err := ResolveToolchain(context.Background(), target, "")
	if err != nil || tc.Err != nil {
		b.Fatalf("resolve the toolchain: %v %v", err, tc.Err)
	}
	env := &Env{Target: target, Toolchain: tc}
	for b.Loop() {
		ProofInputs(env)
	}
}

// With WalkReuse, the standard library walk of one GOROOT stands for that
// long for every fingerprint, whichever root it is entered through: a
// package removed meanwhile is seen once it has passed, and at once
// without it.
func TestWalkReuse(t *testing.T) {
	w := newProofWorld(t)
	now := time.Now()
	reused := &Proofs{Dir: t.TempDir(), WalkReuse: time.Hour}
	fresh := &Proofs{Dir: t.TempDir()}
	sumReused, sumFresh := reused.inputs(w.env), fresh.inputs(w.env)
	if sumReused != sumFresh {
		t.Fatalf("a first fingerprint with WalkReuse differs from one without: %x %x", sumReused, sumFresh)
	}
	// The same GOROOT through another root (as /proc/PID/root/... is to
	// /...): the same directories, the same input.
	through := *w.env
	through.Target = &Target{Root: "/proc/self/root", Dir: w.env.Target.Dir, User: w.env.Target.User, Environ: w.env.Target.Environ}
	var direct, entered bytes.Buffer
	new(stdWalks).put(&direct, w.env.Target, w.path("go/src"))
	new(stdWalks).put(&entered, through.Target, w.path("go/src"))
	if direct.String() != entered.String() {
		t.Errorf("one GOROOT through two roots, two inputs:\n%s", lineDiff(direct.String(), entered.String()))
	}

	mustRemove(t, w.path("go/src/net/http"))
	if reused.inputs(w.env) != sumReused {
		t.Errorf("within WalkReuse, the kept walk was not reused")
	}
	if fresh.inputs(w.env) == sumFresh {
		t.Errorf("without WalkReuse, a package removed left the fingerprint unchanged")
	}
	reused.walks.mu.Lock()
	for k, m := range reused.walks.kept {
		m.at = now.Add(-2 * time.Hour)
		reused.walks.kept[k] = m
	}
	reused.walks.mu.Unlock()
	if reused.inputs(w.env) == sumReused {
		t.Errorf("past WalkReuse, a package removed left the fingerprint unchanged")
	}
}
