package matrix

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gopatrol/gopatrol/agent/check"
	"github.com/gopatrol/gopatrol/agent/check/catalog"
	"github.com/gopatrol/gopatrol/agent/check/checktest"
	"github.com/gopatrol/gopatrol/internal/testgate"
)

// minMinor is the oldest release of the matrix: go.env and GOTOOLCHAIN
// arrived in Go 1.21, and the go command cannot switch to anything older.
const minMinor = 21

// debianGoRoot is where Debian's golang-1.NN-go package installs Go
// (`make deps` installs it); its src, VERSION and more are links into
// /usr/share/go-1.NN.
const debianGoGlob = "/usr/lib/go-1.*"

// installationIndependent are the warnings a healthy installation may
// still get, because they are about the machine or the network rather
// than the Go installation; docs/checks.md ("Version awareness") lists
// them. Each names the check and a phrase of its summary.
var installationIndependent = []struct{ id, phrase string }{
	// The kernel's ASLR setting is the host's, whatever Go runs.
	{"build.pie-aslr", "randomize_va_space"},
}

// toolchains is the fetched matrix, shared by the test and the benchmark.
var toolchains struct {
	once     sync.Once
	releases []string
	roots    map[string]string
	skipped  map[string]string // version → why it could not be fetched
	err      error
	took     time.Duration
	fetched  int
}

// fetchAll fetches every release of the matrix once per test binary.
func fetchAll(tb testing.TB) (releases []string, roots map[string]string) {
	tb.Helper()
	toolchains.once.Do(func() {
		start := time.Now()
		cache, err := CacheDir()
		if err != nil {
			toolchains.err = err
			return
		}
		f := &Fetcher{Go: checktest.RealGo(tb), Cache: cache, Log: slog.New(slog.NewTextHandler(os.Stderr, nil))}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		toolchains.releases, toolchains.err = f.Releases(ctx, minMinor)
		toolchains.roots = map[string]string{}
		toolchains.skipped = map[string]string{}
		for _, v := range toolchains.releases {
			root, downloaded, err := f.Fetch(ctx, v)
			if err != nil {
				toolchains.skipped[v] = err.Error()
				continue
			}
			if downloaded {
				toolchains.fetched++
			}
			toolchains.roots[v] = root
		}
		toolchains.took = time.Since(start)
	})
	if toolchains.err != nil {
		testgate.Missing(tb, "the matrix toolchains cannot be listed: %v", toolchains.err)
	}
	for v, why := range toolchains.skipped {
		if testgate.Required() {
			tb.Fatalf("toolchain %s cannot be fetched: %s (%s=1)", v, why, testgate.RequireEnv)
		}
		tb.Logf("toolchain %s left out: cannot be fetched: %s", v, why)
	}
	if len(toolchains.roots) == 0 {
		testgate.Missing(tb, "no toolchain of the matrix could be fetched")
	}
	tb.Logf("matrix: %d toolchains (%d downloaded now) in %s: %v", len(toolchains.roots), toolchains.fetched, toolchains.took.Round(time.Millisecond), toolchains.releases)
	return toolchains.releases, toolchains.roots
}

// installation is one way Go is installed on a machine.
type installation struct {
	name string
	// bin is the directory put first on PATH, holding `go`.
	bin string
	// modfile is the module's go.mod after its module line.
	modfile string
	// version is what `go version` prints inside the module.
	version string
	// broken says the real commands are expected to fail, and cause is
	// what the doctor's failed check must name.
	broken bool
	cause  string
}

const module = "module example.com/matrix\n\n"

func installations(t testing.TB, releases []string, roots map[string]string) []installation {
	var out []installation
	var have []string
	for _, v := range releases {
		if root, ok := roots[v]; ok {
			have = append(have, v)
			out = append(out, installation{name: v, bin: filepath.Join(root, "bin"), modfile: "go 1.19\n", version: v})
		}
	}

	// Debian's packaged Go, reached the way golang-go links it:
	// /usr/bin/go -> ../lib/go/bin/go, /usr/lib/go -> go-1.NN.
	debs, _ := filepath.Glob(debianGoGlob)
	if len(debs) == 0 {
		testgate.Missing(t, "no Debian Go in %s (make deps installs golang-1.19-go)", debianGoGlob)
	} else {
		deb := debs[len(debs)-1]
		dir := t.TempDir()
		usr := filepath.Join(dir, "usr")
		mustDo(t, os.MkdirAll(filepath.Join(usr, "bin"), 0o755))
		mustDo(t, os.MkdirAll(filepath.Join(usr, "lib"), 0o755))
		mustDo(t, os.Symlink(deb, filepath.Join(usr, "lib", "go")))
		mustDo(t, os.Symlink("../lib/go/bin/go", filepath.Join(usr, "bin", "go")))
		v := readVersion(t, deb)
		out = append(out, installation{name: "debian-" + v, bin: filepath.Join(usr, "bin"), modfile: "go 1.19\n", version: v})
	}
	if len(have) == 0 {
		return out
	}
	newest, oldest := have[len(have)-1], have[0]

	// A Go unpacked under a home directory (a copy, as tar leaves it),
	// run through a wrapper script on PATH, as version managers' shims do.
	home := t.TempDir()
	sdk := filepath.Join(home, "sdk", newest)
	mustDo(t, os.MkdirAll(filepath.Dir(sdk), 0o755))
	cp := exec.Command("cp", "-a", roots[newest], sdk)
	if b, err := cp.CombinedOutput(); err != nil {
		t.Fatalf("unpack %s into %s: %v: %s", newest, sdk, err, b)
	}
	wrapperBin := filepath.Join(home, "bin")
	mustDo(t, os.MkdirAll(wrapperBin, 0o755))
	mustDo(t, os.WriteFile(filepath.Join(wrapperBin, "go"), []byte("#!/bin/sh\nexec "+filepath.Join(sdk, "bin", "go")+" \"$@\"\n"), 0o755))
	out = append(out, installation{name: "home-wrapper-" + newest, bin: wrapperBin, modfile: "go 1.19\n", version: newest})

	// The oldest release on PATH, the newest selected by the module's
	// toolchain line (GOTOOLCHAIN=auto from go.env). Offline, the go
	// command runs it from PATH (as golang.org/dl installs it, goX.Y.Z);
	// from the module cache it would verify it against GOSUMDB first.
	if oldest != newest {
		dl := filepath.Join(t.TempDir(), "dl")
		mustDo(t, os.MkdirAll(dl, 0o755))
		mustDo(t, os.Symlink(filepath.Join(roots[newest], "bin", "go"), filepath.Join(dl, newest)))
		out = append(out, installation{name: "toolchain-line-" + oldest + "-to-" + newest, bin: filepath.Join(roots[oldest], "bin") + ":" + dl,
			modfile: "go 1.21\n\ntoolchain " + newest + "\n", version: newest})
		// Only in the module cache, with GOSUMDB=off: the switch is
		// refused, every command fails.
		out = append(out, installation{name: "toolchain-line-cached-unverifiable", bin: filepath.Join(roots[oldest], "bin"),
			modfile: "go 1.21\n\ntoolchain " + newest + "\n", broken: true, cause: "GOSUMDB=off"})
		// A toolchain line naming a release that is neither cached nor
		// downloadable (GOPROXY=off): every command fails.
		missing := "go1." + strings.Split(newest, ".")[1] + ".999"
		out = append(out, installation{name: "toolchain-line-uncached", bin: filepath.Join(roots[oldest], "bin"),
			modfile: "go 1.21\n\ntoolchain " + missing + "\n", broken: true, cause: missing})
	}
	return out
}

// world is the installation's machine: PATH starting at its bin, the
// matrix module cache (where switched-to toolchains live), no network.
func (in installation) world(t testing.TB, modCache string) *checktest.World {
	w := checktest.New(t)
	w.Setenv("PATH="+in.bin+":/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		// Offline, as tests must be: no proxy and no checksum database
		// (with GOPROXY=off the go command still dials GOSUMDB directly).
		"GOMODCACHE="+modCache, "GOPROXY=off", "GOSUMDB=off")
	// GOTOOLCHAIN as shipped: go.env's auto where there is one.
	w.Unsetenv("GOTOOLCHAIN")
	files := map[string]string{
		"go.mod":       module + in.modfile,
		"main.go":      "package main\n\nimport \"fmt\"\n\nfunc main() { fmt.Println(greeting()) }\n\nfunc greeting() string { return \"matrix-ok\" }\n",
		"main_test.go": "package main\n\nimport \"testing\"\n\nfunc TestGreeting(t *testing.T) {\n\tif g := greeting(); g != \"matrix-ok\" {\n\t\tt.Fatalf(\"greeting() = %q\", g)\n\t}\n}\n",
	}
	for name, body := range files {
		mustDo(t, os.WriteFile(filepath.Join(w.Target.Dir, name), []byte(body), 0o644))
	}
	return w
}

// realCommands runs go version, build, test and run in the module as a
// user would, and returns the first failure.
func realCommands(t *testing.T, w *checktest.World, wantVersion string) error {
	// The go the world's PATH finds, as a shell would: exec.Command
	// would search the test's own PATH.
	found := w.Target.LookPath("go")
	if len(found) == 0 {
		t.Fatalf("no go on the world's PATH %s", w.Getenv("PATH"))
	}
	for _, args := range [][]string{
		{"version"},
		{"build", "-o", filepath.Join(t.TempDir(), "app"), "."},
		{"test", "-count=1", "."},
		{"run", "."},
	} {
		// Long: on a cold cache a release first builds its standard
		// library, and a slow command is not a broken one.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		out, err := check.CombinedOutput(w.Target.Command(ctx, found[0], args...))
		cancel()
		t.Logf("go %s: %s", strings.Join(args, " "), check.FirstLines(string(out), 3, " | "))
		if err != nil {
			return fmt.Errorf("go %s: %w: %s", strings.Join(args, " "), err, check.FirstLines(string(out), 3, " | "))
		}
		switch args[0] {
		case "version":
			if wantVersion != "" && !strings.Contains(string(out), wantVersion+" ") {
				t.Fatalf("go version in the module printed %q, want %s: the world is not the one meant", out, wantVersion)
			}
		case "run":
			if strings.TrimSpace(string(out)) != "matrix-ok" {
				return fmt.Errorf("go run printed %q, want matrix-ok", out)
			}
		}
	}
	return nil
}

// defaultSet runs the doctor's default checks in the world, with the
// runner a user gets: no --timeout, so a release's first run, whose builds
// fill a cold cache, is told from a hang the doctor's own way (the
// cold-cache timeouts and the fill watch of the checks that build). A
// fixed --timeout would switch that off: a cold run of the whole matrix
// beside other work once took 5 minutes per check there. Speed is
// BenchmarkDefaultSet's business.
func defaultSet(t testing.TB, w *checktest.World) []check.Result {
	checks, err := check.Select(catalog.All(), nil, nil, false)
	if err != nil {
		t.Fatal(err)
	}
	return check.Runner{Proofs: w.Proofs}.Run(context.Background(), w.Env(), checks)
}

func allowed(r check.Result) bool {
	for _, a := range installationIndependent {
		if r.ID == a.id && strings.Contains(r.Summary, a.phrase) {
			return true
		}
	}
	return false
}

// TestMatrix: on every installation, the doctor agrees with the go
// command. Installations run in parallel (each builds for real, so the
// test runner's -parallel, GOMAXPROCS, bounds them).
func TestMatrix(t *testing.T) {
	testgate.Slow(t, "the matrix builds with every Go release: not in -short")
	if runtime.GOOS != "linux" {
		testgate.Missing(t, "the matrix runs on linux (its toolchains are fetched for %s/%s)", runtime.GOOS, runtime.GOARCH)
	}
	releases, roots := fetchAll(t)
	cache, _ := CacheDir()
	modCache := (&Fetcher{Cache: cache}).ModCache()
	start := time.Now()
	t.Cleanup(func() {
		t.Logf("matrix: %s for the installations (toolchains fetched in %s)", time.Since(start).Round(time.Millisecond), toolchains.took.Round(time.Millisecond))
	})
	for _, in := range installations(t, releases, roots) {
		t.Run(in.name, func(t *testing.T) {
			t.Parallel()
			w := in.world(t, modCache)
			cmdErr := realCommands(t, w, in.version)
			results := defaultSet(t, w)
			var failed []check.Result
			for _, r := range results {
				if r.Status != check.Pass && r.Status != check.Skip {
					t.Logf("%s: %s: %s evidence=%v", r.ID, r.Status, r.Summary, r.Evidence)
				}
				if r.Status == check.Fail {
					failed = append(failed, r)
				}
			}
			switch {
			case in.broken && cmdErr == nil:
				t.Fatalf("the go commands work, but this installation was built to break them")
			case !in.broken && cmdErr != nil:
				t.Fatalf("the go commands fail on a healthy installation: %v", cmdErr)
			case cmdErr != nil:
				named := slices.ContainsFunc(failed, func(r check.Result) bool { return checktest.EvidenceContains(r, in.cause) })
				if !named {
					t.Errorf("the go commands fail (%v), but no failed check names %s", cmdErr, in.cause)
				}
			default:
				for _, r := range results {
					if (r.Status == check.Fail || r.Status == check.Warn || r.Status == check.Error) && !allowed(r) {
						t.Errorf("the go commands work, yet %s is %s: %s (evidence %v)", r.ID, r.Status, r.Summary, r.Evidence)
					}
				}
			}
		})
	}
}

func readVersion(t testing.TB, goroot string) string {
	b, err := os.ReadFile(filepath.Join(goroot, "VERSION"))
	if err != nil {
		t.Fatalf("Go root %s without VERSION: %v", goroot, err)
	}
	return strings.TrimSpace(strings.SplitN(string(b), "\n", 2)[0])
}

func mustDo(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
