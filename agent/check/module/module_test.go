package module

import (
	"archive/zip"
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/mod/modfile"
	"golang.org/x/mod/module"

	"github.com/gopatrol/gopatrol/agent/check"
	"github.com/gopatrol/gopatrol/agent/check/checktest"
	"github.com/gopatrol/gopatrol/agent/check/proxy/proxytest"
)

// newModuleWorld is a world whose directory holds a module that requires
// example.com/dep v1.0.0, downloaded through a loopback proxy into a module
// cache of its own. Afterwards GOPROXY is off: the checks must not fetch.
func newModuleWorld(t testing.TB) (w *checktest.World, modcache string) {
	t.Helper()
	w, modcache, _ = newModuleWorldProxy(t)
	return w, modcache
}

// newModuleWorldProxy is newModuleWorld that also returns the loopback
// proxy's GOPROXY value, for a person who has one to turn back on.
func newModuleWorldProxy(t testing.TB) (w *checktest.World, modcache, goproxy string) {
	t.Helper()
	p := proxytest.New(t)
	p.Module("example.com/dep", "v1.0.0", map[string]string{
		"dep.go":     "package dep\n\nfunc Hello() string { return \"hi\" }\n",
		"sub/sub.go": "package sub\n",
	})
	w = checktest.New(t)
	modcache = proxytest.TempModCache(t)
	w.Setenv(append(p.Env(), "GOMODCACHE="+modcache)...)
	write(t, filepath.Join(w.Target.Dir, "go.mod"), "module example.test/app\n\ngo 1.22\n\nrequire example.com/dep v1.0.0\n")
	write(t, filepath.Join(w.Target.Dir, "main.go"), "package main\n\nimport (\n\t\"example.com/dep\"\n\t_ \"example.com/dep/sub\"\n)\n\nfunc main() { println(dep.Hello()) }\n")
	goRun(t, w, "mod", "tidy")
	w.Setenv("GOPROXY=off", "GOFLAGS=")
	return w, modcache, p.URL()
}

func write(t testing.TB, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func goRun(t testing.TB, w *checktest.World, args ...string) {
	t.Helper()
	out, err := w.Target.Command(context.Background(), checktest.RealGo(t), args...).CombinedOutput()
	if err != nil {
		t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// edit appends to a file of the module cache, which the go command made
// read-only.
func edit(t *testing.T, path string) {
	t.Helper()
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("\n// tampered\n")
	f.Close()
}

// rezip rewrites a module zip of the cache with one file's content
// changed, as a tampering mirror or a disk error would leave it: a valid
// zip whose hash no longer matches.
func rezip(t *testing.T, path string) {
	t.Helper()
	zr, err := zip.OpenReader(path)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, f := range zr.File {
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		data, _ := io.ReadAll(rc)
		rc.Close()
		if strings.HasSuffix(f.Name, "/dep.go") {
			data = append(data, "\n// tampered\n"...)
		}
		w, _ := zw.Create(f.Name)
		w.Write(data)
	}
	zr.Close()
	zw.Close()
	os.Chmod(path, 0o644)
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestVerify(t *testing.T) {
	verify := checktest.Find(t, Checks(), "module.verify")
	tests := []struct {
		name   string
		breakf func(t *testing.T, w *checktest.World, modcache string)
		status check.Status
		want   []string
	}{
		{"healthy", nil, check.Pass, []string{"all modules verified"}},
		{"tree edited", func(t *testing.T, w *checktest.World, modcache string) {
			edit(t, filepath.Join(modcache, "example.com/dep@v1.0.0/dep.go"))
		}, check.Fail, []string{"example.com/dep@v1.0.0 (the extracted tree was changed)", filepath.Join("example.com", "dep@v1.0.0")}},
		{"zip edited", func(t *testing.T, w *checktest.World, modcache string) {
			rezip(t, filepath.Join(modcache, "cache/download/example.com/dep/@v/v1.0.0.zip"))
		}, check.Fail, []string{"example.com/dep@v1.0.0 (the downloaded zip was changed)", "v1.0.0.zip"}},
		{"no go.mod", func(t *testing.T, w *checktest.World, modcache string) {
			w.Target.Dir = w.Dir
		}, check.Skip, []string{"no go.mod in"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w, modcache, goproxy := newModuleWorldProxy(t)
			if tt.breakf != nil {
				tt.breakf(t, w, modcache)
			}
			res := w.Run(verify)
			if res.Status != tt.status {
				t.Fatalf("status %s, want %s: %s", res.Status, tt.status, res.Summary)
			}
			for _, s := range tt.want {
				if !checktest.EvidenceContains(res, s) {
					t.Errorf("result does not mention %q", s)
				}
			}
			if tt.status == check.Fail && !strings.Contains(res.Fix, "go mod download example.com/dep@v1.0.0") {
				t.Errorf("fix %q does not re-download the module", res.Fix)
			}
			if tt.status != check.Fail {
				return
			}
			// Under GOPROXY=off the download cannot work: the fix asks
			// for the person's proxy first.
			if checktest.FixRerun(t, w, verify, res) {
				t.Errorf("fix %q was applied although GOPROXY=off forbids its download", res.Fix)
			}
			// With their proxy back, the printed re-download, applied
			// as printed, repairs the cache.
			w.Setenv("GOPROXY=" + goproxy)
			res = w.Run(verify)
			if !checktest.FixRerun(t, w, verify, res) {
				t.Errorf("fix %q was not applied with a proxy", res.Fix)
			}
		})
	}
}

func TestVendor(t *testing.T) {
	vendor := checktest.Find(t, Checks(), "module.vendor")
	tests := []struct {
		name   string
		breakf func(t *testing.T, w *checktest.World)
		status check.Status
		want   []string
	}{
		{"healthy", nil, check.Pass, []string{"vendor/ matches go.mod: 1 module(s), 2 package(s)"}},
		{"explicit marker missing", func(t *testing.T, w *checktest.World) {
			txt := filepath.Join(w.Target.Dir, "vendor/modules.txt")
			b, _ := os.ReadFile(txt)
			var kept []string
			for line := range strings.Lines(string(b)) {
				if !strings.HasPrefix(line, "## explicit") {
					kept = append(kept, line)
				}
			}
			write(t, txt, strings.Join(kept, ""))
		}, check.Fail, []string{"example.com/dep@v1.0.0: is explicitly required in go.mod, but not marked as explicit in vendor/modules.txt"}},
		{"explicit without requirement", func(t *testing.T, w *checktest.World) {
			gomod := filepath.Join(w.Target.Dir, "go.mod")
			b, _ := os.ReadFile(gomod)
			f, err := modfile.Parse(gomod, b, nil)
			if err != nil {
				t.Fatal(err)
			}
			f.AddNewRequire("example.com/dep", "v1.0.0", false)
			f.DropRequire("example.com/dep")
			out, _ := f.Format()
			write(t, gomod, string(out))
		}, check.Fail, []string{"example.com/dep@v1.0.0: is marked as explicit in vendor/modules.txt, but not explicitly required in go.mod"}},
		{"vendored package deleted", func(t *testing.T, w *checktest.World) {
			os.RemoveAll(filepath.Join(w.Target.Dir, "vendor/example.com/dep/sub"))
		}, check.Fail, []string{"example.com/dep/sub: is listed in vendor/modules.txt, but", "vendor/example.com/dep/sub is missing"}},
		{"modules.txt deleted", func(t *testing.T, w *checktest.World) {
			os.Remove(filepath.Join(w.Target.Dir, "vendor/modules.txt"))
		}, check.Fail, []string{"vendor/modules.txt is missing", "example.com/dep@v1.0.0: is explicitly required in go.mod, but not marked as explicit"}},
		{"no vendor", func(t *testing.T, w *checktest.World) {
			os.RemoveAll(filepath.Join(w.Target.Dir, "vendor"))
		}, check.Skip, []string{"no vendor directory"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w, _ := newModuleWorld(t)
			goRun(t, w, "mod", "vendor")
			if tt.breakf != nil {
				tt.breakf(t, w)
			}
			res := w.Run(vendor)
			if res.Status != tt.status {
				t.Fatalf("status %s, want %s: %s", res.Status, tt.status, res.Summary)
			}
			for _, s := range tt.want {
				if !checktest.EvidenceContains(res, s) {
					t.Errorf("result does not mention %q", s)
				}
			}
			if tt.status == check.Fail && !strings.Contains(res.Fix, "go mod vendor") {
				t.Errorf("fix %q does not say go mod vendor", res.Fix)
			}
			checktest.FixRerun(t, w, vendor, res)
		})
	}
}

func TestParseModulesTxt(t *testing.T) {
	mt := parseModulesTxt(`# example.com/a v1.0.0
## explicit; go 1.21
example.com/a
example.com/a/b
# example.com/c v0.1.0 => ../c
## explicit
# example.com/d => example.com/e v1.2.0
# garbage line here
example.com/ignored
`)
	a := mt.Meta[module.Version{Path: "example.com/a", Version: "v1.0.0"}]
	if !a.Explicit || !a.HasPackages || len(mt.Packages) != 2 {
		t.Errorf("example.com/a: %+v, packages %v", a, mt.Packages)
	}
	if c := mt.Meta[module.Version{Path: "example.com/c", Version: "v0.1.0"}]; c.Replacement.Path != "../c" || !c.Explicit {
		t.Errorf("example.com/c: %+v", c)
	}
	if d := mt.Meta[module.Version{Path: "example.com/d", Version: ""}]; d.Replacement.Version != "v1.2.0" {
		t.Errorf("example.com/d: %+v", d)
	}
	if len(mt.Replaced) != 2 {
		t.Errorf("replaced = %v", mt.Replaced)
	}
}

// TestVerifyConsequences builds the worlds where go mod verify fails for a
// reason other than the modules' content: the result must not claim that
// modules changed, and must name the cause.
func TestVerifyConsequences(t *testing.T) {
	verify := checktest.Find(t, Checks(), "module.verify")
	t.Run("GOPROXY=off with the modules missing", func(t *testing.T) {
		w, _ := newModuleWorld(t)
		w.Setenv("GOMODCACHE=" + proxytest.TempModCache(t))
		buildFails(t, w)
		res := w.Run(verify)
		checktest.Expect(t, res, check.Fail, "GOPROXY=off", "GOPROXY")
		if strings.Contains(res.Summary, "changed") {
			t.Errorf("summary claims a change: %s", res.Summary)
		}
		checktest.FixRerun(t, w, verify, res)
	})
	t.Run("empty module cache the build user cannot read", func(t *testing.T) {
		checktest.RequireRoot(t)
		w, _ := newModuleWorld(t)
		// The modules come from the loopback proxy again, but the cache
		// they would go into is root's, mode 0700.
		p := proxytest.New(t)
		p.Module("example.com/dep", "v1.0.0", map[string]string{
			"dep.go":     "package dep\n\nfunc Hello() string { return \"hi\" }\n",
			"sub/sub.go": "package sub\n",
		})
		w.AsUser("nobody")
		w.Setenv(p.Env()...)
		w.Setenv("GOFLAGS=", "HOME="+checktest.Mkdir(t, filepath.Join(w.Dir, "nobodyhome"), 0o777),
			"GOCACHE="+checktest.Mkdir(t, filepath.Join(w.Dir, "gocache"), 0o777))
		mc := checktest.Mkdir(t, filepath.Join(w.Dir, "modcache"), 0o700)
		w.Setenv("GOMODCACHE=" + mc)
		buildFails(t, w)
		res := w.Run(verify)
		checktest.Expect(t, res, check.Fail, mc, "permission denied")
		if res.Evidence["follows"] != "modcache.writable" || strings.Contains(res.Summary, "changed") {
			t.Errorf("want a consequence of modcache.writable, not a change: %s %v", res.Summary, res.Evidence)
		}
		checktest.FixRerun(t, w, verify, res)
	})
}

// buildFails runs the real go build in the world and fails the test when
// it succeeds: the world must be broken for real.
func buildFails(t *testing.T, w *checktest.World) {
	t.Helper()
	out, err := w.Target.Command(context.Background(), checktest.RealGo(t), "build", "-o", os.DevNull, ".").CombinedOutput()
	if err == nil {
		t.Fatalf("go build succeeds in this world; it is not broken")
	}
	t.Logf("go build: %v: %s", err, out)
}
