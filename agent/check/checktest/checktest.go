package checktest

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/gopatrol/gopatrol/agent/check"
	"github.com/gopatrol/gopatrol/internal/testgate"
)

// World is a machine for one test: the real Go toolchain, a temporary HOME,
// GOENV, GOPATH and working directory, and the real build cache (warm, so
// that tests which build stay fast). Tests change it with Setenv, Unsetenv
// and AsUser, then call Run.
type World struct {
	T      testing.TB
	Target *check.Target
	// GoBin is --go: empty means the first go on the world's PATH.
	GoBin string
	// Dir is a scratch directory that every user can enter, for worlds
	// probed as another user (t.TempDir is 0700).
	Dir string
	// Proofs, when set, is the runner's Proofs in Run: kept proofs stand.
	Proofs *check.Proofs
}

// RealGo is the go binary the tests run with, resolved through links.
func RealGo(t testing.TB) string {
	t.Helper()
	p, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("no go on PATH: %v", err)
	}
	p, err = filepath.EvalSymlinks(p)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// New returns a healthy world.
func New(t testing.TB) *World {
	t.Helper()
	goBin := RealGo(t)
	out, err := exec.Command(goBin, "env", "GOCACHE", "GOMODCACHE").Output()
	if err != nil {
		t.Fatalf("go env: %v", err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	dir, err := os.MkdirTemp("", "gopatrol-world-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { removeAll(dir) })
	home := filepath.Join(dir, "home")
	work := filepath.Join(dir, "work")
	for _, d := range []string{home, work, filepath.Join(home, "go")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// The go command's telemetry would write into HOME while Cleanup
	// removes it, leaving directories behind: turn it off as `go telemetry
	// off` does.
	telemetry := filepath.Join(home, ".config", "go", "telemetry")
	if err := os.MkdirAll(telemetry, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(telemetry, "mode"), []byte("off"), 0o644); err != nil {
		t.Fatal(err)
	}
	env := []string{
		"PATH=" + filepath.Dir(goBin) + ":/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"HOME=" + home,
		"GOENV=" + filepath.Join(home, "goenv"),
		"GOPATH=" + filepath.Join(home, "go"),
		"GOCACHE=" + lines[0],
		"GOMODCACHE=" + lines[1],
		"GOTOOLCHAIN=local",
		"GOPROXY=off",
		"GOFLAGS=",
		"LANG=C",
	}
	for _, keep := range []string{"TMPDIR", "SSL_CERT_FILE", "SSL_CERT_DIR", "CC"} {
		if v, ok := os.LookupEnv(keep); ok {
			env = append(env, keep+"="+v)
		}
	}
	target := &check.Target{Root: "/", Dir: work, Environ: env}
	local, err := check.LocalTarget()
	if err != nil {
		t.Fatal(err)
	}
	target.User = local.User
	return &World{T: t, Target: target, Dir: dir}
}

// Setenv sets environment variables ("KEY=value") of the world.
func (w *World) Setenv(kv ...string) {
	for _, a := range kv {
		k, _, _ := strings.Cut(a, "=")
		w.Unsetenv(k)
		w.Target.Environ = append(w.Target.Environ, a)
	}
}

// Unsetenv removes a variable from the world's environment.
func (w *World) Unsetenv(key string) {
	w.Target.Environ = slices.DeleteFunc(w.Target.Environ, func(kv string) bool {
		return strings.HasPrefix(kv, key+"=")
	})
}

// Getenv returns a variable of the world's environment.
func (w *World) Getenv(key string) string { return w.Target.Getenv(key) }

// AsUser makes the world's builds run as name (for example "nobody"); the
// test is skipped unless it runs as root, which CI does.
func (w *World) AsUser(name string) {
	w.T.Helper()
	RequireRoot(w.T)
	u, err := w.Target.LookupUser(name)
	if err != nil {
		w.T.Fatal(err)
	}
	w.Target.User = u
}

// RequireRoot skips a test that needs root to build its world, or fails
// it where root is required (testgate).
func RequireRoot(t testing.TB) {
	t.Helper()
	testgate.Root(t, "build this world")
}

// Env resolves the world's toolchain, as `gopatrol check` does once a run.
func (w *World) Env() *check.Env {
	w.T.Helper()
	tc, err := check.ResolveToolchain(context.Background(), w.Target, w.GoBin)
	if err != nil {
		w.T.Fatalf("resolve toolchain: %v", err)
	}
	return &check.Env{Target: w.Target, Toolchain: tc}
}

// Run runs one check in the world through the real runner.
func (w *World) Run(c check.Check) check.Result {
	w.T.Helper()
	res := check.Runner{Proofs: w.Proofs}.Run(context.Background(), w.Env(), []check.Check{c})[0]
	w.T.Logf("%s: %s: %s evidence=%v fix=%q", res.ID, res.Status, res.Summary, res.Evidence, res.Fix)
	return res
}

// Find returns the check with id from checks, failing the test if absent.
func Find(t testing.TB, checks []check.Check, id string) check.Check {
	t.Helper()
	for _, c := range checks {
		if c.ID == id {
			return c
		}
	}
	t.Fatalf("no check %q", id)
	return check.Check{}
}

// EvidenceContains reports whether any evidence value (or the summary)
// mentions s: tests assert that a result names the offending path or value.
func EvidenceContains(r check.Result, s string) bool { return r.Mentions(s) }

// removeAll also removes what a test made read-only or immutable.
func removeAll(dir string) {
	_ = filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.IsDir() {
			_ = os.Chmod(p, 0o755)
		}
		return nil
	})
	_ = os.RemoveAll(dir)
}

// MountTmpfs mounts a fresh tmpfs with the given mount options (for example
// "noexec,mode=0755" or "ro") at dir, creating dir, and unmounts it when
// the test ends, before the world's files are removed. It skips without
// root; as root (CI) a mount that fails fails the test, so a world that could
// not be built never passes for a diagnosed one.
func MountTmpfs(t testing.TB, dir, options string) string {
	t.Helper()
	RequireRoot(t)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	// mount(8) spells flags and filesystem data alike; mount(2) wants the
	// generic ones as flags.
	var flags uintptr
	var data []string
	for _, o := range strings.Split(options, ",") {
		switch o {
		case "ro":
			flags |= unix.MS_RDONLY
		case "noexec":
			flags |= unix.MS_NOEXEC
		case "nosuid":
			flags |= unix.MS_NOSUID
		case "nodev":
			flags |= unix.MS_NODEV
		case "":
		default:
			data = append(data, o)
		}
	}
	if err := unix.Mount("tmpfs", dir, "tmpfs", flags, strings.Join(data, ",")); err != nil {
		t.Fatalf("mount tmpfs -o %s on %s: %v", options, dir, err)
	}
	t.Cleanup(func() { _ = unix.Unmount(dir, unix.MNT_DETACH) })
	return dir
}

// WriteFile writes a file of a world, creating its directory, with exactly
// mode (the umask does not apply).
func WriteFile(t testing.TB, path, content string, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

// Expect asserts what every diagnosed world must show: the status, evidence
// (or summary) naming each offending path or value, and a fix whenever the
// check warns or fails.
func Expect(t testing.TB, res check.Result, want check.Status, names ...string) {
	t.Helper()
	if res.Status != want {
		t.Errorf("%s: status %s, want %s: %s %v", res.ID, res.Status, want, res.Summary, res.Evidence)
	}
	for _, n := range names {
		if !EvidenceContains(res, n) {
			t.Errorf("%s: evidence does not name %q: %s %v", res.ID, n, res.Summary, res.Evidence)
		}
	}
	// A consequence names the check it follows from instead of a fix.
	if (res.Status == check.Fail || res.Status == check.Warn) && res.Fix == "" && res.Evidence["follows"] == "" {
		t.Errorf("%s: %s without a fix", res.ID, res.Status)
	}
}

// GoInHome unpacks the world's Go into $HOME/go, as a person following a
// tarball's instructions into their home does, and puts its bin first on
// PATH: GOROOT is then the go command's default GOPATH. The files are hard
// links to the real installation (same content, no copy).
func (w *World) GoInHome() string {
	w.T.Helper()
	goroot := filepath.Dir(filepath.Dir(RealGo(w.T)))
	home := w.Getenv("HOME")
	dst := filepath.Join(home, "go")
	if err := os.RemoveAll(dst); err != nil {
		w.T.Fatal(err)
	}
	if out, err := exec.Command("cp", "-al", goroot, dst).CombinedOutput(); err != nil {
		w.T.Fatalf("cp -al %s %s: %v: %s", goroot, dst, err, out)
	}
	w.Setenv("PATH=" + filepath.Join(dst, "bin") + ":" + w.Getenv("PATH"))
	return dst
}
