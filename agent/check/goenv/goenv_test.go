package goenv_test

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/gopatrol/gopatrol/agent/check"
	"github.com/gopatrol/gopatrol/agent/check/checktest"
	"github.com/gopatrol/gopatrol/agent/check/goenv"
)

func TestChecks(t *testing.T) {
	checks := goenv.Checks()
	checktest.RunCases(t, checks, []checktest.Case{
		{
			Name: "unparsable GOFLAGS: a word that is no flag",
			ID:   "env.config",
			Setup: func(t *testing.T, w *checktest.World) []string {
				w.Setenv("GOFLAGS=-mod=mod trimpath")
				return []string{`"trimpath"`}
			},
			Want: check.Fail,
		},
		{
			Name: "unparsable GOFLAGS: unterminated quote",
			ID:   "env.config",
			Setup: func(t *testing.T, w *checktest.World) []string {
				w.Setenv(`GOFLAGS=-mod=mod '-ldflags=-s -w`)
				return []string{"unterminated ' string"}
			},
			Want: check.Fail,
		},
		{
			Name: "GOFLAGS with a flag the go command does not know",
			ID:   "env.config",
			Setup: func(t *testing.T, w *checktest.World) []string {
				w.Setenv("GOFLAGS=-mod=mod -bogusflag")
				return []string{"-bogusflag"}
			},
			Want: check.Fail,
		},
		{
			Name: "bad GOFLAGS in the GOENV file behind an empty GOFLAGS variable",
			ID:   "env.config",
			Setup: func(t *testing.T, w *checktest.World) []string {
				// The world has GOFLAGS= in its environment; cmd/go
				// treats an empty variable as unset and reads the file.
				checktest.WriteFile(t, w.Getenv("GOENV"), "GOFLAGS=-bogusflag\n", 0o600)
				return []string{"-bogusflag", w.Getenv("GOENV")}
			},
			Want: check.Fail,
		},
		{
			// Syntax and flag name are fine: only a build command sees
			// the bad value, so env.config runs one in the real
			// environment.
			Name: "GOFLAGS with a value the go command rejects",
			ID:   "env.config",
			Setup: func(t *testing.T, w *checktest.World) []string {
				w.Setenv("GOFLAGS=-mod=bogus")
				return []string{"-mod=bogus not supported"}
			},
			Want: check.Fail,
		},
		{
			Name: "GOFLAGS -p=abc: an invalid number",
			ID:   "env.config",
			Setup: func(t *testing.T, w *checktest.World) []string {
				w.Setenv("GOFLAGS=-p=abc")
				return []string{`invalid value "abc" for flag -p`}
			},
			Want: check.Fail,
		},
		{
			Name: "GOENV file GOFLAGS=-tags without a value",
			ID:   "env.config",
			Setup: func(t *testing.T, w *checktest.World) []string {
				checktest.WriteFile(t, w.Getenv("GOENV"), "GOFLAGS=-tags\n", 0o600)
				return []string{"flag needs an argument: -tags", w.Getenv("GOENV")}
			},
			Want: check.Fail,
		},
		{
			Name: "GO111MODULE=off",
			ID:   "env.config",
			Setup: func(t *testing.T, w *checktest.World) []string {
				w.Setenv("GO111MODULE=off")
				return []string{"GO111MODULE=off", "cannot find main module"}
			},
			Want: check.Fail,
		},
		{
			Name: "invalid GOTOOLCHAIN",
			ID:   "env.config",
			Setup: func(t *testing.T, w *checktest.World) []string {
				w.Setenv("GOTOOLCHAIN=bash")
				return []string{`"bash"`}
			},
			Want: check.Fail,
		},
		{
			Name: "unknown GOEXPERIMENT, so go env fails",
			ID:   "env.config",
			Setup: func(t *testing.T, w *checktest.World) []string {
				w.Setenv("GOEXPERIMENT=nosuchexperiment")
				return []string{"nosuchexperiment"}
			},
			Want: check.Fail,
		},
		{
			Name: "GOWORK names a missing file",
			ID:   "env.config",
			Setup: func(t *testing.T, w *checktest.World) []string {
				missing := filepath.Join(w.Dir, "gone", "go.work")
				w.Setenv("GOWORK=" + missing)
				return []string{missing}
			},
			Want: check.Warn,
		},
		{
			Name: "go.work above the module",
			ID:   "env.config",
			Setup: func(t *testing.T, w *checktest.World) []string {
				mod := filepath.Join(w.Target.Dir, "m")
				checktest.WriteFile(t, filepath.Join(mod, "go.mod"), "module example.test/m\n\ngo 1.21\n", 0o644)
				work := filepath.Join(w.Target.Dir, "go.work")
				checktest.WriteFile(t, work, "go 1.21\n\nuse ./m\n", 0o644)
				w.Target.Dir = mod
				return []string{work}
			},
			Want: check.Warn,
		},
		{
			Name: "GOENV file with an ignored line and a readable password",
			ID:   "env.config",
			Setup: func(t *testing.T, w *checktest.World) []string {
				f := w.Getenv("GOENV")
				checktest.WriteFile(t, f, "GOPRIVATE=example.test\ngoproxy=http://127.0.0.1:9/\nGOPROXY=https://ci:s3cret@127.0.0.1:9/mod,off\n", 0o644)
				return []string{f, "line 2", "line 3", "ci:***@"}
			},
			Want: check.Warn,
		},
		{
			Name: "GOPROXY empty in the GOENV file",
			ID:   "env.config",
			Setup: func(t *testing.T, w *checktest.World) []string {
				w.Unsetenv("GOPROXY")
				checktest.WriteFile(t, w.Getenv("GOENV"), "GOPROXY=\n", 0o600)
				return []string{"GOPROXY is empty"}
			},
			Want: check.Warn,
		},
		{
			Name: "GOROOT without go.env",
			ID:   "env.config",
			Setup: func(t *testing.T, w *checktest.World) []string {
				// A root made of links to the real one, minus go.env.
				real := filepath.Dir(filepath.Dir(checktest.RealGo(t)))
				root := filepath.Join(w.Dir, "root")
				if err := os.Mkdir(root, 0o755); err != nil {
					t.Fatal(err)
				}
				des, err := os.ReadDir(real)
				if err != nil {
					t.Fatal(err)
				}
				for _, de := range des {
					if de.Name() != "go.env" {
						if err := os.Symlink(filepath.Join(real, de.Name()), filepath.Join(root, de.Name())); err != nil {
							t.Fatal(err)
						}
					}
				}
				w.Setenv("GOROOT=" + root)
				return []string{filepath.Join(root, "go.env")}
			},
			Want: check.Warn,
		},
		{
			Name: "relative GOPATH",
			ID:   "env.consistency",
			Setup: func(t *testing.T, w *checktest.World) []string {
				w.Setenv("GOPATH=gopath", "GOMODCACHE="+filepath.Join(w.Dir, "modcache"))
				return []string{`"gopath"`}
			},
			Want: check.Fail,
		},
		{
			Name: "GOPATH inside GOROOT",
			ID:   "env.consistency",
			Setup: func(t *testing.T, w *checktest.World) []string {
				p := filepath.Join(filepath.Dir(filepath.Dir(checktest.RealGo(t))), "gopath")
				w.Setenv("GOPATH="+p, "GOMODCACHE="+filepath.Join(w.Dir, "modcache"))
				return []string{p}
			},
			Want: check.Fail,
		},
		{
			Name: "GOCACHE reached through a link",
			ID:   "env.consistency",
			Setup: func(t *testing.T, w *checktest.World) []string {
				link := filepath.Join(w.Dir, "cache-link")
				if err := os.Symlink(w.Getenv("GOCACHE"), link); err != nil {
					t.Fatal(err)
				}
				w.Setenv("GOCACHE=" + link)
				return []string{link, w.Getenv("GOCACHE")}
			},
			Want: check.Warn,
		},
		{
			Name: "GOTMPDIR on a noexec tmpfs",
			ID:   "env.functional",
			Setup: func(t *testing.T, w *checktest.World) []string {
				dir := checktest.MountTmpfs(t, filepath.Join(w.Dir, "noexec"), "noexec,size=16m,mode=1777")
				w.Setenv("GOTMPDIR=" + dir)
				return []string{dir, "noexec"}
			},
			Want: check.Fail,
		},
	})
}

// The healthy machine passes every check of this package; env.functional
// runs the real go command for it (go run and go list std).
func TestHealthyWorldPasses(t *testing.T) {
	w := checktest.New(t)
	for _, c := range goenv.Checks() {
		res := w.Run(c)
		if res.Status != check.Pass {
			t.Errorf("%s: %s: %s %v", c.ID, res.Status, res.Summary, res.Evidence)
		}
		if c.ID == "env.functional" && !checktest.EvidenceContains(res, "gopatrol-ok") {
			t.Errorf("env.functional: evidence does not show the program's output: %v", res.Evidence)
		}
	}
}

// The probes leave nothing behind in TMPDIR.
func TestFunctionalCleansUp(t *testing.T) {
	w := checktest.New(t)
	tmp := filepath.Join(w.Dir, "tmp")
	if err := os.Mkdir(tmp, 0o1777); err != nil {
		t.Fatal(err)
	}
	w.Setenv("TMPDIR=" + tmp)
	res := w.Run(checktest.Find(t, goenv.Checks(), "env.functional"))
	if res.Status != check.Pass {
		t.Fatalf("env.functional: %s: %s %v", res.Status, res.Summary, res.Evidence)
	}
	left, _ := os.ReadDir(tmp)
	for _, de := range left {
		t.Errorf("left behind in TMPDIR: %s", de.Name())
	}
}

// A probe cut short by its timeout still removes its module and work
// directories: the go command is killed, then the check cleans up.
func TestFunctionalCleansUpOnTimeout(t *testing.T) {
	w := checktest.New(t)
	tmp := filepath.Join(w.Dir, "tmp")
	if err := os.Mkdir(tmp, 0o1777); err != nil {
		t.Fatal(err)
	}
	w.Setenv("TMPDIR=" + tmp)
	c := checktest.Find(t, goenv.Checks(), "env.functional")
	c.Timeout = 5 * time.Millisecond
	if res := w.Run(c); res.Status != check.Error {
		t.Fatalf("env.functional with a 5ms timeout: %s, want error", res.Status)
	}
	// The runner gives a check a grace period after its deadline; the
	// cleanup runs as the killed commands return.
	deadline := time.Now().Add(5 * time.Second)
	for {
		left, _ := os.ReadDir(tmp)
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			for _, de := range left {
				t.Errorf("left behind in TMPDIR after a timeout: %s", de.Name())
			}
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}
