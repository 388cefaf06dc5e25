package toolchain_test

import (
	"bytes"
	"debug/buildinfo"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/gopatrol/gopatrol/agent/check"
	"github.com/gopatrol/gopatrol/agent/check/checktest"
	"github.com/gopatrol/gopatrol/agent/check/toolchain"
)

// realRoot is the GOROOT of the go the tests run with.
func realRoot(t testing.TB) string {
	return filepath.Dir(filepath.Dir(checktest.RealGo(t)))
}

// mirrorRoot builds a Go root at dst out of links to the real root's
// entries, except the files named in overrides (paths relative to the
// root), which are written with the given content; directories on the way
// to them are made real, their other entries linked. The big trees are
// never copied.
func mirrorRoot(t testing.TB, src, dst string, overrides map[string]string) {
	t.Helper()
	if err := os.MkdirAll(dst, 0o755); err != nil {
		t.Fatal(err)
	}
	des, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, de := range des {
		name := de.Name()
		sub := map[string]string{}
		content, isFile := overrides[name]
		for k, v := range overrides {
			if rest, ok := strings.CutPrefix(k, name+"/"); ok {
				sub[rest] = v
			}
		}
		switch {
		case isFile:
			if err := os.WriteFile(filepath.Join(dst, name), []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
		case len(sub) > 0:
			mirrorRoot(t, filepath.Join(src, name), filepath.Join(dst, name), sub)
		default:
			if err := os.Symlink(filepath.Join(src, name), filepath.Join(dst, name)); err != nil {
				t.Fatal(err)
			}
		}
	}
	for k, v := range overrides {
		if !strings.Contains(k, "/") {
			if _, err := os.Lstat(filepath.Join(dst, k)); os.IsNotExist(err) {
				if err := os.WriteFile(filepath.Join(dst, k), []byte(v), 0o644); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
}

func symlink(t testing.TB, target, link string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(link), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
}

// otherVersionGo writes a copy of the real go binary to dst whose build
// info says another version, as a second Go installation's go would: the
// version string inside the .go.buildinfo blob is rewritten in place (same
// length, so the ELF stays valid). It returns the new version.
func otherVersionGo(t testing.TB, dst string) string {
	t.Helper()
	b, err := os.ReadFile(checktest.RealGo(t))
	if err != nil {
		t.Fatal(err)
	}
	magic := []byte("\xff Go buildinf:")
	i := bytes.Index(b, magic)
	if i < 0 {
		t.Fatal("no build info in the go binary")
	}
	bi, err := buildinfo.Read(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	old := bi.GoVersion
	last := old[len(old)-1]
	if last < '9' {
		last++
	} else {
		last--
	}
	version := old[:len(old)-1] + string(last)
	j := bytes.Index(b[i:], []byte(old))
	if j < 0 || j > 64 {
		t.Fatalf("version %s not in the build info header", old)
	}
	copy(b[i+j:], version)
	checktest.WriteFile(t, dst, string(b), 0o755)
	if bi, err := buildinfo.ReadFile(dst); err != nil || bi.GoVersion != version {
		t.Fatalf("rewritten go says %v, %v; want %s", bi, err, version)
	}
	return version
}

func TestChecks(t *testing.T) {
	checks := toolchain.Checks()
	checktest.RunCases(t, checks, []checktest.Case{
		{
			Name: "go script first on PATH",
			ID:   "go.binary",
			Setup: func(t *testing.T, w *checktest.World) []string {
				script := filepath.Join(w.Dir, "shadow", "go")
				checktest.WriteFile(t, script, "#!/bin/sh\necho 'go version go1.0 shadow/amd64'\n", 0o755)
				w.Setenv("PATH=" + filepath.Dir(script) + ":" + w.Getenv("PATH"))
				return []string{script, checktest.RealGo(t)}
			},
			Want: check.Fail,
		},
		{
			// A version manager's shim: builds work through it.
			Name: "working wrapper script first on PATH",
			ID:   "go.binary",
			Setup: func(t *testing.T, w *checktest.World) []string {
				script := shim(t, w)
				return []string{script, checktest.RealGo(t)}
			},
			Want: check.Pass,
		},
		{
			Name: "working wrapper script first on PATH (go.version-skew)",
			ID:   "go.version-skew",
			Setup: func(t *testing.T, w *checktest.World) []string {
				script := shim(t, w)
				return []string{script}
			},
			Want: check.Pass,
		},
		{
			Name: "working wrapper script first on PATH (goroot.symlink)",
			ID:   "goroot.symlink",
			Setup: func(t *testing.T, w *checktest.World) []string {
				script := shim(t, w)
				return []string{script}
			},
			Want: check.Pass,
		},
		{
			// The shim runs a root whose go is of another version than
			// the one go env reports: not a wrapper that can be trusted.
			Name: "wrapper script into another root",
			ID:   "go.binary",
			Setup: func(t *testing.T, w *checktest.World) []string {
				root := filepath.Join(w.Dir, "root")
				otherVersionGo(t, filepath.Join(root, "bin", "go"))
				script := shim(t, w)
				w.Setenv("GOROOT=" + root)
				return []string{script}
			},
			Want: check.Fail,
		},
		{
			Name: "relative PATH entry",
			ID:   "go.binary",
			Setup: func(t *testing.T, w *checktest.World) []string {
				w.Setenv("PATH=" + w.Getenv("PATH") + ":./node_modules/.bin")
				return []string{"./node_modules/.bin"}
			},
			Want: check.Warn,
		},
		{
			Name: "two versions of go on PATH",
			ID:   "go.binary",
			Setup: func(t *testing.T, w *checktest.World) []string {
				other := filepath.Join(w.Dir, "old", "bin", "go")
				version := otherVersionGo(t, other)
				w.Setenv("PATH=" + w.Getenv("PATH") + ":" + filepath.Dir(other))
				return []string{other, version}
			},
			Want: check.Warn,
		},
		{
			Name: "GOROOT set to a missing directory",
			ID:   "goroot.valid",
			Setup: func(t *testing.T, w *checktest.World) []string {
				missing := filepath.Join(w.Dir, "no-such-goroot")
				w.Setenv("GOROOT=" + missing)
				return []string{missing}
			},
			Want: check.Fail,
		},
		{
			Name: "GOROOT overrides the binary's root with another version",
			ID:   "goroot.valid",
			Setup: func(t *testing.T, w *checktest.World) []string {
				other := filepath.Join(w.Dir, "go1.25.0")
				mirrorRoot(t, realRoot(t), other, map[string]string{"VERSION": "go1.25.0\ntime 2025-08-01T00:00:00Z\n"})
				w.Setenv("GOROOT=" + other)
				return []string{other, "go1.25.0", realRoot(t)}
			},
			Want: check.Fail,
		},
		{
			Name: "GOROOT line in the GOENV file names a missing directory",
			ID:   "goroot.valid",
			Setup: func(t *testing.T, w *checktest.World) []string {
				missing := filepath.Join(w.Dir, "removed-go")
				checktest.WriteFile(t, w.Getenv("GOENV"), "GOROOT="+missing+"\n", 0o644)
				return []string{missing, w.Getenv("GOENV")}
			},
			Want: check.Fail,
		},
		{
			Name: "GOROOT_FINAL set",
			ID:   "goroot.valid",
			Setup: func(t *testing.T, w *checktest.World) []string {
				w.Setenv("GOROOT_FINAL=/opt/go")
				return []string{"/opt/go"}
			},
			Want: check.Warn,
		},
		{
			Name: "GOTOOLCHAIN pins another toolchain",
			ID:   "goroot.valid",
			Setup: func(t *testing.T, w *checktest.World) []string {
				w.Setenv("GOTOOLCHAIN=go1.25.0+auto")
				return []string{"go1.25.0"}
			},
			Want: check.Warn,
		},
		{
			Name: "second GOROOT whose VERSION disagrees with the binary",
			ID:   "go.version-skew",
			Setup: func(t *testing.T, w *checktest.World) []string {
				other := filepath.Join(w.Dir, "other-root")
				mirrorRoot(t, realRoot(t), other, map[string]string{"VERSION": "go1.25.0\ntime 2025-08-01T00:00:00Z\n"})
				w.Setenv("GOROOT=" + other)
				return []string{"go1.25.0", filepath.Join(other, "VERSION")}
			},
			Want: check.Fail,
		},
		{
			Name: "dangling link between the go on PATH and GOROOT",
			ID:   "goroot.symlink",
			Setup: func(t *testing.T, w *checktest.World) []string {
				// bin/go -> ../current/bin/go, current -> go1.19 (removed).
				link := filepath.Join(w.Dir, "sdk", "current")
				symlink(t, "go1.19", link)
				symlink(t, "../sdk/current/bin/go", filepath.Join(w.Dir, "bin", "go"))
				w.Setenv("PATH=" + filepath.Join(w.Dir, "bin") + ":" + w.Getenv("PATH"))
				return []string{link, filepath.Join(w.Dir, "sdk", "go1.19")}
			},
			Want: check.Fail,
		},
		{
			Name: "go on PATH from another root than GOROOT",
			ID:   "goroot.symlink",
			Setup: func(t *testing.T, w *checktest.World) []string {
				other := filepath.Join(w.Dir, "go-other")
				mirrorRoot(t, realRoot(t), other, map[string]string{"VERSION": "go1.25.0\n"})
				w.Setenv("GOROOT=" + other)
				return []string{other, realRoot(t)}
			},
			Want: check.Fail,
		},
		{
			Name: "GOROOT's goos constant disagrees with the binary",
			ID:   "goroot.goos",
			Setup: func(t *testing.T, w *checktest.World) []string {
				other := filepath.Join(w.Dir, "mixed-root")
				file := "src/internal/goos/zgoos_linux.go"
				mirrorRoot(t, realRoot(t), other, map[string]string{
					file: "// Code generated by gengoos.go using 'go generate'. DO NOT EDIT.\n\npackage goos\n\nconst GOOS = `freebsd`\n",
				})
				w.Setenv("GOROOT=" + other)
				return []string{filepath.Join(other, file), "freebsd"}
			},
			Want: check.Fail,
		},
		{
			Name: "go.mod needs a newer Go under GOTOOLCHAIN=local",
			ID:   "module.toolchain",
			Setup: func(t *testing.T, w *checktest.World) []string {
				checktest.WriteFile(t, filepath.Join(w.Target.Dir, "go.mod"), "module example.test/m\n\ngo 1.99.1\n", 0o644)
				return []string{"1.99.1", filepath.Join(w.Target.Dir, "go.mod"), "GOTOOLCHAIN=local"}
			},
			Want: check.Fail,
		},
		{
			Name: "go.mod needs a newer Go under GOTOOLCHAIN=auto with GOPROXY=off",
			ID:   "module.toolchain",
			Setup: func(t *testing.T, w *checktest.World) []string {
				checktest.WriteFile(t, filepath.Join(w.Target.Dir, "go.mod"), "module example.test/m\n\ngo 1.99.1\n", 0o644)
				w.Setenv("GOTOOLCHAIN=auto")
				return []string{"go1.99.1", "GOPROXY"}
			},
			Want: check.Fail,
		},
		{
			Name: "go.mod needs a newer Go under GOTOOLCHAIN=auto: download",
			ID:   "module.toolchain",
			Setup: func(t *testing.T, w *checktest.World) []string {
				checktest.WriteFile(t, filepath.Join(w.Target.Dir, "go.mod"), "module example.test/m\n\ngo 1.26.0\n\ntoolchain go1.99.2\n", 0o644)
				w.Setenv("GOTOOLCHAIN=auto", "GOPROXY=http://127.0.0.1:1/mod")
				return []string{"go1.99.2", "127.0.0.1:1"}
			},
			Want: check.Warn,
		},
		{
			// The toolchain line selects a release already downloaded:
			// builds work, so this is no warning.
			Name: "toolchain line selects a downloaded toolchain",
			ID:   "module.toolchain",
			Setup: func(t *testing.T, w *checktest.World) []string {
				checktest.WriteFile(t, filepath.Join(w.Target.Dir, "go.mod"), "module example.test/m\n\ngo 1.26.0\n\ntoolchain go1.99.3\n", 0o644)
				modcache := filepath.Join(w.Dir, "modcache")
				cached := filepath.Join(modcache, "golang.org", "toolchain@v0.0.1-go1.99.3."+runtime.GOOS+"-"+runtime.GOARCH)
				if err := os.MkdirAll(filepath.Join(cached, "bin"), 0o755); err != nil {
					t.Fatal(err)
				}
				w.Setenv("GOTOOLCHAIN=auto", "GOMODCACHE="+modcache)
				return []string{"switch from", cached}
			},
			Want: check.Pass,
		},
		{
			// cmd/go verifies every toolchain it switches to against the
			// checksum database, a cached one too.
			Name: "toolchain line, downloaded toolchain, GOSUMDB=off",
			ID:   "module.toolchain",
			Setup: func(t *testing.T, w *checktest.World) []string {
				checktest.WriteFile(t, filepath.Join(w.Target.Dir, "go.mod"), "module example.test/m\n\ngo 1.26.0\n\ntoolchain go1.99.3\n", 0o644)
				modcache := filepath.Join(w.Dir, "modcache")
				cached := filepath.Join(modcache, "golang.org", "toolchain@v0.0.1-go1.99.3."+runtime.GOOS+"-"+runtime.GOARCH)
				if err := os.MkdirAll(filepath.Join(cached, "bin"), 0o755); err != nil {
					t.Fatal(err)
				}
				w.Setenv("GOTOOLCHAIN=auto", "GOMODCACHE="+modcache, "GOSUMDB=off")
				return []string{"GOSUMDB=off", "go1.99.3"}
			},
			Want: check.Fail,
		},
		{
			Name: "no go.mod",
			ID:   "module.toolchain",
			Setup: func(t *testing.T, w *checktest.World) []string {
				for d := filepath.Dir(w.Target.Dir); d != filepath.Dir(d); d = filepath.Dir(d) {
					if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
						t.Skipf("%s has a go.mod above the world", d)
					}
				}
				return []string{w.Target.Dir}
			},
			Want: check.Skip,
		},
	})
}

// The healthy machine passes every check of this package.
func TestHealthyWorldPasses(t *testing.T) {
	w := checktest.New(t)
	checktest.WriteFile(t, filepath.Join(w.Target.Dir, "go.mod"), "module example.test/m\n\ngo 1.21\n", 0o644)
	for _, c := range toolchain.Checks() {
		if res := w.Run(c); res.Status != check.Pass {
			t.Errorf("%s: %s: %s %v", c.ID, res.Status, res.Summary, res.Evidence)
		}
	}
}

// GOROOT reached through a link to a versioned directory, with PATH naming
// the link's bin as the seed recommends, is healthy; PATH naming the
// versioned directory while the link points at another one is not.
func TestVersionedDirectoryOnPath(t *testing.T) {
	w := checktest.New(t)
	sdk := filepath.Join(w.Dir, "sdk")
	// Two installations side by side. Their bin/go must be a file of
	// their own (a symlink would make it belong to the real root), so it
	// is a hard link to the real go, or a copy across filesystems.
	for _, v := range []string{"go1.26.1", "go1.26.2"} {
		root := filepath.Join(sdk, v)
		mirrorRoot(t, realRoot(t), root, map[string]string{"bin/go": ""})
		dst := filepath.Join(root, "bin", "go")
		_ = os.Remove(dst)
		if err := os.Link(checktest.RealGo(t), dst); err != nil {
			b, err := os.ReadFile(checktest.RealGo(t))
			if err != nil {
				t.Fatal(err)
			}
			checktest.WriteFile(t, dst, string(b), 0o755)
		}
	}
	symlink(t, "go1.26.2", filepath.Join(sdk, "go"))
	c := checktest.Find(t, toolchain.Checks(), "goroot.symlink")

	w.Setenv("PATH=" + filepath.Join(sdk, "go", "bin") + ":/usr/bin:/bin")
	if res := w.Run(c); res.Status != check.Pass || !checktest.EvidenceContains(res, "'"+filepath.Join(sdk, "go")+"' -> 'go1.26.2'") {
		t.Errorf("PATH through the link: %s %s %v, want pass with the hop as evidence", res.Status, res.Summary, res.Evidence)
	}

	w.Setenv("PATH=" + filepath.Join(sdk, "go1.26.1", "bin") + ":/usr/bin:/bin")
	res := w.Run(c)
	if res.Status != check.Warn || !checktest.EvidenceContains(res, filepath.Join(sdk, "go1.26.1", "bin")) || !checktest.EvidenceContains(res, "go1.26.2") {
		t.Errorf("PATH names the versioned dir: %s %s %v, want warn naming both", res.Status, res.Summary, res.Evidence)
	}
	// The printed export, applied as printed, puts the link's bin where
	// the versioned one was.
	if !checktest.FixRerun(t, w, c, res) {
		t.Errorf("fix %q was not applied", res.Fix)
	}
}

// shim puts first on the world's PATH a wrapper script that runs the real
// go, as version managers' shims do, and returns its path.
func shim(t *testing.T, w *checktest.World) string {
	script := filepath.Join(w.Dir, "shim", "go")
	checktest.WriteFile(t, script, "#!/bin/sh\nexec "+checktest.RealGo(t)+" \"$@\"\n", 0o755)
	w.Setenv("PATH=" + filepath.Dir(script) + ":" + w.Getenv("PATH"))
	return script
}
