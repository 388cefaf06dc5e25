package check_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gopatrol/gopatrol/agent/check"
	"github.com/gopatrol/gopatrol/agent/check/catalog"
	"github.com/gopatrol/gopatrol/agent/check/checktest"
)

// base is the usual timeout the tests give the checks that build: far
// shorter than compiling the standard library into a cold cache, so that
// only the fill watch can let them finish.
const base = 2 * time.Second

// cacheChecks are the default set's checks that compile with the
// target's GOCACHE, with their timeouts cut to base.
func cacheChecks(t *testing.T) []check.Check {
	var out []check.Check
	for _, id := range []string{"env.functional", "build.pie-aslr"} {
		c := checktest.Find(t, catalog.All(), id)
		if !c.FillsCache {
			t.Fatalf("%s does not say it fills the build cache", id)
		}
		c.Timeout = base
		out = append(out, c)
	}
	return out
}

// On a build cache that is cold for the running release, the checks that
// build overrun their usual timeout while they compile the standard
// library, and still pass, saying it was a cold cache. Both kinds of cold
// are real: a fresh empty GOCACHE (no trim.txt: Toolchain.ColdCache), and
// one that looks warm (another release trimmed it) but holds nothing this
// release can use, the matrix's case after a Go upgrade.
func TestColdCacheIsNotAHang(t *testing.T) {
	for _, tc := range []struct {
		name         string
		trimmed      bool
		wantColdFlag bool
	}{
		{"fresh empty cache", false, true},
		{"warm for another release", true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := checktest.New(t)
			cache := filepath.Join(t.TempDir(), "go-build")
			if tc.trimmed {
				if err := os.MkdirAll(cache, 0o755); err != nil {
					t.Fatal(err)
				}
				checktest.WriteFile(t, filepath.Join(cache, "trim.txt"), "1764460800\n", 0o644)
			}
			w.Setenv("GOCACHE=" + cache)
			env := resolve(t, w)
			if env.Toolchain.ColdCache != tc.wantColdFlag {
				t.Fatalf("Toolchain.ColdCache = %v, want %v", env.Toolchain.ColdCache, tc.wantColdFlag)
			}
			for _, res := range (check.Runner{Stall: check.DefaultStall}).Run(t.Context(), env, cacheChecks(t)) {
				t.Logf("%s: %s in %s: %s evidence=%v", res.ID, res.Status, res.Duration.Round(time.Millisecond), res.Summary, res.Evidence)
				if res.Status == check.Error {
					t.Errorf("%s: %s on a cold cache: %s", res.ID, res.Status, res.Summary)
				}
				if res.Duration <= base {
					t.Errorf("%s took %s, within its %s: the cache was not cold, the test proves nothing", res.ID, res.Duration, base)
				}
				if !checktest.EvidenceContains(res, "compiling into the build cache "+cache) {
					t.Errorf("%s: no cold-cache evidence naming %s: %v", res.ID, cache, res.Evidence)
				}
			}
		})
	}
}

// resolve resolves the world's toolchain as the doctor does, trying
// three times: on a machine with a load average of 40, `go env` can
// overrun its 10 s deadline, which is not what these tests are about.
func resolve(t *testing.T, w *checktest.World) *check.Env {
	t.Helper()
	for try := 1; ; try++ {
		tc, err := check.ResolveToolchain(t.Context(), w.Target, w.GoBin)
		if err == nil && tc.Err == nil {
			return &check.Env{Target: w.Target, Toolchain: tc}
		}
		if err == nil {
			err = tc.Err
		}
		if try == 3 {
			t.Fatalf("the toolchain did not resolve: %v", err)
		}
		t.Logf("resolve the toolchain, try %d: %v", try, err)
	}
}

// A go command that hangs writes nothing to the build cache: the checks
// end at their usual timeout plus the stall window, as a hang.
func TestHangIsNotAColdCache(t *testing.T) {
	w := checktest.New(t)
	bin := filepath.Join(t.TempDir(), "bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	// go env and go list answer; every build hangs.
	script := "#!/bin/sh\ncase \"$1\" in run|build) exec sleep 300;; esac\nexec " + checktest.RealGo(t) + " \"$@\"\n"
	checktest.WriteFile(t, filepath.Join(bin, "go"), script, 0o755)
	w.GoBin = filepath.Join(bin, "go")
	// A cache of its own: other builds writing to the machine's cache
	// would look like progress (the watch then waits up to
	// FillLimit, as documented).
	w.Setenv("GOCACHE=" + filepath.Join(t.TempDir(), "go-build"))
	const stall = 3 * time.Second
	start := time.Now()
	for _, res := range (check.Runner{Stall: stall}).Run(t.Context(), resolve(t, w), cacheChecks(t)) {
		t.Logf("%s: %s in %s: %s evidence=%v", res.ID, res.Status, res.Duration.Round(time.Millisecond), res.Summary, res.Evidence)
		if res.Status != check.Error || !strings.Contains(res.Summary, "a hang, not a cold cache") {
			t.Errorf("%s: %s %q, want an error saying it hung", res.ID, res.Status, res.Summary)
		}
	}
	// Generous for a loaded machine, far under FillLimit.
	if took := time.Since(start); took > base+stall+30*time.Second {
		t.Errorf("the hung checks took %s: the watch let them run past base+stall", took)
	}
}
