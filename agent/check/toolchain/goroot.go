package toolchain

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/gopatrol/gopatrol/agent/check"
)

var gorootValid = check.Check{
	ID:     "goroot.valid",
	Title:  "GOROOT is a real Go root, the one the go binary belongs to",
	Source: "1",
	// A GOROOT that does not exist makes `go env` fail; this check is
	// what explains it, so it runs without go env.
	NoToolchain: true,
	Run:         runGorootValid,
}

// DefaultGOENV is cmd/go's cfg.EnvFile: $GOENV, else
// os.UserConfigDir()/go/env; for when `go env` cannot say.
func DefaultGOENV(t *check.Target) string {
	if v, ok := t.LookupEnv("GOENV"); ok {
		return v
	}
	if x := t.Getenv("XDG_CONFIG_HOME"); x != "" {
		return filepath.Join(x, "go", "env")
	}
	if h := t.Getenv("HOME"); h != "" {
		return filepath.Join(h, ".config", "go", "env")
	}
	return ""
}

// goenvFile is the GOENV file of the toolchain, or where cmd/go would
// look when go env failed.
func goenvFile(env *check.Env) string {
	if env.Toolchain.Err == nil {
		return env.Toolchain.Get("GOENV")
	}
	return DefaultGOENV(env.Target)
}

// derivation is how cmd/go finds its GOROOT (cmd/go/internal/cfg
// findGOROOT): $GOROOT, else a GOROOT line in the GOENV file, else the
// directory two (or three, for bin/GOOS_GOARCH) levels above the
// executable, before and then after resolving links, else the GOROOT linked
// into the binary (runtime.defaultGOROOT, empty in -trimpath releases).
type derivation struct {
	Root   string // what cmd/go would use
	Source string // where it came from, for evidence
	Own    string // the root the binary derives by itself, ignoring overrides
	OwnHow string
}

func deriveGOROOT(env *check.Env) derivation {
	t, tc := env.Target, env.Toolchain
	var d derivation
	d.Own, d.OwnHow = ownGOROOT(t, tc.Go)
	if v := t.Getenv("GOROOT"); v != "" {
		d.Root, d.Source = filepath.Clean(v), "the GOROOT environment variable"
		return d
	}
	if f := goenvFile(env); f != "" && f != "off" {
		if v := check.ReadGoEnvFile(t.Path(f))["GOROOT"]; v != "" {
			d.Root, d.Source = filepath.Clean(v), "the GOROOT line of "+f
			return d
		}
	}
	d.Root, d.Source = d.Own, d.OwnHow
	return d
}

// ownGOROOT is findGOROOT without overrides: where the binary at exe finds
// its root by itself. cmd/go prefers the linked-in spelling of a root found
// by location when both name the same directory; the checks compare
// directories with sameDir, so the symbol table (a 15 MB read) is only
// consulted when the location gives no root.
func ownGOROOT(t *check.Target, exe string) (string, string) {
	try := func(exe, how string) (string, string, bool) {
		for _, up := range []string{"../..", "../../.."} {
			if dir := filepath.Join(exe, up); isGOROOT(t, dir) {
				return dir, how + " " + exe, true
			}
		}
		return "", "", false
	}
	if r, how, ok := try(exe, "the location of"); ok {
		return r, how
	}
	if res, err := t.Resolve(exe); err == nil && res.Real != "" {
		if r, how, ok := try(res.Real, "the resolved location of "+exe+":"); ok {
			return r, how
		}
	}
	if r, err := linkedGOROOT(t, exe); err == nil {
		return filepath.Clean(r), "the GOROOT linked into " + exe
	}
	return "", ""
}

func runGorootValid(ctx context.Context, env *check.Env) check.Result {
	t, tc := env.Target, env.Toolchain
	if tc.Go == "" {
		return check.Skipf("no go binary, see go.binary")
	}
	own := readBinInfo(t, tc.Go)
	goroot := tc.Get("GOROOT")
	hostOS, hostArch := tc.Get("GOHOSTOS"), tc.Get("GOHOSTARCH")
	d := deriveGOROOT(env)
	ev := map[string]string{}
	if tc.Err != nil {
		// go env failed: judge the root cmd/go would have used.
		goroot, hostOS, hostArch = d.Root, own.GOOS, own.GOARCH
		ev["go env"] = tc.Err.Error()
	}
	ev["GOROOT"], ev["GOROOT.source"] = goroot, d.Source
	if d.Own != "" && d.Own != goroot {
		ev["GOROOT.binary"] = d.Own + " (" + d.OwnHow + ")"
	}
	var fs []check.Finding
	unset := "unset GOROOT (the go binary finds its own root)"
	if strings.HasPrefix(d.Source, "the GOROOT line") {
		unset = "remove the GOROOT line from " + goenvFile(env)
	}

	switch fi, err := os.Stat(t.Path(goroot)); {
	case goroot == "":
		fs = append(fs, check.Finding{Status: check.Fail, Summary: fmt.Sprintf("%s finds no GOROOT: it is not in a Go root's bin directory and has no GOROOT linked in", tc.Go), Fix: "reinstall Go from the release archive and run its bin/go, or export GOROOT=<the Go root>"})
	case !filepath.IsAbs(goroot):
		fs = append(fs, check.Finding{Status: check.Fail, Summary: fmt.Sprintf("GOROOT %q is not an absolute path", goroot), Fix: unset})
	case err != nil:
		fix := unset
		if d.Own != "" && d.Own != goroot {
			fix = fmt.Sprintf("%s, or export GOROOT=%s", unset, d.Own)
		}
		fs = append(fs, check.Finding{Status: check.Fail, Summary: fmt.Sprintf("GOROOT %s does not exist (set by %s)", goroot, d.Source), Fix: fix})
	case !fi.IsDir():
		fs = append(fs, check.Finding{Status: check.Fail, Summary: fmt.Sprintf("GOROOT %s is not a directory", goroot), Fix: unset})
	default:
		tool := filepath.Join(goroot, "pkg", "tool", hostOS+"_"+hostArch)
		for _, need := range []string{filepath.Join(goroot, "src"), tool} {
			if fi, err := os.Stat(t.Path(need)); err != nil || !fi.IsDir() {
				fs = append(fs, check.Finding{Status: check.Fail, Summary: fmt.Sprintf("GOROOT %s has no %s: not a complete Go root", goroot, need), Fix: "reinstall Go from the release archive, or " + unset})
			}
		}
	}

	if d.Root != "" && d.Root != goroot && !sameDir(t, d.Root, goroot) {
		// Our reproduction of cmd/go disagrees with it: say so, the
		// other findings may be built on a wrong premise.
		ev["GOROOT.expected"] = d.Root
		fs = append(fs, check.Finding{Status: check.Warn, Summary: fmt.Sprintf("go env GOROOT is %s but %s gives %s", goroot, d.Source, d.Root), Fix: "compare `go env GOROOT` with this evidence; GOROOT is found in a way gopatrol does not reproduce"})
	}

	if _, err := os.Stat(t.Path(goroot)); err == nil && d.Own != "" && !sameDir(t, d.Own, goroot) && d.Source != d.OwnHow {
		rootVer, err := readVersionFile(t, goroot)
		if err != nil {
			rootVer = "no VERSION file"
		}
		ev["version.binary"] = own.Version + " (" + tc.Go + ")"
		ev["version.GOROOT"] = rootVer + " (" + filepath.Join(goroot, "VERSION") + ")"
		msg := fmt.Sprintf("GOROOT %s (%s, from %s) overrides the root of %s, %s (%s)", goroot, rootVer, d.Source, tc.Go, d.Own, own.Version)
		st := check.Warn
		if own.Version != "" && rootVer != own.Version {
			st = check.Fail
		}
		fs = append(fs, check.Finding{Status: st, Summary: msg, Fix: unset})
	}

	if v, ok := t.LookupEnv("GOROOT_FINAL"); ok {
		ev["GOROOT_FINAL"] = v
		fs = append(fs, check.Finding{Status: check.Warn, Summary: fmt.Sprintf("GOROOT_FINAL=%s is set: it is obsolete and the go command ignores it", v), Fix: "unset GOROOT_FINAL"})
	}

	// Toolchain switching: report what GOTOOLCHAIN does and what has been
	// downloaded; a pinned toolchain other than this one is a warning,
	// since every go command then runs something else than this root.
	if tc.GOTOOLCHAIN != "" {
		ev["GOTOOLCHAIN"] = tc.GOTOOLCHAIN
	}
	if cached := cachedToolchains(t, tc.Get("GOMODCACHE")); len(cached) > 0 {
		ev["toolchains.downloaded"] = strings.Join(cached, ", ")
	}
	if mc := tc.Get("GOMODCACHE"); mc != "" && strings.HasPrefix(tc.Go, filepath.Join(mc, "golang.org")+"/toolchain@") {
		ev["toolchain.switched"] = tc.Go + " is a toolchain downloaded by GOTOOLCHAIN switching"
	}
	// GOTOOLCHAIN=goX.Y[+auto|+path] makes goX.Y the default toolchain,
	// older or newer: every go command then runs it instead of this root.
	if set, err := parseToolchain(tc.GOTOOLCHAIN); err == nil && set.Min != "local" && own.Version != "" &&
		toolchainVersion(set.Min) != own.Version {
		fs = append(fs, check.Finding{Status: check.Warn, Summary: fmt.Sprintf("GOTOOLCHAIN=%s: go commands switch to %s instead of running %s from %s", tc.GOTOOLCHAIN, set.Min, own.Version, goroot), Fix: toolchainFix(env.Target)})
	}
	return check.Combine(fmt.Sprintf("GOROOT %s is a complete Go root (from %s)", goroot, d.Source), fs, ev)
}

// cachedToolchains lists the toolchains GOTOOLCHAIN switching downloaded
// into the module cache (golang.org/toolchain@v0.0.1-go1.22.0.linux-amd64).
func cachedToolchains(t *check.Target, modcache string) []string {
	if modcache == "" {
		return nil
	}
	des, err := os.ReadDir(t.Path(filepath.Join(modcache, "golang.org")))
	if err != nil {
		return nil
	}
	var out []string
	for _, de := range des {
		if v, ok := strings.CutPrefix(de.Name(), "toolchain@v0.0.1-"); ok {
			out = append(out, v)
		}
	}
	slices.Sort(out)
	return out
}

// toolchainFix undoes a GOTOOLCHAIN pin where it is set: `go env -w`
// cannot override the environment (it exits 2 saying so).
func toolchainFix(t *check.Target) string {
	if _, ok := t.LookupEnv("GOTOOLCHAIN"); ok {
		return "unset GOTOOLCHAIN (it is set in the environment; the Go root's go.env then decides, auto in a release)"
	}
	return "go env -w GOTOOLCHAIN=auto to use this root"
}
