package module

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/mod/modfile"
	"golang.org/x/mod/module"
	"golang.org/x/mod/semver"

	"github.com/gopatrol/gopatrol/agent/check"
)

var vendorCheck = check.Check{
	ID:     "module.vendor",
	Title:  "the vendor tree is consistent with go.mod",
	Source: "3.1",
	// Two loads of the whole import graph of a large module.
	Timeout: time.Minute,
	Run:     runVendor,
}

// vendorMeta is what vendor/modules.txt says about one module.
type vendorMeta struct {
	Explicit    bool
	Replacement module.Version
	HasPackages bool
}

// modulesTxt is vendor/modules.txt, read as cmd/go's readVendorList reads
// it: "# path version [=> new [version]]" module lines, "## explicit; go
// 1.x" annotations, and one package per line.
type modulesTxt struct {
	Order    []module.Version // modules in file order
	Meta     map[module.Version]vendorMeta
	Replaced []module.Version // modules with a "=>"
	Packages map[string]module.Version
}

func parseModulesTxt(data string) *modulesTxt {
	mt := &modulesTxt{Meta: map[module.Version]vendorMeta{}, Packages: map[string]module.Version{}}
	var mod module.Version
	for line := range strings.SplitSeq(data, "\n") {
		if strings.HasPrefix(line, "# ") {
			f := strings.Fields(line)
			if len(f) < 3 {
				continue
			}
			switch {
			case semver.IsValid(f[2]):
				mod = module.Version{Path: f[1], Version: f[2]}
				f = f[3:]
			case f[2] == "=>":
				mod = module.Version{Path: f[1]} // a wildcard replacement
				f = f[2:]
			default:
				mod = module.Version{}
				continue
			}
			if _, ok := mt.Meta[mod]; !ok {
				mt.Order = append(mt.Order, mod)
			}
			meta := mt.Meta[mod]
			if len(f) >= 2 && f[0] == "=>" {
				switch {
				case len(f) == 2:
					meta.Replacement = module.Version{Path: f[1]}
					mt.Replaced = append(mt.Replaced, mod)
				case len(f) == 3 && semver.IsValid(f[2]):
					meta.Replacement = module.Version{Path: f[1], Version: f[2]}
					mt.Replaced = append(mt.Replaced, mod)
				}
			}
			mt.Meta[mod] = meta
			continue
		}
		if mod.Path == "" {
			continue
		}
		if ann, ok := strings.CutPrefix(line, "## "); ok {
			meta := mt.Meta[mod]
			for a := range strings.SplitSeq(ann, ";") {
				if strings.TrimSpace(a) == "explicit" {
					meta.Explicit = true
				}
			}
			mt.Meta[mod] = meta
			continue
		}
		if f := strings.Fields(line); len(f) == 1 && module.CheckImportPath(f[0]) == nil {
			mt.Packages[f[0]] = mod
			meta := mt.Meta[mod]
			meta.HasPackages = true
			mt.Meta[mod] = meta
		}
	}
	return mt
}

// consistency compares go.mod with modules.txt as cmd/go's
// checkVendorConsistency does (single-module mode) and returns its
// complaints, worded as the go command words them.
func consistency(mf *modfile.File, mt *modulesTxt) []string {
	var out []string
	describe := func(m module.Version) string {
		if m.Version == "" {
			return m.Path
		}
		return m.Path + "@" + m.Version
	}
	// Before go 1.14, modules.txt did not record explicit requirements.
	pre114 := mf.Go != nil && semver.Compare("v"+mf.Go.Version, "v1.14") < 0
	vendorVersion := map[string]string{}
	for _, m := range mt.Order {
		if mt.Meta[m].HasPackages {
			vendorVersion[m.Path] = m.Version
		}
	}
	required := map[module.Version]bool{}
	for _, r := range mf.Require {
		required[r.Mod] = true
		if mt.Meta[r.Mod].Explicit {
			continue
		}
		if pre114 {
			if vv, ok := vendorVersion[r.Mod.Path]; ok && vv != r.Mod.Version {
				out = append(out, fmt.Sprintf("%s: is explicitly required in go.mod, but vendor/modules.txt indicates %s@%s", describe(r.Mod), r.Mod.Path, vv))
			}
			continue
		}
		out = append(out, fmt.Sprintf("%s: is explicitly required in go.mod, but not marked as explicit in vendor/modules.txt", describe(r.Mod)))
	}
	seen := map[module.Version]bool{}
	for _, r := range mf.Replace {
		if seen[r.Old] {
			continue
		}
		seen[r.Old] = true
		vr := mt.Meta[r.Old].Replacement
		switch {
		case vr == (module.Version{}):
			if pre114 && (r.Old.Version == "" || vendorVersion[r.Old.Path] != r.Old.Version) {
				continue
			}
			out = append(out, fmt.Sprintf("%s: is replaced in go.mod, but not marked as replaced in vendor/modules.txt", describe(r.Old)))
		case vr != r.New:
			out = append(out, fmt.Sprintf("%s: is replaced by %s in go.mod, but marked as replaced by %s in vendor/modules.txt", describe(r.Old), describe(r.New), describe(vr)))
		}
	}
	for _, m := range mt.Order {
		if meta := mt.Meta[m]; meta.Explicit && meta.HasPackages && !required[m] {
			out = append(out, fmt.Sprintf("%s: is marked as explicit in vendor/modules.txt, but not explicitly required in go.mod", describe(m)))
		}
	}
	for _, m := range mt.Replaced {
		replaced := false
		for _, r := range mf.Replace {
			if r.Old == m || (r.Old.Path == m.Path && r.Old.Version == "") {
				replaced = true
			}
		}
		if !replaced {
			out = append(out, fmt.Sprintf("%s: is marked as replaced in vendor/modules.txt, but not replaced in go.mod", describe(m)))
		}
	}
	return out
}

// listed is one package of `go list -deps`.
type listed struct {
	Dir, Err string
}

// listFormat prints the non-standard packages the module's packages need.
const listFormat = `{{if not .Standard}}{{.ImportPath}}{{"\t"}}{{.Dir}}{{"\t"}}{{if .Error}}{{.Error.Err}}{{end}}{{end}}`

// goList runs `go list -e -deps ./...` with one -mod setting. The module
// run is offline (GOPROXY=off): the doctor verifies, it does not download.
func goList(ctx context.Context, env *check.Env, mode string) (map[string]listed, string, error) {
	extra := append(slices.Clone(probeEnv), "GOWORK=off", "GOFLAGS=")
	if mode == "mod" {
		extra = append(extra, "GOPROXY=off")
	}
	out, err := env.Go(ctx, extra, "list", "-mod="+mode, "-e", "-deps", "-f", listFormat, "./...")
	pkgs := map[string]listed{}
	if err != nil {
		return pkgs, string(out), err
	}
	for line := range strings.Lines(string(out)) {
		f := strings.SplitN(strings.TrimRight(line, "\n"), "\t", 3)
		if len(f) < 2 || f[0] == "" {
			continue
		}
		p := listed{Dir: f[1]}
		if len(f) == 3 {
			p.Err = check.FirstLine(f[2])
		}
		pkgs[f[0]] = p
	}
	return pkgs, string(out), nil
}

func runVendor(ctx context.Context, env *check.Env) check.Result {
	t := env.Target
	if !hasGoMod(t, t.Dir) {
		return check.Skipf("no go.mod in %s: not a module (run gopatrol check -C <module dir>)", t.Dir).With("dir", t.Dir)
	}
	vdir := filepath.Join(t.Dir, "vendor")
	if !isDir(t, vdir) {
		return check.Skipf("no vendor directory in %s: builds use the module cache", t.Dir).With("dir", t.Dir)
	}
	gomod := filepath.Join(t.Dir, "go.mod")
	data, err := t.ReadFile(gomod)
	if err != nil {
		return check.Errorf("read go.mod: %v", err).With("go.mod", gomod)
	}
	mf, err := modfile.Parse(gomod, data, nil)
	if err != nil {
		return check.Failf("go.mod does not parse: %v", err).With("go.mod", gomod).
			WithFix("correct %s (the go command prints the same error), then run go mod vendor", gomod)
	}
	txtPath := filepath.Join(vdir, "modules.txt")
	txt, txtErr := t.ReadFile(txtPath)
	if txtErr != nil && !errors.Is(txtErr, fs.ErrNotExist) {
		return check.Errorf("read vendor/modules.txt: %v", txtErr).With("modules.txt", txtPath)
	}
	mt := parseModulesTxt(string(txt))

	// Both loads at once: each is a go command of its own.
	var modPkgs, vendPkgs map[string]listed
	var modOut, vendOut string
	var modErr, vendErr error
	var wg sync.WaitGroup
	wg.Go(func() { modPkgs, modOut, modErr = goList(ctx, env, "mod") })
	wg.Go(func() { vendPkgs, vendOut, vendErr = goList(ctx, env, "vendor") })
	wg.Wait()
	if ctx.Err() != nil {
		return check.Errorf("go list did not finish: %v", ctx.Err()).With("dir", t.Dir)
	}

	incons := consistency(mf, mt)
	if errors.Is(txtErr, fs.ErrNotExist) && len(mf.Require) > 0 {
		incons = append([]string{"vendor/modules.txt is missing"}, incons...)
	}
	r := check.Result{}
	if vendErr != nil {
		// "go: inconsistent vendoring in DIR:" and one tab-indented line
		// per complaint: those are the go command's own words.
		for line := range strings.Lines(vendOut) {
			if l, ok := strings.CutPrefix(line, "\t"); ok && strings.Contains(l, ": is ") {
				if l = strings.TrimSpace(l); !slices.Contains(incons, l) {
					incons = append(incons, l)
				}
			}
		}
		r = r.With("go list -mod=vendor", check.FirstLine(vendOut))
	}
	if modErr != nil {
		r = r.With("go list -mod=mod", check.FirstLine(modOut)+" (package sets not compared)")
	}
	if modErr == nil && vendErr == nil {
		offline := 0
		for _, p := range slices.Sorted(maps.Keys(modPkgs)) {
			mp, vp := modPkgs[p], vendPkgs[p]
			_, inVendor := vendPkgs[p]
			switch {
			case mp.Err != "":
				offline++ // not in the module cache; nothing to compare against
			case !inVendor:
				incons = append(incons, fmt.Sprintf("%s: package is built from %s with -mod=mod, but -mod=vendor does not load it", p, mp.Dir))
			case vp.Err != "":
				if _, listedPkg := mt.Packages[p]; listedPkg && !isDir(t, filepath.Join(vdir, p)) {
					incons = append(incons, fmt.Sprintf("%s: is listed in vendor/modules.txt, but %s is missing", p, filepath.Join(vdir, p)))
					continue
				}
				incons = append(incons, fmt.Sprintf("%s: %s (with -mod=vendor; -mod=mod loads it from %s)", p, vp.Err, mp.Dir))
			}
		}
		for _, p := range slices.Sorted(maps.Keys(vendPkgs)) {
			if _, ok := modPkgs[p]; !ok {
				incons = append(incons, fmt.Sprintf("%s: package is loaded from %s with -mod=vendor, but go.mod does not provide it", p, vendPkgs[p].Dir))
			}
		}
		r = r.With("packages", fmt.Sprintf("%d with -mod=mod, %d with -mod=vendor", len(modPkgs), len(vendPkgs)))
		if offline > 0 {
			r = r.With("not compared", fmt.Sprintf("%d package(s) that -mod=mod cannot load without downloading (not in the module cache)", offline))
		}
	}
	r = r.With("dir", t.Dir).With("modules.txt", fmt.Sprintf("%s: %d module(s), %d package(s)", txtPath, len(mt.Order), len(mt.Packages)))
	if len(incons) == 0 {
		if vendErr != nil {
			r.Status, r.Summary = check.Fail, "go list -mod=vendor failed: "+check.FirstLine(vendOut)
			return r.WithFix("run `go list -mod=vendor ./...` in %s and fix what it reports, or re-create the tree with go mod vendor", t.Dir)
		}
		r.Status, r.Summary = check.Pass, fmt.Sprintf("vendor/ matches go.mod: %d module(s), %d package(s) vendored", len(mt.Order), len(mt.Packages))
		return r
	}
	r.Status = check.Fail
	r.Summary = fmt.Sprintf("inconsistent vendoring in %s: %s", t.Dir, incons[0])
	if len(incons) > 1 {
		r.Summary += fmt.Sprintf(" (and %d more)", len(incons)-1)
	}
	r = r.With("inconsistencies", strings.Join(incons, "\n"))
	// A module marked explicit in vendor/modules.txt that go.mod no
	// longer requires: go mod vendor alone fails while the code imports
	// it ("no required module provides package"), and go mod tidy must
	// look it up (impossible under GOPROXY=off). go get of the vendored
	// version puts the requirement back from the module cache first.
	var gets []string
	for _, s := range incons {
		if mv, ok := strings.CutSuffix(s, ": is marked as explicit in vendor/modules.txt, but not explicitly required in go.mod"); ok {
			gets = append(gets, mv)
		}
	}
	if len(gets) > 0 {
		fix := fmt.Sprintf("cd %s && go get %s && go mod vendor (or drop the imports of what go.mod no longer requires, then go mod vendor)", t.Dir, strings.Join(gets, " "))
		if env.Toolchain.Get("GOPROXY") == "off" {
			// go get looks the version up, which GOPROXY=off refuses.
			fix = "with GOPROXY=<a module proxy> (it is off here): " + fix
		}
		return r.WithFix("%s", fix)
	}
	return r.WithFix("cd %s && go mod vendor", t.Dir)
}

func isDir(t *check.Target, p string) bool {
	fi, err := os.Stat(t.Path(p))
	return err == nil && fi.IsDir()
}
