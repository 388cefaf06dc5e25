package catalog

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gopatrol/gopatrol/agent/check"
	"github.com/gopatrol/gopatrol/agent/check/checktest"
	"github.com/gopatrol/gopatrol/agent/check/proxy/proxytest"
)

// brokenWorld is a machine rebuilt from a real failure report (issue 14).
type brokenWorld struct {
	name  string
	root  bool
	setup func(t *testing.T, w *checktest.World)
}

var brokenWorlds = []brokenWorld{
	{name: "GOFLAGS=-mod=bogus", setup: func(t *testing.T, w *checktest.World) { w.Setenv("GOFLAGS=-mod=bogus") }},
	{name: "GOFLAGS=-p=abc", setup: func(t *testing.T, w *checktest.World) { w.Setenv("GOFLAGS=-p=abc") }},
	{name: "GOFLAGS=-bogusflag in the GOENV file", setup: func(t *testing.T, w *checktest.World) {
		checktest.WriteFile(t, w.Getenv("GOENV"), "GOFLAGS=-bogusflag\n", 0o600)
	}},
	{name: "GOFLAGS=-tags without a value in the GOENV file", setup: func(t *testing.T, w *checktest.World) {
		checktest.WriteFile(t, w.Getenv("GOENV"), "GOFLAGS=-tags\n", 0o600)
	}},
	{name: "GOENV file GOPATH=~/go", setup: func(t *testing.T, w *checktest.World) {
		w.Unsetenv("GOPATH")
		checktest.WriteFile(t, w.Getenv("GOENV"), "GOPATH=~/go\n", 0o644)
	}},
	{name: "unknown GOEXPERIMENT", setup: func(t *testing.T, w *checktest.World) { w.Setenv("GOEXPERIMENT=bogusexp") }},
	{name: "GOPROXY=off with a dependency missing", setup: func(t *testing.T, w *checktest.World) {
		requireDep(t, w)
		w.Setenv("GOPROXY=off", "GOMODCACHE="+proxytest.TempModCache(t))
	}},
	{name: "PATH entry through a link into a removed Go install", setup: func(t *testing.T, w *checktest.World) {
		link := checktest.Symlink(t, filepath.Join(w.Dir, "opt", "go1.20"), filepath.Join(w.Dir, "opt", "go"))
		w.Setenv("PATH=" + filepath.Join(link, "bin") + ":" + w.Getenv("PATH"))
	}},
	{name: "empty GOPATH and no HOME", setup: func(t *testing.T, w *checktest.World) {
		w.Unsetenv("HOME")
		w.Setenv("GOPATH=")
	}},
}

// requireDep makes the world's module require example.com/dep from a
// loopback proxy, tidied into a module cache that the world then drops.
func requireDep(t *testing.T, w *checktest.World) *proxytest.Server {
	t.Helper()
	p := proxytest.New(t)
	p.Module("example.com/dep", "v1.0.0", map[string]string{"dep.go": "package dep\n\nfunc Hello() string { return \"hi\" }\n"})
	checktest.WriteFile(t, filepath.Join(w.Target.Dir, "go.mod"), "module example.test/app\n\ngo 1.22\n\nrequire example.com/dep v1.0.0\n", 0o644)
	checktest.WriteFile(t, filepath.Join(w.Target.Dir, "main.go"), "package main\n\nimport \"example.com/dep\"\n\nfunc main() { println(dep.Hello()) }\n", 0o644)
	tidy := w.Target.WithEnv(append(p.Env(), "GOMODCACHE="+proxytest.TempModCache(t), "GOFLAGS=")...)
	if out, err := tidy.Command(context.Background(), checktest.RealGo(t), "mod", "tidy").CombinedOutput(); err != nil {
		t.Fatalf("go mod tidy: %v\n%s", err, out)
	}
	return p
}

// TestNoFalseNoIssues runs the real go build in every broken world: where
// it fails, the default set must not report every check passing. Then each
// root cause's printed fix is applied there and its check run again
// (checktest.FixRerun).
func TestNoFalseNoIssues(t *testing.T) {
	defaults, err := check.Select(All(), nil, nil, false)
	if err != nil {
		t.Fatal(err)
	}
	for _, bw := range brokenWorlds {
		t.Run(bw.name, func(t *testing.T) {
			if bw.root {
				checktest.RequireRoot(t)
			}
			w := checktest.New(t)
			if _, err := os.Stat(filepath.Join(w.Target.Dir, "go.mod")); err != nil {
				checktest.WriteFile(t, filepath.Join(w.Target.Dir, "go.mod"), "module example.test/hello\n\ngo 1.22\n", 0o644)
				checktest.WriteFile(t, filepath.Join(w.Target.Dir, "main.go"), "package main\n\nfunc main() {}\n", 0o644)
			}
			// No network: the checksum database is not reachable, and
			// proxy.tls would say so in every world.
			w.Setenv("GOSUMDB=off")
			bw.setup(t, w)
			build := func() error {
				out, err := w.Target.Command(context.Background(), checktest.RealGo(t), "build", "-o", os.DevNull, ".").CombinedOutput()
				if err != nil {
					t.Logf("go build: %v: %s", err, strings.TrimSpace(string(out)))
				}
				return err
			}
			buildErr := build()
			results := check.Runner{}.Run(context.Background(), w.Env(), defaults)
			var found []check.Result
			for _, r := range results {
				if r.Status == check.Fail || r.Status == check.Warn {
					found = append(found, r)
					t.Logf("%s: %s: %s fix=%q follows=%q", r.ID, r.Status, r.Summary, r.Fix, r.Evidence["follows"])
				}
			}
			if buildErr != nil && len(found) == 0 {
				t.Fatalf("go build fails, yet no check of the default set fails or warns")
			}
			if buildErr == nil && len(found) == 0 {
				t.Fatalf("neither go build nor the doctor finds this world broken: the world is not built")
			}
			automated := true
			for _, r := range found {
				if !checktest.FixRerun(t, w, checktest.Find(t, defaults, r.ID), r) {
					automated = false
				}
			}
			// Every root cause fixed by its printed fix: the build the
			// world broke works again.
			if buildErr != nil && automated && !t.Failed() {
				if err := build(); err != nil {
					t.Errorf("every printed fix was applied, yet go build still fails")
				}
			}
		})
	}
}
